"""Draw a disk's images and bitmaps as rows of clusters, 80 columns wide.

One row per image shows where it holds data (`#`); under it, one row per
bitmap of that image shows its dirty clusters (`*`) and whether it records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blockjob.demo.extents import BitmapReader, Extent, allocated
from blockjob.demo.lab import Lab
from blockjob.demo.story import SIZE, TARGET
from blockjob.qemu.monitor import Monitor, QMPCommandError
from blockjob.statusxml.document import StatusDocument

WIDTH = 80
CELLS = 32
LABEL = 16


@dataclass(frozen=True)
class Row:
    label: str
    mark: str
    extents: tuple[Extent, ...]
    note: str


@dataclass(frozen=True)
class ShownImage:
    """An image to draw: its file, its format node, and a remark (e.g. left the chain)."""

    path: Path
    node: str
    remark: str = ""


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


def _bar(extents: Sequence[Extent], mark: str, size: int) -> str:
    cell = size // CELLS
    cells = ["."] * CELLS
    for start, length in extents:
        first, last = start // cell, min((start + length - 1) // cell, CELLS - 1)
        for index in range(first, last + 1):
            cells[index] = mark
    return "".join(cells)


def rows(
    monitor: Monitor, nbd_socket: str, images: Sequence[ShownImage], size: int
) -> list[Row]:
    """Read every image's allocation and every bitmap of its node, now."""
    nodes = monitor.query_nodes()
    out: list[Row] = []
    with BitmapReader(monitor, nbd_socket) as reader:
        for image in images:
            data = allocated(image.path)
            note = f"{_mib(sum(n for _, n in data))} data {image.remark}".rstrip()
            out.append(Row(image.path.name, "#", tuple(data), note))
            node = nodes.get(image.node)
            if node is None:
                continue
            # By name, so pictures taken at different times line up.
            for bitmap in sorted(node.bitmaps, key=lambda b: b.name):
                state = "recording" if bitmap.recording else "disabled"
                note = f"{state} {_mib(bitmap.count)}"
                try:
                    dirty = reader.dirty(image.node, bitmap.name, writable=not node.read_only)
                except QMPCommandError:
                    # e.g. the committed image, held by its concluded job until dismissed
                    out.append(Row(f"  {bitmap.name}", "?", ((0, size),), f"{note} (locked)"))
                    continue
                out.append(Row(f"  {bitmap.name}", "*", tuple(dirty), note))
    return out


def render(title: str, size: int, drawn: Sequence[Row]) -> list[str]:
    cell_kib = size // CELLS // 1024
    end = _mib(size)
    ruler = f"{'':<{LABEL}} 0{'':<{CELLS - 1 - len(end)}}{end}"
    lines = [title, "-" * len(title), ruler]
    for row in drawn:
        line = f"{row.label[:LABEL - 1]:<{LABEL}}|{_bar(row.extents, row.mark, size)}| {row.note}"
        lines.append(line[:WIDTH])
    legend = f"one cell = {cell_kib} KiB; # data in the image, * dirty in the bitmap"
    if any(row.mark == "?" for row in drawn):
        legend += ", ? locked"
    lines.append(legend)
    return lines


def disk_picture(tb: Lab, doc: StatusDocument, monitor: Monitor, title: str) -> list[str]:
    """The story disk's images as the lab made them, each marked if the file's chain
    no longer has it, with their bitmaps as QEMU holds them now."""
    disk = doc.disk(TARGET)
    in_chain = {image.path for image in disk.chain.images()} if disk and disk.chain else set()
    shown = [
        ShownImage(image.path, image.format_node,
                   "" if str(image.path) in in_chain else "(left the chain)")
        for image in tb.disks[0].images
    ]
    return render(title, SIZE, rows(monitor, tb.qemu.nbd_path, shown, SIZE))
