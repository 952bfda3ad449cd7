"""An independent judge of the document's byte-span edits (tests only).

Where each element's bytes are comes from expat's byte offsets, which owe nothing to the
codec's tag scanning or to lxml's line numbers; what an edit must mean comes from an lxml
tree on which the same edit is made the plain way. `check_edit` then asks that the bytes
outside the edited elements are untouched and that the rest of the document still says
what it said.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from xml.parsers import expat

from lxml import etree

# Read as the codec reads: UTF-8 whatever the declaration says, nothing resolved.
_PARSER = etree.XMLParser(encoding="utf-8", resolve_entities=False, no_network=True,
                          remove_blank_text=False, huge_tree=True)

# Text between markup (from a `>` to the next `<`), whose blanks an added or removed
# element may move: see `check_edit`.
_TEXT = re.compile(rb"(?<=>)[^<]+")
_BLANKS = re.compile(rb"[ \t\r\n]+")


def _without_text_blanks(data: bytes) -> bytes:
    return _TEXT.sub(lambda found: _BLANKS.sub(b"", found[0]), data)


Select = Callable[[etree._Element], list[etree._Element]]


@dataclass(frozen=True)
class Span:
    start: int  # the `<` of its start tag
    end: int  # just past its end tag, or past `/>`


def _tag_end(data: bytes, at: int) -> int:
    """Just past the `>` of the tag whose `<` is at `at` (a `>` may sit in a value)."""
    quote = 0
    for i in range(at + 1, len(data)):
        byte = data[i]
        if quote:
            quote = 0 if byte == quote else quote
        elif byte in b"'\"":
            quote = byte
        elif byte == 0x3E:
            return i + 1
    raise AssertionError(f"tag at byte {at} is never closed")


def readable(data: bytes) -> bool:
    """Whether expat reads `data`: it follows XML 1.0's fourth edition, where fewer
    characters make names than in the fifth, which libxml2 follows."""
    try:
        expat.ParserCreate(encoding="UTF-8").Parse(data, True)
    except expat.ExpatError:
        return False
    return True


def spans(data: bytes) -> list[Span]:
    """Every element's span, in document order (lxml's `iter(etree.Element)` order)."""
    parser = expat.ParserCreate(encoding="UTF-8")
    starts: list[int] = []
    ends: dict[int, int] = {}
    stack: list[int] = []

    def start(_name: str, _attrs: object) -> None:
        stack.append(len(starts))
        starts.append(parser.CurrentByteIndex)

    def end(_name: str) -> None:
        index = stack.pop()
        head = _tag_end(data, starts[index])
        ends[index] = head if data[head - 2] == 0x2F else _tag_end(data, parser.CurrentByteIndex)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(data, True)
    return [Span(at, ends[i]) for i, at in enumerate(starts)]


def tree(data: bytes) -> etree._Element:
    return etree.fromstring(data, _PARSER)


def _position(root: etree._Element, element: etree._Element) -> int:
    return next(i for i, e in enumerate(root.iter(etree.Element)) if e is element)


def _spans_of(data: bytes, root: etree._Element, elements: list[etree._Element]) -> list[Span]:
    every = spans(data)
    return [every[_position(root, element)] for element in elements]


def canonical(root: etree._Element) -> bytes:
    """The document's meaning: C14N with comments, each run of blanks in text one space (a
    rewritten element gets its own line, also amid text; the bytes check the rest)."""
    copy = deepcopy(root)  # with the comments and processing instructions beside it
    for element in copy.iter():
        if element.text is not None and isinstance(element.tag, str):
            element.text = " ".join(element.text.split()) or None
        if element.tail is not None:
            element.tail = " ".join(element.tail.split()) or None
    try:
        return etree.tostring(copy.getroottree(), method="c14n", with_comments=True)
    except etree.C14NError:  # a relative namespace URI (`xmlns:q='backup'`): as written
        return etree.tostring(copy.getroottree(), encoding="utf-8")


def _outside(data: bytes, targets: list[Span]) -> bytes:
    """`data` without `targets` and the blanks next to each."""
    pieces, at = [], 0
    for span in sorted(targets, key=lambda s: s.start):
        pieces.append(data[at:span.start].rstrip(b" \t\r\n"))
        at = span.end
        while at < len(data) and data[at] in b" \t\r\n":
            at += 1
    pieces.append(data[at:])
    return b"".join(pieces)


def _remove(element: etree._Element) -> None:
    """Take `element` out of its tree, keeping the text after it."""
    parent = element.getparent()
    assert parent is not None
    previous = element.getprevious()
    if element.tail and element.tail.strip():
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def check_edit(before: bytes, after: bytes, select: Select) -> None:
    """`after` is `before` with the elements `select` picks in each rewritten, removed or
    added: every other byte stays (the blanks beside them aside), and the rest of the
    document means the same."""
    old, new = tree(before), tree(after)
    old_targets, new_targets = select(old), select(new)
    kept = _outside(before, _spans_of(before, old, old_targets))
    left = _outside(after, _spans_of(after, new, new_targets))
    if len(old_targets) != len(new_targets):
        # Added or removed: the blank lines around it may come or go, and a removed element
        # amid text leaves the blanks on both sides of it joined, where the old bytes lose
        # them with it. So blanks in text do not count here; markup's do, and `canonical`
        # below still sees text that gained or lost a run of blanks.
        kept, left = _without_text_blanks(kept), _without_text_blanks(left)
    assert kept == left, "bytes outside the edited elements changed"
    for element in (*old_targets, *new_targets):
        _remove(element)
    assert canonical(new) == canonical(old), "the document outside the edit means another thing"


# What each edit may touch, picked the plain way -------------------------------------------


def every_blockjobs(root: etree._Element) -> list[etree._Element]:
    """Every `<blockjobs>` of the root: the jobs of each are written into the first."""
    return root.findall("blockjobs")


def backup_parts(root: etree._Element) -> list[etree._Element]:
    """What `end_backup` removes: `<backups>` and `<job async='backup'>` of the root."""
    return [e for e in root if e.tag == "backups" or (e.tag == "job" and e.get("async") ==
                                                       "backup")]


def disk_of(target: str) -> Select:
    """The domain's `<disk>` libvirt reads for `target`: the first whose first `<target>`
    names it."""
    def select(root: etree._Element) -> list[etree._Element]:
        for disk in root.iterfind("domain/devices/disk"):
            first = disk.find("target")
            if first is not None and first.get("dev") == target:
                return [disk]
        return []

    return select
