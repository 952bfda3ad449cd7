"""Domains of every finishing flow in real QEMUs, their status files in one directory, for
campaigns that run several `blockjob recover` processes (and lock-less readers) at once.

Each domain is a `Lab` of its own (images, QEMU, log) in `root/<number>`; once its flow is
set up, its status file is moved into the shared status directory, as a daemon keeps all
of them in one. `end_state` is the sweep's (`tests/test_recovery_sweep_qemu.py`) with the
domain's name (and uuid), directory and monitor blanked, so domains of one flow compare alike.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from blockjob.demo.images import run_tool
from blockjob.demo.lab import DiskSpec, Lab
from tests.support import finish_lab, scenario
from tests.support.finish_lab import exports
from tests.support.qemu_fixtures import node_states

REPO = Path(__file__).resolve().parent.parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
_READER = REPO / "tests" / "support" / "lockless_reader.py"
COMMITS, FLOWS = finish_lab.COMMITS, finish_lab.ALL_FLOWS
_PID = re.compile(r"pid='\d+'")
_UUID = re.compile(r"<uuid>[^<]*</uuid>")  # made from the domain's name
# The store's lock and scratch names carry a hash of the file name, which has the domain's.
_HIDDEN = re.compile(r"\.blockjob-[0-9a-f]{16}")


@contextmanager
def domains(root: Path, flows: list[str], status_dir: Path) -> Iterator[list[Lab]]:
    """One lab per flow (named `dom<N>`), its job ended in QEMU while no daemon listened,
    its status file in `status_dir`; every QEMU stopped on exit, however it ends."""
    status_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        labs = []
        for number, flow in enumerate(flows):
            disks = [DiskSpec(scenario.TARGET, scenario.chain())]
            disks += [DiskSpec("vdb", scenario.chain())] if flow in finish_lab.TWO_DISKS else []
            directory = root / str(number)  # short: QEMU's NBD socket path is in it
            directory.mkdir(parents=True)
            tb = stack.enter_context(Lab(directory, disks, name=f"dom{number}",
                                         devices=flow not in COMMITS))
            finish_lab.set_up(tb, flow)
            moved = status_dir / tb.status_path.name
            os.rename(tb.status_path, moved)
            tb.status_path = moved
            labs.append(tb)
        yield labs


def end_state(tb: Lab) -> dict[str, object]:
    """The status file (names blanked), QEMU's jobs, nodes (read-only flags, bitmaps and
    whether they record), NBD exports, the files of the lab's directory and the on-disk
    bitmap flags of its images."""
    with tb.connect() as monitor:
        jobs = sorted(monitor.query_jobs())
        nodes = node_states(monitor)
        served = exports(monitor)
    text = tb.status_path.read_text()
    for old, new in ((str(tb.directory), "DIR"), (tb.monitor_path, "MON"),
                     (f"'{tb.name}'", "'NAME'"), (f">{tb.name}<", ">NAME<")):
        text = text.replace(old, new)
    files = sorted(_HIDDEN.sub(".blockjob-@", str(path.relative_to(tb.directory)))
                   for path in tb.directory.rglob("*") if path.suffix != ".log")
    on_disk = {}
    for image in sorted(tb.directory.rglob("*.qcow2")):
        info = json.loads(run_tool(["qemu-img", "info", "-U", "--output=json", str(image)]))
        bitmaps = info.get("format-specific", {}).get("data", {}).get("bitmaps", [])
        on_disk[image.name] = sorted((b["name"], tuple(b["flags"])) for b in bitmaps)
    return {"file": _UUID.sub("<uuid/>", _PID.sub("pid=''", text)), "jobs": jobs, "nodes": nodes,
            "exports": served, "files": files, "disk": on_disk}


def libvirt_saves(path: Path, note: str) -> bytes:
    """Rewrite status file `path` the way libvirt saves one, without any lock of ours
    (virFileRewrite: `<file>.new` written, then renamed over the file), with an XML comment
    `note` before `</domstatus>` (a part of the file every save of ours keeps byte for
    byte); the bytes written."""
    data = re.sub(rb"<!-- libvirt: [^>]*-->\n", b"", path.read_bytes())
    data = data.replace(b"</domstatus>", f"<!-- libvirt: {note} -->\n</domstatus>".encode())
    new = path.with_name(path.name + ".new")
    new.write_bytes(data)
    os.rename(new, path)
    return data


@contextmanager
def lockless_readers(directory: Path, count: int = 1) -> Iterator[Callable[[], list[str]]]:
    """`count` reader processes (`tests/support/lockless_reader.py`) polling `directory`
    until the returned function is called: it stops them and returns every error they met
    (failing if one read nothing). They are killed on exit however the block ends."""
    stop = directory.parent / f".stop-readers-{directory.name}"
    stop.unlink(missing_ok=True)
    procs = [subprocess.Popen([sys.executable, str(_READER), str(directory), str(stop)],
                              env=ENV, stdout=subprocess.PIPE, text=True)
             for _ in range(count)]
    try:
        for proc in procs:  # each is reading before the caller starts writing
            assert proc.stdout is not None and proc.stdout.readline() == "reading\n"

        def errors() -> list[str]:
            stop.touch()
            found: list[str] = []
            for proc in procs:
                result = json.loads(proc.communicate(timeout=120)[0])
                assert result["reads"] > 0, result
                found += result["errors"]
            return found
        yield errors
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        stop.unlink(missing_ok=True)
