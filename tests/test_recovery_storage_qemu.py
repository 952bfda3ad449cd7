"""Verification of the node each image's format node reads, on correct files (real QEMU).

libvirt opens an image with a storage `<slice>` through a `raw` node with the slice's
offset and size between its format node and its storage node, and names that node in
`<nodename type='slice-storage'>`: the format node's file child is the slice node, not
the storage node. A raw image opened without a format layer has its storage node only,
and no file edge to compare. Both files must verify.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from blockjob.demo.images import ImageSpec, build_chain, run_tool
from blockjob.demo.lab import DiskSpec, Lab
from blockjob.model import StorageSource
from blockjob.recovery import Decision
from blockjob.statusxml.document import StatusDocument
from tests.support import scenario
from tests.support.qemu_fixtures import (
    BASE,
    QEMU_MARKS,
    TOP,
    assert_file_sound,
    commit,
    wait_concluded,
)
from tests.test_recovery_qemu import assert_completed, recover_ok

pytestmark = QEMU_MARKS
STORAGE, SLICE = "libvirt-3-storage", "libvirt-3-slice-sto"
SLICE_SIZE = 64 << 20  # room for base to grow by the commit: a slice never grows


def _padded(directory: Path, images: Sequence[ImageSpec], size: int) -> list[Path]:
    """The scenario's chain, base's file as long as its slice (the slice ends in it)."""
    paths = build_chain(directory, images, size)
    os.truncate(paths[-1], SLICE_SIZE)
    return paths


def _slice_base(tb: Lab) -> None:
    """Put a slice node between base's format and storage nodes as libvirt 9.0 adds one
    (offset 0: the qcow2 image starts the file), and record it in the status file."""
    with tb.connect() as monitor:
        monitor.execute("blockdev-add", {
            "driver": "raw", "node-name": SLICE, "offset": 0, "size": SLICE_SIZE,
            "file": STORAGE, "auto-read-only": True, "discard": "unmap"})
        monitor.execute("blockdev-reopen", {"options": [{
            "node-name": BASE, "driver": "qcow2", "read-only": True, "file": SLICE,
            "backing": None}]})
        assert monitor.children_of()[0][BASE] == SLICE
    base = tb.disks[0].images[-1]
    text = tb.status_path.read_text()
    start = f"<source file='{base.path}'>"
    names = f"<nodename type='format' name='{BASE}'/>"
    text = text.replace(start, f"{start}<slices><slice type='storage' offset='0' "
                               f"size='{SLICE_SIZE}'/></slices>")
    tb.status_path.write_text(
        text.replace(names, f"{names}<nodename type='slice-storage' name='{SLICE}'/>"))


def test_a_commit_into_a_sliced_base_verifies_and_keeps_the_slice(tmp_path: Path) -> None:
    with Lab(tmp_path, [DiskSpec(scenario.TARGET, scenario.chain())], build=_padded) as tb:
        _slice_base(tb)
        commit(tb)
        wait_concluded(tb)
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert_completed(tb)
        with tb.connect() as monitor:
            assert monitor.children_of()[0][BASE] == SLICE
        assert "<nodename type='slice-storage' name='libvirt-3-slice-sto'/>" in (
            tb.status_path.read_text())


RAW = "libvirt-9-storage"


def _raw_below_base(tb: Lab) -> None:
    """Put a raw image, storage node only, below base in QEMU and in the file."""
    raw = tb.directory / "bottom.raw"
    run_tool(["qemu-img", "create", "-q", "-f", "raw", str(raw), str(scenario.SIZE)])
    with tb.connect() as monitor:
        monitor.execute("blockdev-add", {
            "driver": "file", "filename": str(raw), "node-name": RAW, "read-only": True})
        monitor.execute("blockdev-reopen", {"options": [{
            "node-name": BASE, "driver": "qcow2", "read-only": True, "file": STORAGE,
            "backing": RAW}]})
    names = f"<nodenames><nodename type='storage' name='{RAW}'/></nodenames>"
    text = tb.status_path.read_text().replace("<backingStore/>", (
        f"<backingStore type='file' index='9'><format type='raw'/><source file='{raw}'>"
        f"<privateData>{names}</privateData></source><backingStore/></backingStore>"))
    tb.status_path.write_text(text)


def _images(doc: StatusDocument) -> list[StorageSource]:
    disk = doc.disk(scenario.TARGET)
    assert disk is not None and disk.chain is not None
    return disk.chain.images()


def test_a_raw_image_without_a_format_layer_verifies(tmp_path: Path) -> None:
    with Lab(tmp_path, [DiskSpec(scenario.TARGET, scenario.chain())]) as tb:
        _raw_below_base(tb)
        commit(tb)
        wait_concluded(tb)
        assert recover_ok(tb) == [Decision.COMPLETED]
        doc = assert_file_sound(tb.status_path)
        assert [(i.format_node, i.storage_node) for i in _images(doc)] == [
            (TOP, "libvirt-1-storage"), (BASE, STORAGE), (None, RAW)]
        with tb.connect() as monitor:
            assert monitor.backing_of()[BASE] == RAW
