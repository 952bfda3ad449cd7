"""Storage sources built in code, as a test needs them (not shipped: nothing in the package
makes images from scratch)."""

from __future__ import annotations

from blockjob.model import StorageSource
from blockjob.statusxml.node import Node


def file_image(
    path: str,
    fmt: str = "qcow2",
    *,
    index: int | None = None,
    storage_node: str | None = None,
    format_node: str | None = None,
    backing: StorageSource | None = None,
    terminated: bool = False,
) -> StorageSource:
    """A file-backed image as libvirt records it, node names in `<privateData>`."""
    names = tuple(
        Node("nodename", (("type", kind), ("name", name)))
        for kind, name in (("storage", storage_node), ("format", format_node))
        if name is not None
    )
    private = (Node("privateData", (), (Node("nodenames", (), names),)),) if names else ()
    return StorageSource(
        type="file",
        format=fmt,
        element=Node("source", (("file", path),), private),
        index=index,
        backing=backing,
        terminated=terminated,
        storage_node=storage_node,
        format_node=format_node,
    )
