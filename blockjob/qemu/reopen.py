"""Making a read-only backing image writable for a moment, as libvirt does.

Persistent bitmap changes on a read-only node live only in memory and are lost
when QEMU exits (QEMU.md); wrapping them in `blockdev-reopen` read-write ... read-only
makes QEMU store them in the image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from blockjob.model import StorageSource
from blockjob.qemu.bitmaps import finish_actions, reenable_actions
from blockjob.qemu.monitor import Monitor, MonitorError
from blockjob.qemu.nodes import effective_node


def reopen_options(image: StorageSource, *, read_only: bool) -> dict[str, object]:
    """The full option set `blockdev-reopen` needs for `image`'s format node."""
    if image.format_node is None or image.storage_node is None:
        raise ValueError(f"image {image.path!r} lacks a format or storage node name")
    options: dict[str, object] = {
        "node-name": image.format_node,
        "driver": image.format,
        "file": image.storage_node,
        "read-only": read_only,
    }
    # Omitting "backing" would ask QEMU to reopen the image's header backing file.
    options["backing"] = image.backing.format_node if image.backing is not None else None
    return options


def set_read_only(monitor: Monitor, image: StorageSource, read_only: bool) -> None:
    monitor.blockdev_reopen([reopen_options(image, read_only=read_only)])


def transaction_on(
    monitor: Monitor, image: StorageSource, actions: Sequence[dict[str, object]]
) -> None:
    """Run `actions` in one transaction with `image` writable, then make it read-only again.

    An image that is writable already (e.g. the active layer after an active commit)
    is left as it is. The read-only reopen also runs when the transaction fails, so an
    error never leaves a backing image writable; the transaction's error is raised.
    """
    node = monitor.query_nodes().get(image.format_node or "")
    if node is not None and not node.read_only:
        monitor.transaction(actions)
        return
    set_read_only(monitor, image, False)
    try:
        monitor.transaction(actions)
    except MonitorError:
        # The transaction's error is the useful one; a rerun retries the reopen.
        with contextlib.suppress(MonitorError):
            set_read_only(monitor, image, True)
        raise
    set_read_only(monitor, image, True)


def restore_base(
    monitor: Monitor, base: StorageSource, listed: Sequence[str], *, read_only: bool
) -> list[str]:
    """Enable the listed base bitmaps that are still disabled (one transaction, base
    writable around it) and, with `read_only`, make sure base ends read-only (a start
    flow that stopped inside its window left it writable). Returns the bitmaps that
    could not be re-enabled, as problems for the operator."""
    nodes = monitor.query_nodes()
    name = effective_node(base)
    actions, problems = reenable_actions(name, listed, nodes)
    if actions:
        transaction_on(monitor, base, actions)
    if read_only and name in nodes and not nodes[name].read_only:
        set_read_only(monitor, base, True)
    return problems


def merge_into_base(
    monitor: Monitor, base: StorageSource, committed: Sequence[StorageSource],
    chain: Sequence[str], listed: Sequence[str],
) -> list[str]:
    """A commit's finishing bitmap work (`finish_actions`) in one transaction, base
    writable around it; returns the bitmaps it had to skip, as problems.

    Safe to repeat; a no-op once the committed nodes are gone, since they are
    deleted only after the merge. An active commit runs it before `job-complete`
    and its finish runs it again (a union changes nothing)."""
    nodes = monitor.query_nodes()
    names = [effective_node(image) for image in committed]
    if not all(name in nodes for name in names):
        return []
    actions, problems = finish_actions(names, chain, effective_node(base), listed, nodes)
    if actions:
        transaction_on(monitor, base, actions)
    return problems
