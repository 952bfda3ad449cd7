"""`element_span` finds an element's bytes from the line lxml gives, whatever markup
(comments, CDATA sections, processing instructions) holds look-alike tags before it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from blockjob.statusxml.node import TRUSTED_PARSER
from blockjob.statusxml.spans import (
    LAST_LINE,
    AmbiguousSpanError,
    Locate,
    child_of_root,
    element_span,
)

# Pieces of a document body; `{}` is where a serial number goes.
_PIECES = (
    "<disk n='{}'/>",
    "<disk n='{}'><source/></disk>",
    "<disk\n  n='{}'>text</disk>",
    "<x><disk n='{}'/></x>",
    "<disk n='{}'><disk n='x'/></disk>",
    "<disks n='{}'/>",
    "<!-- <disk n='x'> -->",
    "<!--\n<disk n='x'/>\n-->",
    "<![CDATA[ <disk n='x'> ]]>",
    "<?pi <disk n='x'> ?>",
    "<!-- ! ? -->",
    "\n",
    "  ",
    "text!?",
)


def _document(pieces: list[int]) -> bytes:
    body = "".join(_PIECES[index].format(serial) for serial, index in enumerate(pieces))
    return f"<!-- header -->\n<root>\n{body}\n</root>\n".encode()


def _nth_disk(nth: int) -> Locate:
    return lambda root: list(root.iter("disk"))[nth]


def _spans_agree_with_lxml(data: bytes) -> int:
    """Check each `<disk>`'s span against lxml; returns how many disks there were."""
    disks = list(etree.fromstring(data).iter("disk"))
    for nth, disk in enumerate(disks):
        start, end = element_span(data, b"disk", disk.sourceline or 0, _nth_disk(nth))
        assert etree.fromstring(data[start:end]).get("n") == disk.get("n")
    return len(disks)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, len(_PIECES) - 1), max_size=30))
def test_each_element_is_found_past_any_markup(pieces: list[int]) -> None:
    _spans_agree_with_lxml(_document(pieces))


@pytest.mark.parametrize("before", [
    "<!-- <disk n='x'> -->", "<![CDATA[<disk n='x'>]]>", "<?pi <disk n='x'>?>",
    "<!-- <![CDATA[ -->", "<![CDATA[ <!-- ]]>", "<!-- ? --><?pi ! ?>",
])
def test_a_look_alike_in_markup_on_the_same_line_is_skipped(before: str) -> None:
    data = f"<!-- header -->\n<root>\n  {before}<disk n='1'/>\n</root>\n".encode()
    assert _spans_agree_with_lxml(data) == 1


def test_no_start_tag_on_the_line_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no <disk> start tag ending on line 1"):
        element_span(b"<root>\n<disk/>\n</root>", b"disk", 1)


@pytest.mark.parametrize("line", [
    "<x><disk n='nested'/></x><disk n='meant'>text</disk>",
    "<disk n='meant'><disk n='nested'/></disk>",
    "<disk n='meant'/><x><disk n='nested'>t</disk></x>",
])
def test_a_namesake_on_the_line_is_told_apart_by_the_tree(line: str) -> None:
    data = f"<root>\n  {line}\n</root>\n".encode()
    start, end = element_span(data, b"disk", 2, child_of_root("disk"))
    assert etree.fromstring(data[start:end]).get("n") == "meant"
    with pytest.raises(AmbiguousSpanError, match="more than one <disk> ends on line 2"):
        element_span(data, b"disk", 2)


def test_a_namesake_on_another_line_needs_no_tree() -> None:
    data = b"<root>\n<x><disk n='nested'/></x>\n<disk n='meant'/>\n</root>\n"
    start, end = element_span(data, b"disk", 3)
    assert data[start:end] == b"<disk n='meant'/>"


@pytest.mark.parametrize("namesake", ["<disk xmlns='urn:x' n='ns'/>",
                                      "<x xmlns='urn:x'><disk n='ns'>t</disk></x>"])
def test_a_namesake_in_another_namespace_on_the_line_is_told_apart(namesake: str) -> None:
    # Spelled `<disk` in the bytes, but `{urn:x}disk` to lxml: it was not counted among the
    # namesakes on the line, and the span of the element before the meant one was given.
    data = f"<root>\n  {namesake}<disk n='meant'/>\n</root>\n".encode()
    start, end = element_span(data, b"disk", 2, child_of_root("disk"))
    assert data[start:end] == b"<disk n='meant'/>"


def test_past_line_65535_the_element_is_counted_among_its_namesakes() -> None:
    # libxml2 stops counting lines at 65535: every later element says 65535, where no start
    # tag ended, and the span was a ValueError ("no <disk> start tag ending on line 65535").
    data = (b"<root>\n" + b"<disk n='early'/>\n" * 70_000
            + b"<!-- <disk n='x'/> --><disk n='meant'>\n<disk n='in'/></disk>\n</root>\n")
    root = etree.fromstring(data, TRUSTED_PARSER)
    meant = root[-1]
    assert meant.sourceline == LAST_LINE
    start, end = element_span(data, b"disk", LAST_LINE, lambda found: found[-1])
    assert data[start:end] == b"<disk n='meant'>\n<disk n='in'/></disk>"
    with pytest.raises(AmbiguousSpanError, match="past line 65535"):
        element_span(data, b"disk", LAST_LINE)
