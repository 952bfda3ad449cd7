"""Splicing images out of a backing chain."""

from __future__ import annotations

from dataclasses import replace

import pytest

from blockjob.model import StorageSource
from blockjob.qemu.nodes import effective_node, images_between, without
from tests.test_recovery_plan import document


def chain() -> StorageSource:
    disk = document(None).disk("vda")
    assert disk is not None and disk.chain is not None
    return disk.chain


def test_images_between_top_and_base() -> None:
    top, mid, base = chain().images()
    assert images_between(chain(), mid, base) == [mid]
    assert images_between(chain(), top, None) == [top, mid, base]
    stranger = StorageSource("file", "qcow2", base.source, format_node="libvirt-9-format")
    with pytest.raises(ValueError, match="not in the disk's backing chain"):
        images_between(chain(), stranger, base)


def test_without_splices_and_keeps_the_terminator() -> None:
    top, mid, base = chain().images()
    spliced = without(chain(), [mid])
    assert [effective_node(i) for i in spliced.images()] == ["libvirt-1-format", "libvirt-3-format"]
    assert spliced.images()[-1].terminated and spliced.index == top.index
    alone = without(chain(), [mid, base])
    assert alone.backing is None and alone.terminated
    with pytest.raises(ValueError, match="every image"):
        without(chain(), [top, mid, base])


def test_effective_node_prefers_the_format_node() -> None:
    top = chain()
    assert effective_node(top) == "libvirt-1-format"
    bare = StorageSource("file", "raw", top.source, storage_node="s")
    assert effective_node(bare) == "s"
    with pytest.raises(ValueError, match="no node names"):
        effective_node(StorageSource("file", "raw", top.source))


def test_without_keeps_a_bottom_the_file_does_not_end() -> None:
    _, mid, base = chain().images()
    unended = replace(chain(), backing=replace(mid, backing=replace(base, terminated=False)))
    assert not without(unended, [mid]).images()[-1].terminated
    assert without(unended, [mid, base]).terminated  # nothing is below the pulled top
