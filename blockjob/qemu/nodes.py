"""Backing chains as QEMU sees them: node names and splicing images out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from blockjob.element import Node
from blockjob.model import StorageSource


def node_of(image: StorageSource) -> str | None:
    """The node QEMU users address: the format node, or the storage node without one;
    None when the file names neither (written before libvirt recorded node names)."""
    return image.format_node or image.storage_node


def file_child(image: StorageSource) -> str | None:
    """The node the file says `image`'s format node reads: the node of its storage slice
    when it has one (libvirt puts a `raw` node with the slice's offset and size between a
    format layer and its storage), else its storage node; None when it names neither."""
    return _slice_node(image.source) or image.storage_node


def _slice_node(source: Node) -> str | None:
    """The slice node's name, read as libvirt reads it: only for a source with a storage
    `<slice>`, from `<privateData><nodenames><nodename type='slice-storage'>`."""
    slices = source.child("slices")
    if slices is None or not any(
            kid.tag == "slice" and kid.attr("type") == "storage" for kid in slices.children):
        return None
    private = source.child("privateData")
    names = private.child("nodenames") if private is not None else None
    found = (kid.attr("name") for kid in (names.children if names is not None else ())
             if kid.tag == "nodename" and kid.attr("type") == "slice-storage")
    return next(found, None) or None


def effective_node(image: StorageSource) -> str:
    """`node_of`, for an image that must have one (ValueError otherwise)."""
    name = node_of(image)
    if name is None:
        raise ValueError(f"image {image.path!r} has no node names")
    return name


def images_between(
    chain: StorageSource, top: StorageSource, base: StorageSource | None
) -> list[StorageSource]:
    """Images of `chain` from `top` (included) down to `base` (excluded; None = the bottom)."""
    images = chain.images()
    start = next((i for i, image in enumerate(images) if same_image(image, top)), None)
    if start is None:
        raise ValueError(f"image {top.path!r} is not in the disk's backing chain")
    end = next(
        (i for i, image in enumerate(images) if base is not None and same_image(image, base)),
        len(images),
    )
    return images[start:end]


def without(chain: StorageSource, removed: Sequence[StorageSource]) -> StorageSource:
    """`chain` with `removed` spliced out; the image above a gap now backs onto the one below.
    The bottom says nothing is below it if the old one did or left (a pull of the whole
    chain); a bottom the file does not say the backing of keeps not saying it."""
    kept = [image for image in chain.images() if not any(same_image(image, r) for r in removed)]
    bottom = chain.images()[-1]
    bottom_terminated = bottom.terminated or not any(same_image(bottom, k) for k in kept)
    rebuilt: StorageSource | None = None
    for image in reversed(kept):
        terminated = bottom_terminated if rebuilt is None else False
        rebuilt = replace(image, backing=rebuilt, terminated=terminated)
    if rebuilt is None:
        raise ValueError("cannot remove every image of a chain")
    return rebuilt


def same_image(a: StorageSource, b: StorageSource) -> bool:
    """The same image: node names and path (backing images are not compared)."""
    return (a.format_node, a.storage_node, a.path) == (b.format_node, b.storage_node, b.path)
