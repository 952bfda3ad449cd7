"""Storage sources: `<source>` plus its `<backingStore>` chain, read and written.

Two shapes share one model. A job's own images (`<chains><disk>`, `<src>`,
`<store>`) carry `type`/`format` on the wrapper and `index` on `<source>`; a
domain `<disk>` carries its format in `<driver type>`. Below the top image both
use the same `<backingStore>` recursion.
"""

from __future__ import annotations

from lxml import etree

from blockjob.element import Node
from blockjob.model import StorageSource
from blockjob.statusxml.build import builder
from blockjob.statusxml.node import (
    SerializedXML,
    attr_holder,
    first_children,
    kept_node,
    xpath_attr,
)
from blockjob.statusxml.numbers import c_unsigned
from blockjob.statusxml.rendered import RenderedXML

STORAGE_TYPES = frozenset(
    {"file", "block", "dir", "network", "volume", "nvme", "vhostuser", "vhostvdpa"}
)
FORMATS = frozenset(
    {"raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd", "ploop",
     "cow", "qcow", "qcow2", "qed", "vmdk"}
)


_new_image = builder(StorageSource)


class SourceError(ValueError):
    """A job storage source that libvirt would refuse ("missing job chain data")."""


def _node_names(source: etree._Element) -> tuple[str | None, str | None]:
    """(storage, format) node names from `<source><privateData><nodenames>`."""
    storage = fmt = None
    for nodename in source.iter("nodename"):
        kind = nodename.get("type")
        if kind == "storage":
            storage = nodename.get("name") or None
        elif kind == "format":
            fmt = nodename.get("name") or None
    return storage, fmt


def _index(text: str | None) -> int | None:
    """An image id; 0, like none, is not written (libvirt writes `index` only when not 0)."""
    return (c_unsigned(text, 10) or None) if text else None


# The port libvirt fills in, when it reads a job image, for a TCP host without one
# (`virStorageSourceNetworkDefaultPort`; rbd, nfs and the rest have none).
DEFAULT_PORTS = {
    "nbd": "10809", "iscsi": "3260", "gluster": "24007", "http": "80", "https": "443",
    "ftp": "21", "ftps": "990", "tftp": "69", "sheepdog": "7000", "ssh": "22", "vxhs": "9999",
}
# libvirt's order of the attributes of a `<host>` and of a `<source>` per storage type
# (then `startupPolicy`; `index` is the model's); any other follows them.
_HOST_ATTRIBUTES = ("name", "port", "transport", "socket")
_SOURCE_ATTRIBUTES = {
    "file": ("file", "fdgroup"),
    "block": ("dev",),
    "dir": ("dir",),
    "network": ("protocol", "name", "query", "tls", "tlsHostname", "tlsFromConfig"),
    "volume": ("pool", "volume", "mode", "actualType"),
    "nvme": ("type", "managed", "namespace"),
    "vhostvdpa": ("dev",),
}


# libvirt's order of the children of a `<source>` (an ssh source's `<identity>` follows
# `<knownHosts>`, an nfs one's `<host>`) and of its `<privateData>`.
_SOURCE_TAIL = ("address", "slices", "seclabel", "auth", "encryption", "reservations",
                "privateData")
_NETWORK_CHILDREN = ("reconnect", "snapshot", "config", "initiator", "ssl", "cookies",
                     "readahead", "timeout", "knownHosts")
_SOURCE_CHILDREN = ("host", "identity", *_NETWORK_CHILDREN, *_SOURCE_TAIL)
_SSH_CHILDREN = ("host", *_NETWORK_CHILDREN, "identity", *_SOURCE_TAIL)
_PRIVATE_CHILDREN = ("nodenames", "reservations", "relPath", "objects", "fdsets",
                     "thresholdEvent", "nbdkit")


def _ranks(order: tuple[str, ...]) -> dict[object, int]:
    """Each tag's place in `order`; comments, processing instructions and entity references
    rank -1, as they are not written."""
    ranks: dict[object, int] = {tag: place for place, tag in enumerate(order)}
    ranks.update(dict.fromkeys((etree.Comment, etree.ProcessingInstruction, etree.Entity), -1))
    return ranks


# Built once: a job image's `<source>` is put in order on every first dump.
_SOURCE_RANKS = _ranks(_SOURCE_CHILDREN)
_SSH_RANKS = _ranks(_SSH_CHILDREN)
_PRIVATE_RANKS = _ranks(_PRIVATE_CHILDREN)
_SOURCE_ATTRIBUTE_ORDER = {
    kind: (*names, "startupPolicy") for kind, names in _SOURCE_ATTRIBUTES.items()
}
_OTHER_SOURCE_ATTRIBUTES = ("startupPolicy",)


# Wrappers libvirt writes with its element helper, which writes nothing for an element
# without attributes or children.
_OMITTED_WHEN_EMPTY = frozenset({"privateData", "nodenames", "objects", "fdsets", "slices",
                                 "nbdkit"})


def _drop_empty(element: etree._Element, tags: frozenset[str]) -> None:
    """Remove the children of `element` named in `tags` that hold nothing (no attribute,
    no child, no text but white space), as libvirt writes none of them."""
    for child in list(element):
        if child.tag in tags and not len(child) and not child.attrib \
                and not (child.text or "").strip():
            element.remove(child)


def _children_in_order(element: etree._Element, ranks: dict[object, int]) -> None:
    """Put `element`'s child elements in libvirt's order (`ranks`), any other after them
    as they came. Comments and processing instructions among them go (they are not
    written). Children already so (a file libvirt wrote) are only looked at."""
    last = len(ranks)
    places = [ranks.get(child.tag, last) for child in element]
    if -1 not in places and places == sorted(places):
        return
    children = [child for child in element if isinstance(child.tag, str)]
    element[:] = sorted(children, key=lambda child: ranks.get(child.tag, last))


def _in_order(element: etree._Element, attrs: dict[str, str], order: tuple[str, ...]) -> None:
    """Give `element` the attributes `attrs`, those named in `order` first, in that order."""
    ordered = [(key, attrs.pop(key)) for key in order if key in attrs]
    ordered += attrs.items()
    if ordered != element.items():
        element.attrib.clear()
        element.attrib.update(ordered)


def _as_libvirt_writes(source: etree._Element, kind: str) -> None:
    """Give a job image's `<source>` what libvirt reads into it and writes back: its
    attributes and children, and those of its `<privateData>`, in libvirt's order,
    `tlsFromConfig` on a network source (written always in status XML; 0 when absent),
    and on each TCP `<host>` without a port (or port 0) its protocol's default one,
    without `transport='tcp'` (the default)."""
    attrs = dict(source.attrib)
    if kind == "network":
        attrs.setdefault("tlsFromConfig", "0")
    _in_order(source, attrs, _SOURCE_ATTRIBUTE_ORDER.get(kind, _OTHER_SOURCE_ATTRIBUTES))
    _children_in_order(source, _SSH_RANKS if source.get("protocol") == "ssh"
                       else _SOURCE_RANKS)
    for private in source.iterchildren("privateData"):
        _children_in_order(private, _PRIVATE_RANKS)
        _drop_empty(private, _OMITTED_WHEN_EMPTY)
    _drop_empty(source, _OMITTED_WHEN_EMPTY)
    default = DEFAULT_PORTS.get(source.get("protocol") or "") if kind == "network" else None
    for host in source.iterchildren("host"):
        attrs = dict(host.attrib)
        if attrs.get("transport") == "tcp":
            del attrs["transport"]
        port = c_unsigned(attrs.pop("port", ""), 10, maximum=_PORT_MAX)
        if port:  # as libvirt writes the number it read
            attrs["port"] = str(port)
        elif default is not None and "transport" not in attrs:
            attrs["port"] = default
        _in_order(host, attrs, _HOST_ATTRIBUTES)


def _check_index(text: str | None, holder: object) -> None:
    if text and c_unsigned(text, 10) is None:
        raise SourceError(f"<{holder!s}>: index '{text}' is not an unsigned decimal number")


def _image(
    kind: str,
    fmt: str,
    source: etree._Element,
    index: str | None,
    below: etree._Element | None,
    *,
    format_children: tuple[Node, ...] = (),
    to_write: bool = False,
) -> StorageSource:
    """One image; `below` is the `<backingStore>` that describes what lies under it.

    `index` is `<source index>` on a chain's top image, `<backingStore index>` further down.
    `to_write` keeps the `<source>` element with its text as written (`rendered.py`): the
    image is built because it is about to be written. Otherwise it is kept as lxml's bytes
    until first read.
    """
    below_image, terminated = None, False
    if below is not None:
        below_image, terminated = read_backing(below, to_write=to_write)
    if to_write:
        _as_libvirt_writes(source, kind)
    storage, fmt_node = _node_names(source)
    return _new_image({
        "type": kind,
        "format": fmt,
        "element": (
            RenderedXML(source) if to_write
            # UTF-8: lxml's default, ASCII, writes a non-ASCII name as a character
            # reference, which no XML reader accepts (the first read raised).
            else SerializedXML(etree.tostring(source, encoding="utf-8", with_tail=False))
        ),
        "index": _index(index),
        "format_children": format_children,
        "backing": below_image,
        "terminated": terminated,
        "storage_node": storage,
        "format_node": fmt_node,
    })


def read_backing(
    backing: etree._Element, *, to_write: bool = False
) -> tuple[StorageSource | None, bool]:
    """Read a `<backingStore>` element: (the image it describes, terminated).

    Lenient: a `<backingStore>` that describes no usable image ends the chain.
    """
    kind = backing.get("type")
    if not kind:
        return None, True
    kids = first_children(backing)
    fmt_el = _format_of(backing, kids)
    source = kids.get("source")
    fmt = fmt_el.get("type") if fmt_el is not None else None
    if source is None or fmt_el is None or not fmt:
        return None, False
    extra = kept_node(fmt_el).children if len(fmt_el) else ()
    return _image(kind, fmt, source, backing.get("index"), kids.get("backingStore"),
                  format_children=extra, to_write=to_write), False


def _format_of(
    backing: etree._Element, kids: dict[object, etree._Element]
) -> etree._Element | None:
    """The `<format>` of a `<backingStore>` whose `type` libvirt reads (`format/@type`)."""
    first = kids.get("format")
    if first is not None and first.get("type") is not None:
        return first
    return attr_holder(backing, first, "format", "type")


def _check_backing(backing: etree._Element | None) -> None:
    """Refuse a job chain whose `<backingStore>` entries libvirt could not read."""
    while backing is not None:
        kind = backing.get("type")
        if not kind:
            return
        kids = first_children(backing)
        fmt_el = _format_of(backing, kids)
        fmt = fmt_el.get("type") if fmt_el is not None else None
        if "source" not in kids or not fmt:
            raise SourceError("<backingStore> needs <format type> and <source>")
        _check_known("backingStore", kind, fmt)
        _check_network("backingStore", kind, kids["source"])
        _check_index(backing.get("index"), "backingStore")
        backing = kids.get("backingStore")


PROTOCOLS = frozenset({"nbd", "rbd", "sheepdog", "gluster", "iscsi", "http", "https", "ftp",
                       "ftps", "tftp", "ssh", "vxhs", "nfs"})
_TRANSPORTS = frozenset({"tcp", "unix", "rdma"})
_PORT_MAX = 0xFFFF


def _check_network(tag: object, kind: str, source: etree._Element) -> None:
    """What libvirt's network-source parser refuses: a missing or unknown protocol, no
    `name` but for nbd, and hosts with an unknown transport, a unix one without a socket,
    or a port that is not a decimal number up to 65535."""
    if kind != "network":
        return
    protocol = source.get("protocol")
    if protocol not in PROTOCOLS:
        raise SourceError(f"<{tag!s}>: unknown network protocol '{protocol or ''}'")
    if not source.get("name") and protocol != "nbd":
        raise SourceError(f"<{tag!s}>: a {protocol} source needs a name")
    for host in source.iterchildren("host"):
        transport = host.get("transport") or "tcp"
        port = host.get("port")
        if transport not in _TRANSPORTS:
            raise SourceError(f"<{tag!s}>: unknown host transport '{transport}'")
        if transport == "unix" and not host.get("socket"):
            raise SourceError(f"<{tag!s}>: a unix host needs a socket")
        if port and c_unsigned(port, 10, maximum=_PORT_MAX) is None:
            raise SourceError(f"<{tag!s}>: host port '{port}' is not a number up to 65535")


def _check_known(tag: object, kind: str, fmt: str) -> None:
    """libvirt reads a job image, and each image below it, only of a known storage type
    and format, `none` excluded."""
    if kind not in STORAGE_TYPES:
        raise SourceError(f"<{tag!s}>: unknown storage type '{kind}'")
    if fmt not in FORMATS:
        raise SourceError(f"<{tag!s}>: unknown image format '{fmt}'")


def check_job_source(element: etree._Element, *, chain: bool) -> None:
    """Raise SourceError where libvirt refuses a job's storage source ("missing job chain data").

    `element` is `<disk>`/`<mirror>` of `<chains>` (`chain`: its `<backingStore>`s count),
    or `<src>`/`<store>`.
    """
    kind = element.get("type")
    fmt = element.get("format")
    kids = first_children(element)
    source = kids.get("source")
    index = source.get("index") if source is not None else None
    if index is None:  # XPath `source/@index`: a later `<source>` may hold it
        index = xpath_attr(element, source, "source", "index")
    tag = element.tag  # for messages: lxml builds the string on every read
    if not kind or not fmt or source is None or not index:
        raise SourceError(f"<{tag!s}> needs type, format, <source> and source/@index")
    _check_known(tag, kind, fmt)
    _check_network(tag, kind, source)
    _check_index(index, tag)
    if chain:
        _check_backing(kids.get("backingStore"))


def build_job_source(element: etree._Element, *, chain: bool) -> StorageSource:
    """The image of a job storage source that `check_job_source` accepted.

    Built when first asked for, usually to be written: its `<source>` elements are kept
    with their text as written.
    """
    kids = first_children(element)
    source = kids["source"]
    index = source.get("index")
    below = kids.get("backingStore") if chain else None
    return _image(element.get("type") or "", element.get("format") or "", source,
                  index if index is not None else xpath_attr(element, source, "source", "index"),
                  below, to_write=True)


def _lenient_image(
    kind: str, fmt: str, source: etree._Element, kids: dict[object, etree._Element]
) -> StorageSource:
    return _image(kind, fmt, source, source.get("index"), kids.get("backingStore"))


def read_disk_chain(disk: etree._Element) -> StorageSource | None:
    """The image chain of a domain `<disk>` (lenient: the domain is not ours to judge)."""
    kids = first_children(disk)
    source = kids.get("source")
    if source is None:
        return None
    driver = kids.get("driver")
    fmt = (driver.get("type") if driver is not None else None) or ""
    return _lenient_image(disk.get("type") or "", fmt, source, kids)


def read_mirror_chain(mirror: etree._Element) -> StorageSource | None:
    """The image chain of a domain disk's `<mirror>` element."""
    kids = first_children(mirror)
    source = kids.get("source")
    if source is None:
        return None
    fmt_el = kids.get("format")
    fmt = mirror.get("format") or (fmt_el.get("type") if fmt_el is not None else None) or ""
    return _lenient_image(mirror.get("type") or "", fmt, source, kids)


def _indexed(source: Node, index: int | None) -> Node:
    if index is None:
        return source
    return source.with_attrs((*source.attrs, ("index", str(index))))


def _source(image: StorageSource, *, top: bool, to_write: bool) -> Node:
    """`image`'s `<source>`, with `index` on a chain's top image only. `to_write`: the
    Node may be a `Verbatim` (its text as written, from `rendered.py`), only for writing."""
    if to_write and isinstance(image.element, RenderedXML):
        known = image.element.verbatim(image.index if top else None)
        if known is not None:
            return known
    return _indexed(image.source, image.index) if top else image.source


def backing_node(image: StorageSource, *, to_write: bool = False) -> Node | None:
    """The `<backingStore>` element that describes what lies below `image` (`to_write`:
    see `_source`)."""
    below = image.backing
    if below is None:
        return Node("backingStore") if image.terminated else None
    attrs = [("type", below.type)]
    if below.index is not None:
        attrs.append(("index", str(below.index)))
    children = [Node("format", (("type", below.format),), below.format_children),
                _source(below, top=False, to_write=to_write)]
    deeper = backing_node(below, to_write=to_write)
    if deeper is not None:
        children.append(deeper)
    return Node("backingStore", tuple(attrs), tuple(children))


def top_source_node(image: StorageSource) -> Node:
    """The `<source>` of a chain's top image; only there does it carry `index`."""
    return _source(image, top=True, to_write=False)


def disk_mirror_node(image: StorageSource, job: str, *, ready: bool) -> Node:
    """A disk's `<mirror>` for a copy or active commit into `image`, as libvirt 9.0
    writes it: the image alone (no backing), `index` on its `<source>`."""
    attrs = [("type", image.type), ("job", job)]
    if ready:
        attrs.append(("ready", "yes"))
    children = (Node("format", (("type", image.format),), image.format_children),
                top_source_node(image))
    return Node("mirror", tuple(attrs), children)


def job_source_node(tag: str, image: StorageSource) -> Node:
    """A job storage source element, `<disk>`/`<mirror>` of `<chains>`, `<src>`, `<store>`,
    for writing (see `_source`)."""
    children = [_source(image, top=True, to_write=True)]
    backing = backing_node(image, to_write=True)
    if backing is not None:
        children.append(backing)
    return Node(tag, (("type", image.type), ("format", image.format)), tuple(children))
