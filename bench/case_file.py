"""Per-document cases: load, dump and schema validation of one status file."""

from __future__ import annotations

from functools import partial

from lxml import etree

from bench.edits import OneJobChanged
from bench.inputs import SCHEMAS
from bench.peers import Loader
from bench.table import Row
from bench.timing import Budget, Timed, in_turns
from blockjob import StatusDocument, loads
from blockjob.statusxml import asread, lazyimages
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

    A document keeps each job's text with the job object it wrote (a job is an immutable
    value), so what a dump costs depends on what changed since the last one. Three rows:
    the first dump of a freshly loaded document, which also finds where `<blockjobs>` sits
    in the original bytes and writes the jobs, and the job images that loading only
    checked, unless a `<blockjobs>` of its key was written as read before (timed on
    documents loaded, untimed, just before; its note: the same with no `<blockjobs>` key and
    no image shape seen before, as in a process's first dump of a file of its kind,
    `asread.section_key` and `lazyimages.job_image_node`); a dump after one
    job changed, the edit the tracker and recovery make before a save (`bench.edits`:
    replacing the job is timed too); and a dump of an unchanged document, which writes no
    job again.
    """
    tree = etree.fromstring(data)
    unchanged = loads(data)
    edited = loads(data)
    edit = OneJobChanged(edited)
    fresh: list[StatusDocument] = []
    unseen: list[StatusDocument] = []
    calls = min(budget.number, 50)

    def refill(documents: list[StatusDocument]) -> None:
        documents[:] = [loads(data) for _ in range(calls + 1)]

    def first_unseen() -> bytes:
        # As in a process that never wrote a `<blockjobs>`, or an image, of these shapes.
        asread.AS_READ.clear()
        lazyimages._AS_READ.clear()
        return unseen.pop().dumps()

    floor, first, cold, changed, repeated = in_turns(
        [Timed(partial(etree.tostring, tree)),
         Timed(lambda: fresh.pop().dumps(), partial(refill, fresh), calls),
         Timed(first_unseen, partial(refill, unseen), calls),
         Timed(lambda: edit().dumps()),
         Timed(unchanged.dumps)],
        budget,
    )
    return [Row("dump, first of a document", name, first, "lxml tostring", floor, "<= 1.5",
                note=f"{cold / floor:.2f}x with no key or image shape seen before"),
            Row("dump, one job changed", name, changed, "lxml tostring", floor, "<= 1.0"),
            Row("dump, unchanged document", name, repeated, "lxml tostring", floor, "<= 1.0")]


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
