"""RelaxNG and XSD must give the same verdict on every document, not just the ones we wrote.

Valid documents are mutated (elements deleted, duplicated, moved, renamed; attributes
dropped, added, changed, xsi:* ones too; text inserted, Unicode white space included;
comments and processing instructions inserted) and both engines judge each result. The CI
run is bounded; `make fuzz` sets BLOCKJOB_FUZZ_EXAMPLES for a long one.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import sys
from collections.abc import Callable, Iterator
from functools import cache

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from blockjob.statusxml.parse import parse
from blockjob.validation import rng, xsd
from tests.support.corpus import status_files
from tests.test_schema_support import DATA, MINIMAL, SCHEMAS, UNMODELLED

EXAMPLES = int(os.environ.get("BLOCKJOB_FUZZ_EXAMPLES", "300"))
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSI_NAMES = ("type", "nil", "schemaLocation", "noNamespaceSchemaLocation")
# Resolvable or not, derived from the element's type or not, well-formed hints or not.
XSI_VALUES = ("pullJob", "anyContent", "nothing", "noSuchType", "true", "urn:x x.xsd", "x.xsd")


@cache
def unicode_spaces() -> tuple[str, ...]:
    """Every character XML allows that Python's str.isspace() calls white space: XML's own
    four (#x20 #x9 #xA #xD) and the ones that are text to XML (U+0085, U+00A0, U+2028, ...)."""
    return tuple(c for c in map(chr, range(sys.maxunicode + 1))
                 if c.isspace() and (c >= " " or c in "\t\n\r"))


@cache
def _vocabulary() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Element names, attribute names and values the schemas mention, plus near misses."""
    text = b"".join(path.read_bytes() for path in SCHEMAS.glob("*.*"))
    names = {m.decode() for m in re.findall(rb'name="([A-Za-z_][\w.-]*)"', text)}
    values = {m.decode() for m in re.findall(rb'(?:value|type="string")[">=]+"?([^"<]*)', text)}
    values |= {"", " ", "yes ", " no", "0x0", "0xAB", "0x", "12", "+5", "-1", "libvirt-1-format"}
    return tuple(sorted(names | {"foo", "domstatus"})), tuple(sorted(names)), tuple(sorted(values))


def _compact(data: bytes) -> bytes:
    """A status file without its <domain> and other private data: both engines skip those
    anyway, and small documents make more examples per second."""
    root = parse(data, "<seed>")
    for child in list(root):
        if child.tag != "blockjobs":
            root.remove(child)
    return etree.tostring(root)


@cache
def _seeds() -> tuple[bytes, ...]:
    seeds = [MINIMAL, UNMODELLED, *(p.read_bytes() for p in sorted(DATA.glob("*-out.xml")))]
    # ../shared is optional here; MINIMAL alone still exercises every rule.
    with contextlib.suppress(pytest.skip.Exception):
        seeds += [p.read_bytes() for p in status_files()]
    # Two whole documents: the elements around <blockjobs> take anything, xsi:* included.
    return (MINIMAL, UNMODELLED, *dict.fromkeys(_compact(seed) for seed in seeds))


def _elements(root: etree._Element) -> list[etree._Element]:
    # Mutate the block-job part (where the schemas have rules) and the root itself.
    return [root, *(e for e in root.iter() if isinstance(e.tag, str) and e is not root)]


Mutation = Callable[[st.DataObject, etree._Element], None]


def _pick_below(data: st.DataObject, root: etree._Element) -> etree._Element | None:
    below = _elements(root)[1:]
    return data.draw(st.sampled_from(below)) if below else None


def _delete(data: st.DataObject, root: etree._Element) -> None:
    element = _pick_below(data, root)
    if element is None:
        return
    element.getparent().remove(element)  # type: ignore[union-attr]


def _duplicate(data: st.DataObject, root: etree._Element) -> None:
    element = _pick_below(data, root)
    if element is None:
        return
    element.addnext(copy.deepcopy(element))


def _move(data: st.DataObject, root: etree._Element) -> None:
    element = _pick_below(data, root)
    if element is None:
        return
    targets = [e for e in _elements(root) if e is not element and element not in e.iterancestors()]
    target = data.draw(st.sampled_from(targets))
    target.insert(data.draw(st.integers(0, len(target))), element)


def _rename(data: st.DataObject, root: etree._Element) -> None:
    element = _pick_below(data, root)
    if element is None:
        return
    element.tag = data.draw(st.sampled_from(_vocabulary()[0]))


def _drop_attribute(data: st.DataObject, root: etree._Element) -> None:
    element = data.draw(st.sampled_from(_elements(root)))
    if element.attrib:
        del element.attrib[data.draw(st.sampled_from(sorted(element.attrib)))]


def _set_attribute(data: st.DataObject, root: etree._Element) -> None:
    element = data.draw(st.sampled_from(_elements(root)))
    _, attributes, values = _vocabulary()
    name = data.draw(st.sampled_from(sorted({*element.attrib, *attributes})))
    element.set(name, data.draw(st.sampled_from(values)))


def _set_text(data: st.DataObject, root: etree._Element) -> None:
    element = data.draw(st.sampled_from(_elements(root)))
    element.text = data.draw(st.sampled_from(["", " ", "\n  ", "x"]))


def _insert(data: st.DataObject, root: etree._Element) -> None:
    parent = data.draw(st.sampled_from(_elements(root)))
    names, attributes, values = _vocabulary()
    child = etree.Element(data.draw(st.sampled_from(names)))
    if data.draw(st.booleans()):
        child.set(data.draw(st.sampled_from(attributes)), data.draw(st.sampled_from(values)))
    parent.insert(data.draw(st.integers(0, len(parent))), child)


def _set_xsi_attribute(data: st.DataObject, root: etree._Element) -> None:
    element = data.draw(st.sampled_from(_elements(root)))
    name = data.draw(st.sampled_from(XSI_NAMES))
    element.set(f"{{{XSI}}}{name}", data.draw(st.sampled_from(XSI_VALUES)))


def _spaces(data: st.DataObject) -> str:
    return "".join(data.draw(st.lists(st.sampled_from(unicode_spaces()), min_size=1, max_size=3)))


def _add_spaces(data: st.DataObject, root: etree._Element) -> None:
    """White space as an element's text or after it, alone or beside what is there."""
    element = data.draw(st.sampled_from(_elements(root)))
    where = "tail" if element is not root and data.draw(st.booleans()) else "text"
    old = getattr(element, where) or ""
    setattr(element, where, data.draw(st.sampled_from([_spaces(data), old + _spaces(data)])))


def _insert_comment(data: st.DataObject, root: etree._Element) -> None:
    parent = data.draw(st.sampled_from(_elements(root)))
    node = data.draw(st.sampled_from([etree.Comment(" c "), etree.ProcessingInstruction("pi")]))
    node.tail = data.draw(st.sampled_from([None, "x", _spaces(data)]))
    parent.insert(data.draw(st.integers(0, len(parent))), node)


MUTATIONS: tuple[Mutation, ...] = (
    _delete, _duplicate, _move, _rename, _drop_attribute, _set_attribute, _set_text, _insert,
    _set_xsi_attribute, _add_spaces, _insert_comment,
)


def _verdicts(root: etree._Element) -> tuple[bool, bool]:
    return rng.check(root)[0], xsd.check(root)[0]


@pytest.mark.fuzz
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_random_mutations_get_one_verdict(data: st.DataObject) -> None:
    root = parse(data.draw(st.sampled_from(_seeds())), "<seed>")
    for mutation in data.draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        mutation(data, root)
    document = etree.tostring(root)
    by_rng, by_xsd = _verdicts(parse(document, "<mutant>"))
    event("valid" if by_xsd else "invalid")  # --hypothesis-show-statistics: the mix
    assert by_rng == by_xsd, document.decode()


def _neighbours(seed: bytes) -> Iterator[bytes]:
    """Every document one deletion, duplication or whitespace insertion away from `seed`."""
    count = len(_elements(parse(seed, "<seed>")))
    for index in range(count):
        for edit in ("delete", "duplicate", "whitespace", "drop-attributes"):
            root = parse(seed, "<seed>")
            element = _elements(root)[index]
            if edit == "delete" and index:
                element.getparent().remove(element)  # type: ignore[union-attr]
            elif edit == "duplicate" and index:
                element.addnext(copy.deepcopy(element))
            elif edit == "whitespace":
                element.text = " "
            elif edit == "drop-attributes" and element.attrib:
                element.attrib.clear()
            else:
                continue
            yield etree.tostring(root)


def test_one_step_neighbourhood_of_minimal_document() -> None:
    mutants = list(_neighbours(_compact(MINIMAL)))
    verdicts = [_verdicts(parse(mutant, "<mutant>")) for mutant in mutants]
    disagreements = [m.decode() for m, (a, b) in zip(mutants, verdicts, strict=True) if a != b]
    assert disagreements == []
    # The neighbourhood holds both kinds, or the comparison would prove nothing.
    assert {v for v, _ in verdicts} == {True, False}


def _one_edit_everywhere(seed: bytes) -> Iterator[tuple[str, bytes]]:
    """`seed` with one xsi:* attribute, Unicode space or comment added, at each element in
    turn: on <domstatus>, in <blockjobs>, in open content and around them. The spaces take
    turns, so that every one of them is tried somewhere."""
    count = len(_elements(parse(seed, "<seed>")))
    spaces = unicode_spaces()
    for index in range(count):
        text, tail = spaces[index % len(spaces)], spaces[(index + 7) % len(spaces)]
        edits: list[tuple[str, Callable[[etree._Element], None]]] = [
            *((f"xsi:{name}", lambda e, name=name: e.set(f"{{{XSI}}}{name}", "pullJob"))
              for name in XSI_NAMES),
            (f"text U+{ord(text):04X}", _setting("text", text)),
            (f"tail U+{ord(tail):04X}", _setting("tail", tail)),
            ("comment, then U+2028", lambda e: e.insert(0, _comment_with_tail("\u2028"))),
        ]
        for label, edit in edits:
            root = parse(seed, "<seed>")
            element = _elements(root)[index]
            if label.startswith("tail") and element is root:
                continue
            edit(element)
            yield f"{label} on {root.getroottree().getpath(element)}", etree.tostring(root)


def _setting(where: str, value: str) -> Callable[[etree._Element], None]:
    return lambda element: setattr(element, where, value)


def _comment_with_tail(tail: str) -> etree._Element:
    comment = etree.Comment(" c ")
    comment.tail = tail
    return comment


@pytest.mark.parametrize("seed", [MINIMAL, UNMODELLED], ids=["minimal", "unmodelled"])
def test_xsi_attributes_unicode_spaces_and_comments_everywhere(seed: bytes) -> None:
    judged = [(label, _verdicts(parse(mutant, "<mutant>")))
              for label, mutant in _one_edit_everywhere(seed)]
    assert [label for label, (by_rng, by_xsd) in judged if by_rng != by_xsd] == []
    # Both kinds again: open content takes Unicode spaces and xsi:*, <blockjobs> does not.
    assert {by_rng for _, (by_rng, _) in judged} == {True, False}


XS = "{http://www.w3.org/2001/XMLSchema}"


def test_assertions_select_their_culprits_and_say_why() -> None:
    # blockjob/validation/xsd.py reports an assertion by its documentation, at the first
    # element its empty(SELECTION) selects.
    assertions = [assertion for path in sorted(SCHEMAS.glob("*.xsd"))
                  for assertion in etree.parse(path).iter(f"{XS}assert")]
    assert len(assertions) == 2
    for assertion in assertions:
        test = " ".join(assertion.get("test", "").split())
        assert test.startswith("empty(") and test.endswith(")"), test
        assert assertion.findtext(f"{XS}annotation/{XS}documentation", "").strip()


def test_assertion_allows_text_in_exactly_the_elements_that_hold_text() -> None:
    # The list of the <blockjobs> assertion is a copy of what blockjobs.xsd declares as text
    # (xs:string) or open content (anyContent): keep them in step.
    schema = etree.parse(SCHEMAS / "blockjobs.xsd")
    holding_text = {element.get("name") for element in schema.iter(f"{XS}element")
                    if element.get("type") in ("xs:string", "anyContent")}
    [assertion] = schema.iter(f"{XS}assert")
    listed = set(re.findall(r"'(\w+)'", assertion.get("test", "").split("local-name() =")[1]))
    assert listed == holding_text
