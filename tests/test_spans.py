"""Finding an element's bytes: the line-free shortcut for a name that occurs once."""

from __future__ import annotations

import pytest

import blockjob
from blockjob.statusxml.spans import element_span, sole_element_span
from tests.support.docs import jobs

_JOB = "<blockjob name='j' type='broken' state='failed'/>"


@pytest.mark.parametrize("body", [
    "<a>\n<b x='1'>\n<c/>\n</b>\n</a>",
    "<a><b x='&gt;'/></a>",  # empty element
    "<a><b\n  x='2'><c/></b></a>",  # a newline inside the start tag
])
def test_a_sole_start_tag_gives_the_span_element_span_gives(body: str) -> None:
    data = body.encode()
    line = 1 + data[:data.index(b">", data.index(b"<b")) + 1].count(b"\n")
    assert sole_element_span(data, b"b") == element_span(data, b"b", line)


@pytest.mark.parametrize("body", [
    "<a><!-- <b> --><b/></a>",  # a namesake in a comment
    "<a><b/><b/></a>",  # two elements
    "<a><bb/><b/></a>",  # a longer name that starts the same
    "<a><bb/></a>",  # only the longer name
])
def test_no_shortcut_unless_the_name_occurs_once_as_a_tag(body: str) -> None:
    assert sole_element_span(body.encode(), b"b") is None


def test_a_document_with_blockjobs_spelled_in_a_comment_is_written_right() -> None:
    comment = b"  <!-- <blockjobs/> -->\n"
    plain = blockjob.loads(jobs(_JOB))
    doc = blockjob.loads(jobs(_JOB).replace(b"  <blockjobs", comment + b"  <blockjobs", 1))
    assert doc.dumps() == plain.dumps().replace(b"  <blockjobs", comment + b"  <blockjobs", 1)
    doc.remove_job("j")
    plain.remove_job("j")
    assert doc.dumps() == plain.dumps().replace(b"  <blockjobs", comment + b"  <blockjobs", 1)
