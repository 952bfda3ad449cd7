"""Real data for the picture: which clusters an image holds, which a bitmap marks dirty.

Allocation comes from `qemu-img map` on the image file (extents at depth 0 are
this image's own, its backing is not opened); file locking is off for that
read-only look, because a concluded commit keeps its committed image locked
against consistent reads.
Bitmap contents come from QEMU itself: the node is exported over NBD with the
bitmap, and `qemu-img map` reads it through `x-dirty-bitmap`, which reports
dirty extents as `"data": false`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from blockjob.demo.images import run_tool
from blockjob.qemu.monitor import Monitor

Extent = tuple[int, int]  # (start, length) in bytes
EXPORT = "blockjob-picture"


def allocated(path: Path) -> list[Extent]:
    """Extents stored in this image file itself (not in its backing files)."""
    # No backing opened: only this file's extents count, and a running active commit
    # holds the images below against consistent reads.
    spec = {"driver": "qcow2", "backing": None,
            "file": {"driver": "file", "filename": str(path), "locking": "off"}}
    raw = json.loads(run_tool(
        ["qemu-img", "map", "-U", "--output=json", "json:" + json.dumps(spec)]))
    return [
        (int(e["start"]), int(e["length"])) for e in raw if e["depth"] == 0 and e["data"]
    ]


class BitmapReader:
    """Reads bitmaps of a running QEMU through one NBD server on a unix socket."""

    def __init__(self, monitor: Monitor, socket_path: str) -> None:
        self._monitor = monitor
        self._socket = socket_path

    def __enter__(self) -> BitmapReader:
        self._monitor.execute(
            "nbd-server-start", {"addr": {"type": "unix", "data": {"path": self._socket}}}
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._monitor.execute("nbd-server-stop")

    def dirty(self, node: str, bitmap: str, *, writable: bool) -> list[Extent]:
        # A read-only export refuses a recording bitmap of a writable node.
        self._monitor.execute("block-export-add", {
            "type": "nbd", "id": EXPORT, "node-name": node, "name": EXPORT,
            "bitmaps": [bitmap], "writable": writable,
        })
        try:
            opts = (f"driver=nbd,server.type=unix,server.path={self._socket},export={EXPORT},"
                    f"x-dirty-bitmap=qemu:dirty-bitmap:{bitmap}")
            raw = json.loads(run_tool(["qemu-img", "map", "--output=json", "--image-opts", opts]))
        finally:
            self._monitor.execute("block-export-del", {"id": EXPORT})
            self._wait_export_gone()
        return [(int(e["start"]), int(e["length"])) for e in raw if not e["data"]]

    def _wait_export_gone(self) -> None:
        # Deleting an export is asynchronous; the next one reuses the id.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            exports = self._monitor.execute("query-block-exports")
            if not any(e.get("id") == EXPORT for e in exports):
                return
            time.sleep(0.01)
