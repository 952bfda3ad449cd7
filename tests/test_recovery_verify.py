"""Verification's decisions on an observed node graph (`blockjob.recovery.verify`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import blockjob
from blockjob.demo.qemu import AttachedImage
from blockjob.demo.statusfile import DiskChain, domstatus_xml
from blockjob.model import BlockJob, JobState, JobType, PullData
from blockjob.qemu.monitor import Bitmap, BlockNode, QemuJob
from blockjob.recovery.steps import Reenable
from blockjob.recovery.verify import Failure, Observed, check_bases, check_domain, check_storage
from blockjob.statusxml.document import StatusDocument
from tests.support.images import file_image


def _base(node: str, *bitmaps: Bitmap) -> BlockNode:
    return BlockNode(node, "qcow2", True, bitmaps)


def test_a_bitmap_unusable_on_one_base_hides_no_same_named_bitmap_on_another() -> None:
    # Two disks whose checkpoints share a name: vda's base lost it (reported as
    # unusable), vdb's base still has it disabled, which must fail the check.
    vda = file_image("/a.qcow2", format_node="vda-base")
    vdb = file_image("/b.qcow2", format_node="vdb-base")
    disabled = Bitmap("chk1", False, True, False, 0, 65536)
    nodes = {"vda-base": _base("vda-base"), "vdb-base": _base("vdb-base", disabled)}
    touched = [Reenable(vda, ("chk1",)), Reenable(vdb, ("chk1",))]

    failed = check_bases(touched, nodes, {("vda-base", "chk1")})

    assert failed == [Failure("bitmap 'chk1' in vdb-base is disabled; it must be recording")]


# vda: top (1) <- base (2), as the lab writes it, and QEMU's graph for it.
TOP_FMT, BASE_FMT = "libvirt-1-format", "libvirt-2-format"
BASE_STORAGE, TOP_STORAGE = "libvirt-2-storage", "libvirt-1-storage"
SLICE = "libvirt-2-slice-sto"
_SLICES = "<slices>\n<slice type='storage' offset='1048576' size='33554432'/>\n</slices>\n"


def _doc(*, base_source: str = "", base_names: str = "", raw_base: bool = False
         ) -> StatusDocument:
    """The lab's file for vda, with `base_source` put first in base's `<source>` and
    `base_names` after its `<nodenames>` entries; `raw_base`: base a raw image without a
    format layer (no format node)."""
    images = (AttachedImage(Path("/i/top.qcow2"), 1), AttachedImage(Path("/i/base.qcow2"), 2))
    text = domstatus_xml("vm", "/m.sock", 1, [DiskChain("vda", images)]).decode()
    text = text.replace("<source file='/i/base.qcow2'>", f"<source file='/i/base.qcow2'>"
                        f"{base_source}")
    base_format = "" if raw_base else f"<nodename type='format' name='{BASE_FMT}'/>"
    text = text.replace(f"<nodename type='format' name='{BASE_FMT}'/>",
                        f"{base_format}{base_names}")
    if raw_base:
        text = text.replace("<format type='qcow2'/>", "<format type='raw'/>")
    return blockjob.loads(text.encode(), "vm.xml")


def _seen(files: dict[str, str], *, base_format: bool = True) -> Observed:
    names = [TOP_FMT, TOP_STORAGE, *files.values(), *([BASE_FMT] if base_format else [])]
    nodes = {name: BlockNode(name, "qcow2", name != TOP_FMT) for name in names}
    return Observed({}, nodes, {TOP_FMT: BASE_FMT}, files, ())


RIGHT = {TOP_FMT: TOP_STORAGE, BASE_FMT: BASE_STORAGE}


def test_a_correct_file_passes_the_storage_check() -> None:
    assert check_storage(_doc(), _seen(RIGHT)) == []


def test_a_base_reading_another_images_storage_node_fails_its_disk() -> None:
    wrong = {TOP_FMT: TOP_STORAGE, BASE_FMT: TOP_STORAGE}

    failed = check_storage(_doc(), _seen(wrong))

    assert failed == [Failure(f"disk vda: {BASE_FMT} (/i/base.qcow2) reads {TOP_STORAGE} in "
                              f"QEMU, the file says {BASE_STORAGE}", "vda")]


def test_a_format_node_without_a_file_child_in_qemu_fails() -> None:
    failed = check_storage(_doc(), _seen({TOP_FMT: TOP_STORAGE}))

    assert [f.line for f in failed] == [f"disk vda: {BASE_FMT} (/i/base.qcow2) reads no node "
                                        f"in QEMU, the file says {BASE_STORAGE}"]


def test_a_storage_slice_is_the_file_child_the_file_names() -> None:
    doc = _doc(base_source=_SLICES, base_names=f"<nodename type='slice-storage' name='{SLICE}'/>")
    sliced = {TOP_FMT: TOP_STORAGE, BASE_FMT: SLICE, SLICE: BASE_STORAGE}

    assert check_storage(doc, _seen(sliced)) == []
    assert [f.line for f in check_storage(doc, _seen(RIGHT))] == [
        f"disk vda: {BASE_FMT} (/i/base.qcow2) reads {BASE_STORAGE} in QEMU, the file says "
        f"{SLICE}"]


def test_a_slice_without_a_slice_node_is_read_from_the_storage_node() -> None:
    # A raw image's slice is the format node's own offset and size: no slice layer, and
    # libvirt names none. A slice node name without a storage `<slice>` libvirt ignores.
    assert check_storage(_doc(base_source=_SLICES), _seen(RIGHT)) == []
    unsliced = _doc(base_names=f"<nodename type='slice-storage' name='{SLICE}'/>")
    assert check_storage(unsliced, _seen(RIGHT)) == []


def test_an_image_without_a_format_node_has_no_file_edge_to_check() -> None:
    # A raw image libvirt opens without a format layer: its storage node is its node.
    doc = _doc(raw_base=True)
    nodes = {name: BlockNode(name, "file", True) for name in (TOP_STORAGE, BASE_STORAGE)}
    nodes[TOP_FMT] = BlockNode(TOP_FMT, "qcow2", False)
    seen = Observed({}, nodes, {TOP_FMT: BASE_STORAGE}, {TOP_FMT: TOP_STORAGE}, ())

    assert check_storage(doc, seen) == []


def test_an_image_qemu_lacks_is_left_to_the_chain_checks() -> None:
    assert check_storage(_doc(), _seen({TOP_FMT: TOP_STORAGE}, base_format=False)) == []


def test_a_disk_whose_job_goes_on_has_its_storage_nodes_checked_too() -> None:
    doc = _doc()
    doc.add_job(BlockJob("pull-vda", JobType.PULL, JobState.RUNNING, jobflags=0, disk="vda",
                         data=PullData()))
    seen = replace(_seen({TOP_FMT: TOP_STORAGE, BASE_FMT: TOP_STORAGE}),
                   jobs={"pull-vda": QemuJob("pull-vda", "stream", "running", 0, 1)})

    failed = check_domain(doc, seen, set(), set())

    assert [f.line for f in failed] == [f"disk vda: {BASE_FMT} (/i/base.qcow2) reads "
                                        f"{TOP_STORAGE} in QEMU, the file says {BASE_STORAGE}"]
