"""A small immutable XML element, and libvirt's way of writing one.

Storage sources and invalid jobs are kept as these nodes so that whatever the
reader did not model is written back unchanged.
"""

from __future__ import annotations

import re

from lxml import etree

from blockjob.element import Node

# libvirt's escaping drops C0 controls except TAB, LF, CR and 0x1A-0x1F.
_DROP = re.compile("[\x01-\x08\x0b\x0c\x0e-\x19]")
_ESCAPES = str.maketrans(
    {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;"}
)
_NEEDS_WORK = re.compile("[<>&\"'\x01-\x08\x0b\x0c\x0e-\x19]")


def escape(value: str) -> str:
    """Escape a value the way libvirt's virBufferEscapeString does."""
    if _NEEDS_WORK.search(value) is None:
        return value
    return _DROP.sub("", value).translate(_ESCAPES)


def first_children(element: etree._Element) -> dict[object, etree._Element]:
    """The first child of each tag, like `find(tag)` for all tags at once, in one pass.

    `find` parses its argument as a path on every call; a dict of the few children an
    element has is cheaper as soon as two of them are looked up.
    """
    found: dict[object, etree._Element] = {}
    for child in element:
        found.setdefault(child.tag, child)
    return found


def from_lxml(element: etree._Element) -> Node:
    """Convert an lxml element, dropping comments and whitespace-only text."""
    # tuple.__new__ skips NamedTuple's Python-level constructor: this runs per element.
    if len(element):
        children = tuple([from_lxml(child) for child in element.iterchildren(_ELEMENTS)])
        if children:
            return _new(Node, (element.tag, tuple(element.items()), children, None))
    text = element.text
    if text is not None and not text.strip():
        text = None
    return _new(Node, (element.tag, tuple(element.items()), (), text))


_new = tuple.__new__
# Only for bytes from a document `xmlparse.parse` accepted: lxml's own serialization of
# part of it, or a slice of the file re-read.
TRUSTED_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


def node_from_xml(data: bytes) -> Node:
    return from_lxml(etree.fromstring(data, TRUSTED_PARSER))


class SerializedXML(bytes):
    """An element as lxml serialized it, made a Node on request (the model's SerializedNode).

    One string, which the garbage collector never walks, costs less to keep than nodes.
    """

    __slots__ = ()

    def node(self) -> Node:
        return node_from_xml(self)


# Comments and processing instructions carry nothing libvirt reads.
_ELEMENTS = etree.Element


def attrs_bytes(attrs: tuple[tuple[str, str], ...]) -> str:
    return "".join([f" {key}='{escape(value)}'" for key, value in attrs])


def write_node(
    out: list[str],
    node: Node,
    indent: str,
    *,
    pad: str | None = None,
    inline_tags: frozenset[str] = frozenset(),
) -> None:
    """Append `node` in libvirt style, nested lines at `indent`.

    `pad` replaces the indent of the first line only (libvirt indents a line only
    when the buffer ends in a newline). Children named in `inline_tags` are
    written without their trailing newline, as libvirt does for `<errmsg>`.
    """
    start = f"{indent if pad is None else pad}<{node.tag}{attrs_bytes(node.attrs)}"
    if node.text is not None:
        out.append(f"{start}>{escape(node.text)}</{node.tag}>\n")
        return
    if not node.children:
        out.append(f"{start}/>\n")
        return
    out.append(f"{start}>\n")
    inner = indent + "  "
    at_line_start = True
    for child in node.children:
        first = None if at_line_start else ""
        if child.tag in inline_tags and child.text is not None and not child.children:
            prefix = inner if at_line_start else ""
            out.append(
                f"{prefix}<{child.tag}{attrs_bytes(child.attrs)}>{escape(child.text)}</{child.tag}>"
            )
            at_line_start = False
        else:
            write_node(out, child, inner, pad=first)
            at_line_start = True
    out.append(f"{indent if at_line_start else ''}</{node.tag}>\n")
