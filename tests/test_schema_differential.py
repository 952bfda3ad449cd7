"""RelaxNG and XSD must give the same verdict on every document, not just the ones we wrote.

Valid documents are mutated (elements deleted, duplicated, moved, renamed; attributes
dropped, added, changed; text inserted) and both engines judge each result. The CI run is
bounded; `make fuzz` sets BLOCKJOB_FUZZ_EXAMPLES for a long one.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from collections.abc import Callable, Iterator
from functools import cache

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from blockjob.statusxml.parse import parse
from blockjob.validation import rng, xsd
from tests.support.corpus import status_files
from tests.test_schema_support import DATA, MINIMAL, SCHEMAS

EXAMPLES = int(os.environ.get("BLOCKJOB_FUZZ_EXAMPLES", "300"))


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
    seeds = [MINIMAL, *(p.read_bytes() for p in sorted(DATA.glob("*-out.xml")))]
    # ../shared is optional here; MINIMAL alone still exercises every rule.
    with contextlib.suppress(pytest.skip.Exception):
        seeds += [p.read_bytes() for p in status_files()]
    return tuple(dict.fromkeys(_compact(seed) for seed in seeds))


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


MUTATIONS: tuple[Mutation, ...] = (
    _delete, _duplicate, _move, _rename, _drop_attribute, _set_attribute, _set_text, _insert,
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
