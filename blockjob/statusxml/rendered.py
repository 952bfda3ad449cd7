"""A job image's `<source>` written by lxml's serializer, where that gives libvirt's text.

A job image's `<source>` carries a few elements of private data (node names, secrets), and
building them as nodes and writing those node by node cost more than the rest of a first
dump (docs/performance.md). lxml's C serializer, indenting, writes the very text
`write_node(from_lxml(element))` writes, up to the quotes around attribute values, when
the element holds no comment, processing instruction, namespace or text outside a leaf
(`plain`), and nothing needs escaping: lxml escapes with `&`, and leaves alone `'`
(in values and text) and `"` (in text), which libvirt escapes. `RenderedXML` checks
exactly that and otherwise leaves the writing to nodes; `tests/test_rendered.py` holds
both ways equal.
"""

from __future__ import annotations

from lxml import etree

from blockjob.element import Node
from blockjob.statusxml.node import Verbatim, node_from_xml, verbatim

# libxml2 stops indenting deeper at 60 spaces (30 levels); nodes indent on.
_CAPPED = "\n" + " " * 60


def plain(element: etree._Element) -> bool:
    """No comment, processing instruction or text between elements, and text only in
    leaves, without `"` (lxml leaves it alone) and on one line (the written text is
    indented line by line)."""
    for inner in element.iter():
        text = inner.text
        if not isinstance(inner.tag, str) or (inner.tail is not None and inner is not element) \
                or (text is not None and (len(inner) or '"' in text or "\n" in text)):
            return False
    return True


def pretty(element: etree._Element) -> str:
    """lxml's indented text of `element`."""
    return etree.tostring(element, encoding="unicode", pretty_print=True, with_tail=False)


def escaped_alike(xml: str) -> bool:
    """Whether `pretty` text `xml` of a `plain` element is libvirt's text of it but for the
    quotes: nothing in it escaped, no namespace declared, no indentation capped."""
    return not ("&" in xml or "'" in xml or "xmlns" in xml or _CAPPED in xml)


def start_and_rest(xml: str) -> tuple[str, str]:
    """Such a text cut where a `Verbatim` wants it, in single quotes. Values hold no `>`
    (lxml writes `&gt;`) and no quote: the start tag ends at the first `>`, and `"` only
    delimits values."""
    end = xml.index(">")
    if xml[end - 1] == "/":
        end -= 1
    return xml[:end].replace('"', "'"), xml[end:].replace('"', "'")


class RenderedXML:
    """An element as lxml serialized it, made a Node on request (the model's
    SerializedNode), and libvirt's text of it without its `index` attribute when lxml's
    text is that (`start` None otherwise)."""

    __slots__ = ("rest", "start", "tag", "xml")

    def __init__(self, element: etree._Element) -> None:
        self.tag = str(element.tag)
        self.xml = xml = pretty(element)
        self.start: str | None = None
        self.rest = ""
        if not escaped_alike(xml) or not plain(element):
            return
        start, self.rest = start_and_rest(xml)
        index = element.get("index")
        if index is not None:
            start = start.replace(f" index='{index}'", "", 1)
        self.start = start

    def __getstate__(self) -> tuple[str, str, str | None, str]:
        return self.tag, self.xml, self.start, self.rest

    def __setstate__(self, state: tuple[str, str, str | None, str]) -> None:
        self.tag, self.xml, self.start, self.rest = state

    def node(self) -> Node:
        return node_from_xml(self.xml.encode())

    def verbatim(self, index: int | None) -> Verbatim | None:
        """The element as `write_node` writes it, `index` (if any) its last attribute."""
        if self.start is None:
            return None
        start = self.start if index is None else f"{self.start} index='{index}'"
        return verbatim(self.tag, start, self.rest)
