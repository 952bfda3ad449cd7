"""The options of base's `blockdev-reopen` (`blockjob.qemu.reopen`)."""

from __future__ import annotations

import pytest

from blockjob.qemu.reopen import Children, reopen_options
from tests.support.images import file_image

BASE = file_image("/base.qcow2", storage_node="file-says", format_node="base-format")


def test_the_reopen_links_base_to_the_children_qemu_has_not_the_files() -> None:
    options = reopen_options(BASE, read_only=True, children=Children("qemu-file", None))
    assert options == {"node-name": "base-format", "driver": "qcow2", "file": "qemu-file",
                       "read-only": True, "backing": None}


def test_a_node_without_a_file_child_in_qemu_is_not_reopened() -> None:
    with pytest.raises(ValueError, match=r"base-format of image '/base\.qcow2' has no file"):
        reopen_options(BASE, read_only=True, children=Children(None, "below"))
