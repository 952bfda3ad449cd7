"""A small immutable XML element, and libvirt's way of writing one.

Storage sources and invalid jobs are kept as these nodes so that whatever the
reader did not model is written back unchanged.
"""

from __future__ import annotations

import re

from lxml import etree

from blockjob.element import Node

# libvirt's escaping (docs/format.md#bytes) drops C0 controls except TAB, LF, CR and
# 0x1A-0x1F, and entity-escapes five characters. Where an XML reader would not give the
# value back, we write a character reference instead (docs/format.md#differences): TAB,
# LF and CR in attribute values (normalised to spaces), CR in text (read as LF). What no
# XML reader accepts at all, escaped or not, is dropped too: 0x1A-0x1F, U+FFFE, U+FFFF
# (libvirt writes them, and its next start cannot load the file), and lone surrogates (a
# Python string may hold them; no UTF-8 encodes them). A value ends at NUL, as libvirt's C
# strings do: written raw, NUL makes a file nothing loads.
_LOST = "\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff"
_DROP = re.compile(f"[{_LOST}]")
_CHANGED = re.compile(f"[\x00{_LOST}]")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;"}
_ATTR_ESCAPES = str.maketrans({**_ENTITIES, "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})
_TEXT_ESCAPES = str.maketrans({**_ENTITIES, "\r": "&#13;"})
_ATTR_NEEDS_WORK = re.compile(f"[<>&\"'\t\n\r\x00{_LOST}]")
_TEXT_NEEDS_WORK = re.compile(f"[<>&\"'\r\x00{_LOST}]")


def escape_attr(value: str) -> str:
    """Escape an attribute value (see above)."""
    if _ATTR_NEEDS_WORK.search(value) is None:
        return value
    return _DROP.sub("", value.partition("\x00")[0]).translate(_ATTR_ESCAPES)


def escape_text(value: str) -> str:
    """Escape text content (see above)."""
    if _TEXT_NEEDS_WORK.search(value) is None:
        return value
    return _DROP.sub("", value.partition("\x00")[0]).translate(_TEXT_ESCAPES)


def written_as_is(value: str) -> bool:
    """Whether `value` reads back whole once written: nothing in it is dropped or cut off."""
    return _CHANGED.search(value) is None


def compiled_xpath(path: str) -> etree.XPath:
    """`path` compiled for the load path. Without lxml's EXSLT regular expressions (`re:`,
    which no query here uses): an XPath object registers them in its context on every
    call, about 2,400 of the 8,400 instructions of a call that finds nothing."""
    return etree.XPath(path, regexp=False)


def first_children(element: etree._Element) -> dict[object, etree._Element]:
    """The first child of each tag, like `find(tag)` for all tags at once, in one pass.

    `find` parses its argument as a path on every call; a dict of the few children an
    element has is cheaper as soon as two of them are looked up.
    """
    found: dict[object, etree._Element] = {}
    for child in element:
        found.setdefault(child.tag, child)
    return found


def attr_holder(
    element: etree._Element, first: etree._Element | None, tag: str, name: str
) -> etree._Element | None:
    """The `tag` child of `element` whose attribute `name` libvirt's XPath
    `string(./tag/@name)` reads: the first one that has it. `first` is the first `tag`
    child (`first_children`), which usually has it."""
    if first is None or first.get(name) is not None:
        return first
    return next((child for child in element.iterchildren(tag) if child.get(name) is not None),
                None)


def xpath_attr(
    element: etree._Element, first: etree._Element | None, tag: str, name: str
) -> str | None:
    """XPath `string(./tag/@name)` as libvirt reads it (`attr_holder`); None when no `tag`
    child has the attribute or its value is empty (libvirt's "absent")."""
    if first is None:
        return None
    value = first.get(name)
    if value is None:  # rare: a later `tag` child may have it
        found = attr_holder(element, first, tag, name)
        value = found.get(name) if found is not None else None
    return value or None


def first_at(element: etree._Element, path: tuple[str, ...]) -> etree._Element | None:
    """The first element of XPath `./a/b/...` below `element`, in document order: the
    first `b` of the first `a` that has one."""
    found = element
    for tag in path:  # the first child at each step is usually the answer, found fastest
        below = first_children(found).get(tag)
        if below is None:
            return _first_below(element, path)
        found = below
    return found


def _first_below(element: etree._Element, path: tuple[str, ...]) -> etree._Element | None:
    rest = path[1:]
    for child in element.iterchildren(path[0]):
        found = _first_below(child, rest) if rest else child
        if found is not None:
            return found
    return None


def from_lxml(element: etree._Element) -> Node:
    """Convert an lxml element, dropping comments, processing instructions and the (blank)
    text between child elements; an element without child elements keeps its string
    value, the text around them."""
    # tuple.__new__ skips NamedTuple's Python-level constructor: this runs per element.
    if len(element):
        children = tuple([from_lxml(child) for child in element.iterchildren(_ELEMENTS)])
        if children:
            return _new(Node, (element.tag, tuple(element.items()), children, None))
        text = string_value(element) or None
    else:
        text = element.text
    return _new(Node, (element.tag, tuple(element.items()), (), text))


def string_value(element: etree._Element) -> str:
    """XPath's string value of `element`, as libvirt reads text: every text node below it
    joined, the content of comments and processing instructions left out."""
    return (element.text or "") if not len(element) else "".join(element.itertext())


def text_dropped(element: etree._Element) -> list[etree._Element]:
    """The elements at or below `element` whose non-blank text its Node loses: text beside
    child elements (a Node holds children or text, not both)."""
    return [inner for inner in element.iter(_ELEMENTS) if _text_beside_children(inner)]


def _text_beside_children(element: etree._Element) -> bool:
    if next(element.iterchildren(_ELEMENTS), None) is None:
        return False  # its string value is kept
    return any(text and text.strip() for text in (element.text, *(c.tail for c in element)))


_new = tuple.__new__
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_IN_XML_NS = "{" + _XML_NS + "}"  # `xml:` names, declared by XML itself


def _uses_namespaces(element: etree._Element) -> bool:
    return any(
        str(e.tag)[0] == "{" or any(key[0] == "{" for key in e.attrib)
        for e in element.iter(_ELEMENTS)
    )


def prefixed(element: etree._Element, key: str) -> str:
    """Attribute `key` of `element` (lxml's `{uri}local`, or plain) as written:
    `prefix:local` in `element`'s scope."""
    if key[0] != "{":
        return key
    uri, local = key[1:].split("}", 1)
    if uri == _XML_NS:
        return f"xml:{local}"
    # A default namespace never applies to an attribute, so its prefix has a name.
    prefix = next(p for p, u in element.nsmap.items() if u == uri and p is not None)
    return f"{prefix}:{local}"


def tag_as_written(element: etree._Element) -> str:
    """`element`'s name as written: `prefix:local` when it has a prefix."""
    tag = str(element.tag)
    if tag[0] != "{":
        return tag
    local = tag[tag.index("}") + 1:]
    return f"{element.prefix}:{local}" if element.prefix else local


def declarations(
    element: etree._Element, inherited: dict[str | None, str]
) -> list[tuple[str, str]]:
    """The `xmlns` attributes `element` needs beyond the namespaces in `inherited`."""
    return [(f"xmlns:{p}" if p else "xmlns", uri) for p, uri in element.nsmap.items()
            if inherited.get(p) != uri]


def _namespaces_used(element: etree._Element) -> dict[str | None, str]:
    """The namespace each prefix `element`'s own names are written with stands for ("": no
    namespace, for an unprefixed name outside one)."""
    tag = str(element.tag)
    used: dict[str | None, str] = {element.prefix: _uri(tag)} if tag[0] == "{" else {None: ""}
    for key in element.attrib:
        if key[0] == "{" and not key.startswith(_IN_XML_NS):
            written = prefixed(element, key)
            used[written[: written.index(":")]] = _uri(key)
    return used


def _uri(name: str) -> str:
    return name[1 : name.index("}")]


def _with_prefixes(element: etree._Element, scope: dict[str | None, str]) -> Node:
    """`element` with its names as written, declaring each namespace it uses that `scope`
    (the declarations in force where it is written) lacks, so it reads the same there."""
    declared = {prefix: uri for prefix, uri in _namespaces_used(element).items()
                if scope.get(prefix, "") != uri}
    if declared:
        scope = {**scope, **declared}
    attrs = [(f"xmlns:{p}" if p else "xmlns", uri) for p, uri in declared.items()]
    attrs += [(prefixed(element, key), value) for key, value in element.items()]
    children = tuple(_with_prefixes(child, scope) for child in element.iterchildren(_ELEMENTS))
    text = None if children else string_value(element) or None
    return _new(Node, (tag_as_written(element), tuple(attrs), children, text))


def kept_node(element: etree._Element, scope: dict[str | None, str] | None = None) -> Node:
    """`from_lxml` for an element whose names may lie in a namespace.

    lxml names those `{uri}local`, which is no XML name: they keep their prefix instead,
    and the element declares the namespaces it uses beyond `scope`, those declared where it
    is written. By default that is the document root's (the only ancestor of a job's parts
    written back byte for byte), or none in a tree parsed from part of a document.
    """
    if not _uses_namespaces(element):
        return from_lxml(element)
    if scope is None:
        root = element.getroottree().getroot()
        scope = dict(root.nsmap) if root.tag == "domstatus" and root is not element else {}
    return _with_prefixes(element, scope)


# Only for bytes from a document `parse.parse` accepted: lxml's own serialization of
# part of it, or a slice of the file re-read. Read as UTF-8, as `parse` reads the file: a
# declared `encoding='ISO-8859-1'` made other characters of a whole document read again.
TRUSTED_PARSER = etree.XMLParser(encoding="utf-8", resolve_entities=False, no_network=True,
                                 remove_blank_text=True)


def node_from_xml(data: bytes) -> Node:
    """The element lxml serialized as `data`; lxml declares at its top every namespace in
    scope, so one that uses none has no `xmlns` (and takes the quicker conversion)."""
    element = etree.fromstring(data, TRUSTED_PARSER)
    return kept_node(element) if b"xmlns" in data else from_lxml(element)


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
    return "".join([f" {key}='{escape_attr(value)}'" for key, value in attrs])


class Verbatim(Node):
    """An element for `write_node` whose libvirt text is already known (`rendered.py`):
    `start` is its start tag up to the attributes' end, `rest` what follows, its nested
    lines unindented. Only for writing: its Node fields hold nothing of it."""

    start: str
    rest: str

    def write(self, out: list[str], indent: str, first: str) -> None:
        rest = self.rest[:-1].replace("\n", "\n" + indent)  # it ends with its last newline
        out.append(f"{first}{self.start}{rest}\n")


def verbatim(tag: str, start: str, rest: str) -> Verbatim:
    node = _new(Verbatim, (tag, (), (), None))
    node.start, node.rest = start, rest
    return node


def write_node(
    out: list[str],
    node: Node,
    indent: str,
    *,
    pad: str | None = None,
) -> None:
    """Append `node` in libvirt style, nested lines at `indent`.

    `pad` replaces the indent of the first line only (libvirt indents a line only
    when the buffer ends in a newline).
    """
    if type(node) is Verbatim:
        node.write(out, indent, indent if pad is None else pad)
        return
    start = f"{indent if pad is None else pad}<{node.tag}{attrs_bytes(node.attrs)}"
    if node.text is not None:
        out.append(f"{start}>{escape_text(node.text)}</{node.tag}>\n")
        return
    if not node.children:
        out.append(f"{start}/>\n")
        return
    out.append(f"{start}>\n")
    inner = indent + "  "
    for child in node.children:
        write_node(out, child, inner)
    out.append(f"{indent}</{node.tag}>\n")
