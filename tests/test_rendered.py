"""A `<source>` written from lxml's serialization is byte for byte what nodes write."""

from __future__ import annotations

import pickle
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import blockjob
from blockjob.statusxml.node import (
    TRUSTED_PARSER,
    escape_attr,
    escape_text,
    from_lxml,
    kept_node,
    write_node,
)
from blockjob.statusxml.rendered import RenderedXML
from tests.support.corpus import status_file_params

DATA = Path(__file__).parent / "data"


def _by_nodes(element: etree._Element, index: int | None, indent: str) -> str:
    """What the model path writes: the Node, `index` dropped, put back last when given."""
    node = from_lxml(element)
    attrs = tuple(kv for kv in node.attrs if kv[0] != "index")
    if index is not None:
        attrs += (("index", str(index)),)
    out: list[str] = []
    write_node(out, node.with_attrs(attrs), indent)
    return "".join(out)


def _rendered(element: etree._Element, index: int | None, indent: str) -> str | None:
    known = RenderedXML(element).verbatim(index)
    if known is None:
        return None
    out: list[str] = []
    write_node(out, known, indent)
    return "".join(out)


def _check(element: etree._Element) -> bool:
    """Both ways agree wherever the shortcut is taken; True when it was."""
    taken = False
    for index in (None, 7):
        for indent in ("", "      "):
            text = _rendered(element, index, indent)
            if text is not None:
                taken = True
                assert text == _by_nodes(element, index, indent)
    assert RenderedXML(element).node() == kept_node(element)
    return taken


def _sources(data: bytes) -> list[etree._Element]:
    return list(etree.fromstring(data, TRUSTED_PARSER).iter("source"))


@pytest.mark.parametrize("path", status_file_params())
def test_every_source_of_libvirts_files_renders_as_nodes_write_it(path: Path) -> None:
    for source in _sources(path.read_bytes()):
        _check(source)


def test_the_fixtures_job_images_take_the_shortcut() -> None:
    data = (DATA / "orphan-chains-in.xml").read_bytes()
    blockjobs = etree.fromstring(data, TRUSTED_PARSER).find("blockjobs")
    assert blockjobs is not None
    assert all(_check(source) for source in blockjobs.iter("source"))


@pytest.mark.parametrize("xml", [
    "<source file='/a&amp;b'/>",  # escaped by both, differently
    "<source file=\"it's\"/>",  # libvirt escapes the quote, lxml does not
    "<source file='/a'>say \"hi\"</source>",  # libvirt escapes `"` in text, lxml does not
    "<source file='/a'>text<host/></source>",  # text beside elements
    "<source file='/a'><!-- c --><host/></source>",
    "<source file='/a'><?pi x?><host/></source>",
    "<source xmlns:x='urn:x' x:file='/a'/>",
    "<source file='/a'><host name='h'/>tail</source>",
    "<source file='/a'><cookie name='c'>one\ntwo</cookie></source>",  # text over two lines
    "<source>" + "<a>" * 40 + "</a>" * 40 + "</source>",  # deeper than lxml indents
])
def test_the_shortcut_is_refused_where_lxml_writes_otherwise(xml: str) -> None:
    element = etree.fromstring(xml.encode(), TRUSTED_PARSER)
    assert RenderedXML(element).verbatim(None) is None
    _check(element)


def test_blank_text_in_a_leaf_is_kept_both_ways() -> None:
    element = etree.fromstring(b"<source file='/a'><host>  </host></source>", TRUSTED_PARSER)
    assert _check(element)
    assert from_lxml(element).children[0].text == "  "


@pytest.mark.parametrize("char", ["\t", "\n", "\r"])
def test_lxml_escapes_tab_lf_and_cr_as_the_writer_does(char: str) -> None:
    # The shortcut never sees these escaped (lxml's `&` refuses it), but both ways agree.
    element = etree.Element("source", file=f"a{char}b")
    element.text = f"c{char}d"
    written = etree.tostring(element, encoding="unicode")
    value, text = escape_attr(f"a{char}b"), escape_text(f"c{char}d")
    assert written == f'<source file="{value}">{text}</source>'


_NAMES = st.sampled_from(["file", "name", "index", "dev", "a-b", "x.y"])
_VALUES = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")) | st.sampled_from(
    "<>&'\"\t\n\r é"), max_size=8)


@st.composite
def _elements(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(["source", "host", "privateData", "nodename", "cookie"]))
    names = draw(st.lists(_NAMES, max_size=3, unique=True))
    attrs = "".join(f" {name}={quoteattr(draw(_VALUES))}" for name in names)
    kids = draw(st.lists(_elements(depth + 1), max_size=3)) if depth < 2 else []
    text = draw(st.sampled_from(["", "", "", " ", "t", " t&amp;\"", "<!--c-->", "<?p?>",
                                 "a\nb", "\tb\n", "\tb", "a&#13;b", "  "]))
    return f"<{tag}{attrs}>{text}{''.join(kids)}</{tag}>"


@settings(max_examples=300, deadline=None)
@given(_elements())
def test_random_elements_render_as_nodes_write_them(xml: str) -> None:
    _check(etree.fromstring(xml.encode(), TRUSTED_PARSER))


def test_a_document_with_rendered_images_pickles_and_dumps_the_same() -> None:
    doc = blockjob.loads((DATA / "orphan-chains-in.xml").read_bytes())
    first = doc.dumps()
    copied = pickle.loads(pickle.dumps(doc))
    assert copied.dumps() == first
    job = next(job for job in copied.jobs if job.chains is not None)
    assert job.chains is not None and job.chains.disk is not None
    assert job.chains.disk == next(j for j in doc.jobs if j.name == job.name).chains.disk  # type: ignore[union-attr]
