"""Storage sources built by hand, as libvirt records a file-backed image."""

from __future__ import annotations

from blockjob.element import Node
from blockjob.model import StorageSource


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
