"""Per-document cases: load, dump and schema validation of one status file."""

from __future__ import annotations

from functools import partial

from lxml import etree

from bench.inputs import SCHEMAS
from bench.peers import Loader
from bench.table import Row
from bench.timing import Budget, Timed, in_turns
from blockjob import StatusDocument, loads
from blockjob.statusxml.parse import parse
from blockjob.validation import rng, xsd


def load_rows(name: str, data: bytes, peers: dict[str, Loader], budget: Budget) -> list[Row]:
    """Bytes to the full job model (node names resolved, validity decided) vs lxml and peers."""
    floor, ours, *theirs = in_turns(
        [Timed(partial(etree.fromstring, data)), Timed(partial(loads, data)),
         *(Timed(partial(load, data)) for load in peers.values())],
        budget,
    )
    rows = [Row("load", name, ours, "lxml fromstring", floor, "<= 1.5")]
    for peer, time in zip(peers, theirs, strict=True):
        rows.append(Row("load", name, ours, peer, time,
                        "" if peer.startswith("xmlschema") else ">= 3"))
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
    fresh: list[StatusDocument] = []
    calls = min(budget.number, 50)

    def refill() -> None:
        fresh[:] = [loads(data) for _ in range(calls + 1)]

    floor, first, repeated = in_turns(
        [Timed(partial(etree.tostring, tree)),
         Timed(lambda: fresh.pop().dumps(), refill, calls), Timed(doc.dumps)],
        budget,
    )
    return [Row("dump, first of a document", name, first, "lxml tostring", floor, "<= 1.0"),
            Row("dump, repeated", name, repeated, "lxml tostring", floor, "<= 1.0")]


def validation_rows(name: str, data: bytes, budget: Budget) -> list[Row]:
    """Schema validation of an already parsed document, against parsing it with lxml."""
    root = parse(data, name)
    actions = [Timed(partial(etree.fromstring, data)), Timed(partial(rng.check, root)),
               Timed(partial(xsd.check, root))]
    try:
        schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "domstatus.xsd")))
    except etree.XMLSchemaParseError:
        pass  # expected: the schemas use XSD 1.1 (xs:alternative), libxml2 reads 1.0 only
    else:
        actions.append(Timed(partial(schema.validate, root)))
    floor, relaxng, xsd11, *by_lxml = in_turns(actions, budget)
    rows = [Row("validate RelaxNG (lxml)", name, relaxng, "lxml fromstring", floor),
            Row("validate XSD 1.1 (xmlschema)", name, xsd11, "lxml fromstring", floor)]
    if by_lxml:
        rows.append(Row("validate XSD (lxml)", name, by_lxml[0], "lxml fromstring", floor))
    else:
        rows.append(Row("validate XSD (lxml)", name, None, "lxml fromstring", floor,
                        note="n/a: the schema is XSD 1.1, libxml2 reads XSD 1.0 only"))
    return rows
