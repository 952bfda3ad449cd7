"""Names in a namespace inside job images and domain disks are written with their prefix,
and each namespace they use is declared: the dump is XML, means what the input meant, and
dumps the same again."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree

import blockjob
from blockjob.element import Node
from blockjob.model import CreateData
from blockjob.statusxml.node import TRUSTED_PARSER, kept_node, node_from_xml
from blockjob.statusxml.rendered import RenderedXML
from tests.support.corpus import FIXTURES
from tests.support.docs import disk, jobs, status

_CREATE = (
    "<blockjob name='c' type='create' state='running'><src type='file' format='qcow2'>"
    "{source}</src></blockjob>"
)
_ORPHAN = (
    "<blockjob name='o' type='copy' state='ready'><chains>"
    "<disk type='file' format='qcow2'>{source}"
    "<backingStore type='file' index='6'><format type='qcow2'>{format_child}</format>"
    "<source file='/base'/><backingStore/></backingStore></disk>"
    "<mirror type='file' format='raw'><source file='/copy' index='7'>{mirror_child}"
    "</source></mirror></chains></blockjob>"
)
_Q = "xmlns:q='urn:q'"

# Each case: a `<blockjobs>` element, and a change to the whole document (or none).
_CASES: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "attribute": (_CREATE.format(source=f"<source {_Q} file='/new' index='3' q:a='1'/>"),
                  bytes),
    "prefixed-child": (_CREATE.format(
        source=f"<source file='/new' index='3'><q:x {_Q} q:b='2'><q:y>t</q:y></q:x></source>"),
        bytes),
    "default-namespace-child": (_CREATE.format(
        source="<source file='/new' index='3'><x xmlns='urn:q'><y xmlns=''/></x></source>"),
        bytes),
    "declared-on-the-job": (_CREATE.format(source="<source file='/new' index='3' q:a='1'/>")
                            .replace("<blockjob ", f"<blockjob {_Q} "), bytes),
    "declared-on-the-root": (_CREATE.format(source="<source file='/new' index='3' q:a='1'/>"),
                             lambda data: data.replace(b"<domstatus ", b"<domstatus "
                                                       + _Q.encode() + b" ", 1)),
    "orphan-chains": (_ORPHAN.format(source=f"<source {_Q} file='/top' index='5' q:a='1'/>",
                                     format_child=f"<q:cache {_Q} size='9'/>",
                                     mirror_child="<m xmlns='urn:q'/>"), bytes),
}


def _meaning(element: etree._Element) -> tuple[object, ...]:
    """What an element says, namespaces resolved: names, attributes, text, children."""
    return (element.tag, sorted(element.attrib.items()), (element.text or "").strip(),
            [_meaning(child) for child in element.iterchildren(etree.Element)])


def _job_images(data: bytes) -> list[tuple[object, ...]]:
    blockjobs = etree.fromstring(data, TRUSTED_PARSER).find("blockjobs")
    assert blockjobs is not None
    return [_meaning(image) for tag in ("src", "chains") for image in blockjobs.iter(tag)]


@pytest.mark.parametrize("case", _CASES)
def test_namespaced_job_images_dump_to_xml_that_means_the_same(case: str) -> None:
    body, change = _CASES[case]
    data = change(jobs(body))
    doc = blockjob.loads(data)
    assert not any(job.invalid for job in doc.jobs)
    dumped = doc.dumps()
    assert b"{urn:q}" not in dumped
    again = blockjob.loads(dumped)  # well-formed, every prefix declared
    assert again.dumps() == dumped
    assert _job_images(dumped) == _job_images(data)


def test_the_reported_file_keeps_its_prefix_and_declaration() -> None:
    fixture = FIXTURES / "blockjob-blockdev-in.xml"
    if not fixture.is_file():
        pytest.skip(f"{fixture} not found")
    before = b"<source file='/tmp/create/overlay.qcow2' index='1338'>"
    data = fixture.read_bytes()
    assert before in data
    data = data.replace(before, b"<source xmlns:q='urn:q' file='/tmp/create/overlay.qcow2'"
                                b" index='1338' q:a='1'>")
    dumped = blockjob.loads(data).dumps()
    assert (b"<source xmlns:q='urn:q' file='/tmp/create/overlay.qcow2' q:a='1' index='1338'>"
            in dumped)
    assert blockjob.loads(dumped).dumps() == dumped


def test_a_source_read_from_its_serialization_keeps_prefixes() -> None:
    # lxml declares every namespace in scope at the top of a serialized element: only
    # those used are declared again.
    source = etree.fromstring(
        b"<r xmlns:q='urn:q' xmlns:unused='urn:u'><source file='/a' q:a='1'>"
        b"<q:x/><x xmlns='urn:d'><y xmlns=''/></x></source></r>")[0]
    node = node_from_xml(etree.tostring(source))
    assert node == Node("source", (("xmlns:q", "urn:q"), ("file", "/a"), ("q:a", "1")), (
        Node("q:x"), Node("x", (("xmlns", "urn:d"),), (Node("y", (("xmlns", ""),)),)),
    ))
    assert RenderedXML(source).node() == kept_node(source, {}) == node


def test_a_domain_disk_with_a_namespaced_part_keeps_it_through_a_chain_edit() -> None:
    namespaced = disk("vda", (3, 2, 1)).replace(
        "<source file='/img/vda-3.qcow2' index='3'>",
        f"<source {_Q} file='/img/vda-3.qcow2' index='3' q:a='1'>", 1,
    ).replace("<target ", f"<q:tuning {_Q} q:level='2'/><target ", 1)
    doc = blockjob.loads(status("<blockjobs active='no'/>", namespaced))
    vda = doc.disk("vda")
    assert vda is not None and vda.chain is not None and vda.chain.backing is not None
    assert vda.chain.source.attr("q:a") == "1"
    doc.set_disk_chain("vda", vda.chain.backing)  # the top image committed
    dumped = doc.dumps()
    assert b"{urn:q}" not in dumped
    assert b"<q:tuning xmlns:q='urn:q' q:level='2'/>" in dumped
    assert blockjob.loads(dumped).dumps() == dumped


def test_a_job_image_reads_its_namespaced_source() -> None:
    (job,) = blockjob.loads(jobs(_CASES["attribute"][0])).jobs
    assert isinstance(job.data, CreateData) and job.data.src is not None
    assert job.data.src.source.attrs == (("xmlns:q", "urn:q"), ("file", "/new"), ("q:a", "1"))
