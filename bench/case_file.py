"""Per-document cases: load, dump and schema validation of one status file."""

from __future__ import annotations

from functools import partial

from lxml import etree

from bench.inputs import SCHEMAS
from bench.peers import Loader
from bench.table import Row
from bench.timing import Budget, median_seconds
from blockjob import StatusDocument, loads
from blockjob.validation import rng, xsd
from blockjob.xmlparse import parse


def load_rows(name: str, data: bytes, peers: dict[str, Loader], budget: Budget) -> list[Row]:
    """Bytes to the full job model (node names resolved, validity decided) vs lxml and peers."""
    floor = median_seconds(lambda: etree.fromstring(data), budget)
    ours = median_seconds(lambda: loads(data), budget)
    rows = [Row("load", name, ours, "lxml fromstring", floor, "<= 1.5")]
    for peer, load in peers.items():
        target = "" if peer.startswith("xmlschema") else ">= 3"
        rows.append(Row("load", name, ours, peer, median_seconds(partial(load, data), budget),
                        target))
    return rows


def dump_rows(name: str, data: bytes, budget: Budget) -> list[Row]:
    """Model to bytes vs lxml writing its tree of the same document.

    No rendered text is cached: every dump writes `<blockjobs>` from the model. The first
    dump of a loaded document also finds where `<blockjobs>` sits in the original bytes and
    builds the `<source>` nodes that loading left as lxml's bytes, so it is timed apart, on
    documents loaded (untimed) just before.
    """
    doc = loads(data)
    tree = etree.fromstring(data)
    floor = median_seconds(lambda: etree.tostring(tree), budget)
    repeated = median_seconds(doc.dumps, budget)
    fresh: list[StatusDocument] = []
    calls = min(budget.number, 50)

    def refill() -> None:
        fresh[:] = [loads(data) for _ in range(calls + 1)]

    first = median_seconds(lambda: fresh.pop().dumps(), budget, number=calls, setup=refill)
    return [Row("dump, first of a document", name, first, "lxml tostring", floor, "<= 1.0"),
            Row("dump, repeated", name, repeated, "lxml tostring", floor, "<= 1.0")]


def validation_rows(name: str, data: bytes, budget: Budget) -> list[Row]:
    """Schema validation of an already parsed document, against parsing it with lxml."""
    root = parse(data, name)
    floor = median_seconds(lambda: etree.fromstring(data), budget)
    rows = [
        Row("validate RelaxNG (lxml)", name, median_seconds(lambda: rng.check(root), budget),
            "lxml fromstring", floor),
        Row("validate XSD 1.1 (xmlschema)", name,
            median_seconds(lambda: xsd.check(root), budget), "lxml fromstring", floor),
    ]
    try:
        schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "domstatus.xsd")))
    except etree.XMLSchemaParseError as exc:
        reason = str(exc).split(":")[-1].strip()[:50]
        rows.append(Row("validate XSD (lxml)", name, None, "lxml fromstring", floor,
                        note=f"n/a: libxml2 has no XSD 1.1 ({reason})"))
    else:
        rows.append(Row("validate XSD (lxml)", name,
                        median_seconds(lambda: schema.validate(root), budget),
                        "lxml fromstring", floor))
    return rows
