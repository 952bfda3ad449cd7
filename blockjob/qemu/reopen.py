"""Making a read-only backing image writable for a moment, as libvirt does.

Persistent bitmap changes on a read-only node live only in memory and are lost when
QEMU exits (README section `recovery`); wrapping them in `blockdev-reopen` read-write
... read-only makes QEMU store them in the image.

A reopen names the node's file and backing nodes too, and QEMU links the node to what
it names: `null` as backing detaches the backing image, and the guest's disk loses every
cluster below it; another image's storage node as file (a read-only reopen may take one
that another node reads) makes the guest read that image's clusters as this one's. So
both are the nodes QEMU has now (`x-debug-query-block-graph`), never the file's: a file
may not say what is below its last image, one written by a libvirt that omits a raw
image's format layer names no format node of it, and a hand-edited one may name the
wrong storage node.

QEMU also resets the other options a reopen leaves out to their defaults, so the reopen
repeats those of the node's that differ from them, as libvirt's full option set does:
`cache.direct`, `cache.no-flush` and `detect-zeroes` as QEMU has them now
(`query-named-block-nodes`), and `discard`, which QEMU does not report (7.2 keeps it when
left out), as the domain's disk says (`<driver discard>`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from blockjob.model import StorageSource
from blockjob.qemu.bitmaps import TMP_ACTIVEWRITE, Nodes, reenable_actions, remove_actions
from blockjob.qemu.monitor import BlockNode, Monitor, MonitorError
from blockjob.qemu.nodes import effective_node


@dataclass(frozen=True)
class Children:
    """A format node's children in QEMU now (None: it has none)."""

    file: str | None
    backing: str | None


def kept_options(node: BlockNode | None, discard: str | None) -> dict[str, object]:
    """The options of a format node a reopen must repeat, else QEMU resets them: those
    that differ from QEMU's default. `node`: the node as QEMU reports it now; `discard`:
    the domain's disk's `<driver discard>`. QEMU refuses `detect-zeroes` `unmap` without
    `discard` `unmap`, so a node that has it proves the discard mode too."""
    kept: dict[str, object] = {}
    if node is not None:
        cache = {name: True for name, on in (("direct", node.direct),
                                              ("no-flush", node.no_flush)) if on}
        if cache:
            kept["cache"] = cache
        if node.detect_zeroes != "off":
            kept["detect-zeroes"] = node.detect_zeroes
    if discard == "unmap" or kept.get("detect-zeroes") == "unmap":
        kept["discard"] = "unmap"
    return kept


def reopen_options(
    image: StorageSource, *, read_only: bool, children: Children,
    kept: Mapping[str, object],
) -> dict[str, object]:
    """The full option set `blockdev-reopen` needs for `image`'s format node, linked to
    the `children` QEMU has now, with the `kept` options (`kept_options`)."""
    if image.format_node is None:
        raise ValueError(f"image {image.path!r} lacks a format node name")
    if children.file is None:
        raise ValueError(f"node {image.format_node} of image {image.path!r} has no file "
                         f"child in QEMU's graph: it cannot be reopened")
    return {
        "node-name": image.format_node,
        "driver": image.format,
        "file": children.file,
        "read-only": read_only,
        # Omitting "backing" would ask QEMU to reopen the image's header backing file.
        "backing": children.backing,
        **kept,
    }


def children_in_qemu(monitor: Monitor, image: StorageSource) -> Children:
    """The nodes `image`'s format node has as file and backing in QEMU now."""
    files, backing = monitor.children_of()
    node = image.format_node or ""
    return Children(files.get(node), backing.get(node))


def set_read_only(
    monitor: Monitor, image: StorageSource, read_only: bool, *, kept: Mapping[str, object]
) -> None:
    """Reopen `image` read-only or read-write, linked to its children as QEMU has them,
    with the `kept` options (`kept_options`)."""
    _reopen(monitor, image, read_only, children_in_qemu(monitor, image), kept)


def _reopen(
    monitor: Monitor, image: StorageSource, read_only: bool, children: Children,
    kept: Mapping[str, object],
) -> None:
    monitor.blockdev_reopen([reopen_options(image, read_only=read_only, children=children,
                                            kept=kept)])


def transaction_on(
    monitor: Monitor, image: StorageSource, actions: Sequence[dict[str, object]],
    *, discard: str | None, read_only_after: bool = True, nodes: Nodes | None = None,
) -> None:
    """Run `actions` in one transaction with `image` writable, then leave it read-only
    when `read_only_after` (a backing image) whether or not it was writable before.
    `discard`: the domain's disk's `<driver discard>`, which the reopens repeat.

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
    # Taken before the reopens, which keep them: the transaction changes only bitmaps.
    kept = kept_options(node, discard)

    @cache  # asked once, by the first reopen: neither they nor the transaction change it
    def children() -> Children:
        return children_in_qemu(monitor, image)

    def reopen(read_only: bool) -> None:
        _reopen(monitor, image, read_only, children(), kept)

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
    monitor: Monitor, base: StorageSource, listed: Sequence[str], *, discard: str | None,
    read_only: bool = True, nodes: Nodes | None = None,
) -> tuple[list[str], Nodes, int]:
    """Enable the listed base bitmaps that are still disabled (one transaction, base
    writable around it) and, with `read_only`, leave base read-only (also when a killed
    run left it writable). `nodes`: the caller's observation, made just before;
    `discard`: as for `transaction_on`.

    Returns the problems with bitmaps that could not be re-enabled, the node graph they
    were judged on (taken before the transaction, which enables and removes bitmaps but
    can neither add one nor mend one), and how many bitmaps it enabled."""
    if nodes is None:
        nodes = monitor.query_nodes()
    name = effective_node(base)
    actions, problems = reenable_actions(name, listed, nodes)
    transaction_on(monitor, base, actions + remove_actions(name, TMP_ACTIVEWRITE, nodes),
                   discard=discard, read_only_after=read_only, nodes=nodes)
    return problems, nodes, len(actions)
