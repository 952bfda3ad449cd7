"""`element_span` finds an element's bytes from the line lxml gives, whatever markup
(comments, CDATA sections, processing instructions) holds look-alike tags before it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from blockjob.statusxml.spans import element_span

# Pieces of a document body; `{}` is where a serial number goes.
_PIECES = (
    "<disk n='{}'/>",
    "<disk n='{}'><source/></disk>",
    "<disk\n  n='{}'>text</disk>",
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


def _spans_agree_with_lxml(data: bytes) -> int:
    """Check each `<disk>`'s span against lxml; returns how many disks there were."""
    disks = list(etree.fromstring(data).iter("disk"))
    seen_on: dict[int, int] = {}
    for disk in disks:
        line = disk.sourceline or 0
        nth = seen_on.get(line, 0)
        seen_on[line] = nth + 1
        start, end = element_span(data, b"disk", line, nth)
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
