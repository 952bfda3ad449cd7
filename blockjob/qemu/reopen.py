"""Making a read-only backing image writable for a moment, as libvirt does.

Persistent bitmap changes on a read-only node live only in memory and are lost when
QEMU exits (README section `recovery`); wrapping them in `blockdev-reopen` read-write
... read-only makes QEMU store them in the image.

A reopen names the node's backing node too, and QEMU links the node to what it names:
`null` detaches the backing image, and the guest's disk loses every cluster below it.
So the backing named is the one QEMU has now (`x-debug-query-block-graph`), never the
file's: a file may not say what is below its last image, and one written by a libvirt
that omits a raw image's format layer names no format node of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from functools import cache

from blockjob.model import StorageSource
from blockjob.qemu.bitmaps import TMP_ACTIVEWRITE, Nodes, reenable_actions, remove_actions
from blockjob.qemu.monitor import Monitor, MonitorError
from blockjob.qemu.nodes import effective_node


def reopen_options(
    image: StorageSource, *, read_only: bool, backing: str | None
) -> dict[str, object]:
    """The full option set `blockdev-reopen` needs for `image`'s format node; `backing`:
    the node's backing node in QEMU (None: it has none)."""
    if image.format_node is None or image.storage_node is None:
        raise ValueError(f"image {image.path!r} lacks a format or storage node name")
    return {
        "node-name": image.format_node,
        "driver": image.format,
        "file": image.storage_node,
        "read-only": read_only,
        # Omitting "backing" would ask QEMU to reopen the image's header backing file.
        "backing": backing,
    }


def backing_in_qemu(monitor: Monitor, image: StorageSource) -> str | None:
    """The node `image`'s format node backs onto in QEMU now (None: none)."""
    return monitor.backing_of().get(image.format_node or "")


def set_read_only(monitor: Monitor, image: StorageSource, read_only: bool) -> None:
    """Reopen `image` read-only or read-write, its backing link as QEMU has it now."""
    _reopen(monitor, image, read_only, backing=backing_in_qemu(monitor, image))


def _reopen(
    monitor: Monitor, image: StorageSource, read_only: bool, *, backing: str | None
) -> None:
    monitor.blockdev_reopen([reopen_options(image, read_only=read_only, backing=backing)])


def transaction_on(
    monitor: Monitor, image: StorageSource, actions: Sequence[dict[str, object]],
    *, read_only_after: bool = True, nodes: Nodes | None = None,
) -> None:
    """Run `actions` in one transaction with `image` writable, then leave it read-only
    when `read_only_after` (a backing image) whether or not it was writable before.

    Looks at QEMU first (`nodes`: the caller's observation, made just before with no
    command since, from which it computed `actions`), so a run killed inside the window
    converges on the next one: a base found writable is made read-only even when no
    action is left. The read-only reopen also runs when the transaction fails; the
    transaction's error is raised.
    """
    if nodes is None:
        nodes = monitor.query_nodes()
    node = nodes.get(image.format_node or "")
    writable = node is not None and not node.read_only

    @cache  # asked once, by the first reopen: neither they nor the transaction change it
    def backing() -> str | None:
        return backing_in_qemu(monitor, image)

    def reopen(read_only: bool) -> None:
        _reopen(monitor, image, read_only, backing=backing())

    if actions and not writable:
        reopen(False)
        writable = True
    try:
        if actions:
            monitor.transaction(actions)
    except MonitorError:
        # The transaction's error is the useful one; a rerun retries the reopen.
        if read_only_after:
            with contextlib.suppress(MonitorError):
                reopen(True)
        raise
    if read_only_after and writable:
        reopen(True)


def restore_base(
    monitor: Monitor, base: StorageSource, listed: Sequence[str], *, read_only: bool = True,
    nodes: Nodes | None = None,
) -> tuple[list[str], Nodes, int]:
    """Enable the listed base bitmaps that are still disabled (one transaction, base
    writable around it) and, with `read_only`, leave base read-only (also when a killed
    run left it writable). `nodes`: the caller's observation, made just before.

    Returns the problems with bitmaps that could not be re-enabled, the node graph they
    were judged on (taken before the transaction, which enables and removes bitmaps but
    can neither add one nor mend one), and how many bitmaps it enabled."""
    if nodes is None:
        nodes = monitor.query_nodes()
    name = effective_node(base)
    actions, problems = reenable_actions(name, listed, nodes)
    transaction_on(monitor, base, actions + remove_actions(name, TMP_ACTIVEWRITE, nodes),
                   read_only_after=read_only, nodes=nodes)
    return problems, nodes, len(actions)
