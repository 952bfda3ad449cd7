"""The options of base's `blockdev-reopen` (`blockjob.qemu.reopen`)."""

from __future__ import annotations

import pytest

from blockjob.qemu.monitor import BlockNode
from blockjob.qemu.reopen import Children, kept_options, reopen_options
from tests.support.images import file_image

BASE = file_image("/base.qcow2", storage_node="file-says", format_node="base-format")
DEFAULTS = BlockNode("base-format", "qcow2", True)


def test_the_reopen_links_base_to_the_children_qemu_has_not_the_files() -> None:
    options = reopen_options(BASE, read_only=True, children=Children("qemu-file", None), kept={})
    assert options == {"node-name": "base-format", "driver": "qcow2", "file": "qemu-file",
                       "read-only": True, "backing": None}


def test_a_node_without_a_file_child_in_qemu_is_not_reopened() -> None:
    with pytest.raises(ValueError, match=r"base-format of image '/base\.qcow2' has no file"):
        reopen_options(BASE, read_only=True, children=Children(None, "below"), kept={})


def test_the_kept_options_follow_the_graphs_children() -> None:
    kept = {"cache": {"no-flush": True}, "detect-zeroes": "on"}
    options = reopen_options(BASE, read_only=False, children=Children("qemu-file", "below"),
                             kept=kept)
    assert list(options) == ["node-name", "driver", "file", "read-only", "backing", "cache",
                             "detect-zeroes"]
    assert options["backing"] == "below" and options["cache"] == {"no-flush": True}


def test_a_node_with_qemus_defaults_keeps_nothing_so_the_command_is_unchanged() -> None:
    assert kept_options(DEFAULTS, None) == {}
    assert kept_options(DEFAULTS, "ignore") == {}  # libvirt's other discard mode: QEMU's default


@pytest.mark.parametrize(("node", "kept"), [
    (BlockNode("n", "qcow2", True, direct=True), {"cache": {"direct": True}}),
    (BlockNode("n", "qcow2", True, no_flush=True), {"cache": {"no-flush": True}}),
    (BlockNode("n", "qcow2", True, direct=True, no_flush=True),
     {"cache": {"direct": True, "no-flush": True}}),
    (BlockNode("n", "qcow2", True, detect_zeroes="on"), {"detect-zeroes": "on"}),
], ids=["direct", "no-flush", "both", "detect-zeroes"])
def test_each_option_qemu_reports_is_kept(node: BlockNode, kept: dict[str, object]) -> None:
    assert kept_options(node, None) == kept


def test_detect_zeroes_unmap_proves_discard_unmap() -> None:
    """QEMU refuses detect-zeroes=unmap without discard=unmap, and does not report discard."""
    node = BlockNode("n", "qcow2", True, detect_zeroes="unmap")
    assert kept_options(node, None) == {"detect-zeroes": "unmap", "discard": "unmap"}


@pytest.mark.parametrize("node", [DEFAULTS, None], ids=["in-qemu", "not-in-qemu"])
def test_the_disks_discard_is_kept(node: BlockNode | None) -> None:
    """libvirt opens every image of the disk's chain with its `<driver discard>`."""
    assert kept_options(node, "unmap") == {"discard": "unmap"}


def test_the_disks_discard_is_kept_beside_what_qemu_reports() -> None:
    node = BlockNode("n", "qcow2", True, direct=True, detect_zeroes="on")
    assert kept_options(node, "unmap") == {"cache": {"direct": True}, "detect-zeroes": "on",
                                           "discard": "unmap"}
