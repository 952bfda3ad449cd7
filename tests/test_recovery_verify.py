"""Verification's decisions on an observed node graph (`blockjob.recovery.verify`)."""

from __future__ import annotations

from blockjob.qemu.monitor import Bitmap, BlockNode
from blockjob.recovery.steps import Reenable
from blockjob.recovery.verify import Failure, check_bases
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
