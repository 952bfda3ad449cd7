"""Job images are checked on load and built from the loaded bytes on first read."""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

import blockjob
from blockjob.model import BackupData, CreateData, JobChains, StorageSource
from blockjob.statusxml.lazyimages import DeferredImage, LoadedBlockjobs
from blockjob.statusxml.node import first_children
from blockjob.statusxml.sources import build_job_source, read_backing
from tests.support.corpus import SHARED
from tests.support.docs import jobs, status
from tests.support.images import file_image

DATA = Path(__file__).parent / "data"

_SRC = (
    "<blockjob name='{name}' type='create' state='running'>"
    "<src type='file' format='qcow2'><source file='{path}' index='{index}'/></src>"
    "</blockjob>"
)
_ORPHAN = (
    "<blockjob name='o' type='copy' state='ready'><chains>"
    "<disk type='file' format='qcow2'><source file='/top' index='5'/>"
    "<backingStore type='file' index='6'><format type='raw'/><source file='/base'/>"
    "<backingStore/></backingStore></disk>"
    "<mirror type='file' format='raw'><source file='/copy' index='7'/></mirror>"
    "</chains></blockjob>"
)


def _images(job: blockjob.BlockJob) -> dict[tuple[str, ...], StorageSource | None]:
    data = job.data
    found: dict[tuple[str, ...], StorageSource | None] = {}
    if isinstance(data, CreateData):
        found["src",] = data.src
    if isinstance(data, BackupData):
        found["store",] = data.store
    if job.chains is not None:
        found["chains", "disk"] = job.chains.disk
        found["chains", "mirror"] = job.chains.mirror
    return found


@pytest.mark.parametrize("name", ["every-type-in.xml", "orphan-chains-in.xml"])
def test_images_built_later_equal_images_read_from_the_tree(name: str) -> None:
    data = (DATA / name).read_bytes()
    doc = blockjob.loads(data)
    tree = first_children(etree.fromstring(data))["blockjobs"]
    elements = {job.get("name"): job for job in tree.iterchildren("blockjob")}
    compared = 0
    for job in doc.jobs:
        for path, image in _images(job).items():
            element: etree._Element | None = elements[job.name]
            for tag in path:
                element = first_children(element).get(tag) if element is not None else None
            chain = path[0] == "chains"
            expected = build_job_source(element, chain=chain) if element is not None else None
            assert image == expected
            compared += image is not None
    assert compared >= 2


def test_an_image_is_built_once_and_only_when_read() -> None:
    doc = blockjob.loads(jobs(_SRC.format(name="c", path="/new", index=3)))
    data = doc.jobs[0].data
    assert isinstance(data, CreateData)
    image = data.src
    assert isinstance(image, DeferredImage) and "_build" in image.__dict__
    assert image.path == "/new" and image.index == 3
    assert "_build" not in image.__dict__
    source = image.__dict__["element"]
    assert image.path == "/new" and image.__dict__["element"] is source


def test_each_job_finds_its_own_images_when_everything_is_on_one_line() -> None:
    # One line: locating the images by line could not tell the three `<src>` apart.
    elements = [_SRC.format(name=f"c{n}", path=f"/img{n}", index=n + 1) for n in range(3)]
    doc = blockjob.loads(status("<blockjobs active='no'>" + "".join(elements) + "</blockjobs>"))
    for n in range(3):
        job = doc.job(f"c{n}")
        assert job is not None and isinstance(job.data, CreateData)
        data = job.data
        assert data.src is not None
        assert (data.src.path, data.src.index) == (f"/img{n}", n + 1)


def test_orphan_chain_images_and_their_backing_are_built_from_the_bytes() -> None:
    (job,) = blockjob.loads(jobs(_ORPHAN)).jobs
    assert job.chains is not None and job.chains.disk is not None
    assert [image.path for image in job.chains.disk.images()] == ["/top", "/base"]
    assert job.chains.disk.backing is not None and job.chains.disk.backing.terminated
    assert job.chains.mirror is not None and job.chains.mirror.format == "raw"


@pytest.mark.parametrize(
    ("trick", "whole_parses"),
    [
        # A comment on the `<blockjobs>` line that spells a start tag: the span skips it.
        (lambda body: body.replace("<blockjobs", "<!-- <blockjobs> --><blockjobs", 1), 0),
        # A prefix bound on the root only: `<blockjobs>` alone is not well-formed.
        (lambda body: body.replace("</blockjob>", "<x:extra/></blockjob>", 1), 1),
    ],
    ids=["comment-on-the-line", "namespace-from-the-root"],
)
def test_images_are_found_when_blockjobs_cannot_be_parsed_on_its_own(
    trick: Callable[[str], str], whole_parses: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _count_whole_document_parses(monkeypatch)
    body = "<blockjobs active='no'>" + _SRC.format(name="c", path="/new", index=3) + "</blockjobs>"
    data = status(trick(body)).replace(b"<domstatus ", b"<domstatus xmlns:x='urn:x' ", 1)
    (job,) = blockjob.loads(data).jobs
    assert isinstance(job.data, CreateData) and job.data.src is not None
    assert job.data.src.path == "/new"
    assert whole == [whole_parses]


def test_only_blockjobs_is_parsed_again_in_a_plain_file(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _count_whole_document_parses(monkeypatch)
    (job,) = blockjob.loads(jobs(_ORPHAN)).jobs
    assert job.chains is not None and job.chains.mirror is not None
    assert whole == [0]


def _count_whole_document_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = LoadedBlockjobs._from_document

    def counted(self: LoadedBlockjobs) -> list[etree._Element]:
        calls[0] += 1
        return original(self)

    monkeypatch.setattr(LoadedBlockjobs, "_from_document", counted)
    return calls


def test_a_loaded_job_pickles_before_and_after_its_images_are_built() -> None:
    (job,) = blockjob.loads(jobs(_ORPHAN)).jobs
    before = pickle.loads(pickle.dumps(job))
    assert job.chains is not None and job.chains.disk is not None  # built now
    after = pickle.loads(pickle.dumps(job))
    assert before == job == after


def test_image_fields_default_to_none_and_take_images_directly() -> None:
    image = file_image("/a", index=1, storage_node="s")
    assert CreateData().src is None and JobChains().mirror is None
    assert CreateData(src=image).src is image
    assert JobChains(disk=image) == JobChains(disk=DeferredImage(lambda: image))
    assert hash(BackupData(store=image)) == hash(BackupData(store=DeferredImage(lambda: image)))


def test_a_deferred_image_replaced_is_built_from_the_new_fields() -> None:
    image = file_image("/a", index=1, storage_node="s")
    changed = dataclasses.replace(DeferredImage(lambda: image), format="raw")
    assert changed == dataclasses.replace(image, format="raw") != image


def _documents() -> list[Path]:
    # Golden inputs always; libvirt's files as well when ../shared is there.
    return sorted(DATA.glob("*-in.xml")) + sorted(SHARED.glob("*/*.xml"))


def test_an_image_built_as_nodes_equals_one_kept_as_lxml_bytes() -> None:
    # Job images (built on first read) convert `<source>` at once; domain disk chains keep
    # lxml's bytes until read. Both must describe the same image, backing chain and all.
    compared = 0
    for path in _documents():
        for backing in etree.parse(str(path)).iter("backingStore"):
            as_bytes, terminated = read_backing(backing)
            as_nodes, terminated_too = read_backing(backing, to_write=True)
            assert (as_nodes, terminated_too) == (as_bytes, terminated), path
            # Equality compares each `<source>` node down the chain; count what it compared.
            for image in as_bytes.images() if as_bytes is not None else ():
                assert isinstance(image.element, bytes), path
                compared += 1
    assert compared >= 10


_NETWORK = (
    "<blockjob name='n' type='create' state='running'><src type='network' format='raw'>"
    "<source protocol='{protocol}' name='e' tlsFromConfig='0' index='3'>{hosts}</source>"
    "</src></blockjob>"
)


@pytest.mark.parametrize(("protocol", "hosts", "written"), [
    # libvirt fills in the protocol's default port of a TCP host without one...
    ("nbd", "<host name='h'/>", "<host name='h' port='10809'/>"),
    ("iscsi", "<host name='h' port='0'/>", "<host name='h' port='3260'/>"),
    ("gluster", "<host name='h' transport='tcp'/><host name='i' port='1'/>",
     "<host name='h' port='24007'/>\n          <host name='i' port='1'/>"),
    # ...writes no `transport='tcp'` (the default) and its attributes in its order...
    ("nbd", "<host transport='tcp' port='7' name='h'/>", "<host name='h' port='7'/>"),
    # ...and none for a unix socket, nor for rbd, which has no default.
    ("nbd", "<host transport='unix' socket='/s'/>", "<host transport='unix' socket='/s'/>"),
    ("rbd", "<host name='h'/>", "<host name='h'/>"),
])
def test_a_network_job_image_gets_the_hosts_libvirt_reads_into_it(
    protocol: str, hosts: str, written: str
) -> None:
    doc = blockjob.loads(jobs(_NETWORK.format(protocol=protocol, hosts=hosts)))
    dumped = doc.dumps()
    assert f"index='3'>\n          {written}\n        </source>".encode() in dumped
    assert blockjob.loads(dumped).dumps() == dumped


def test_a_job_image_index_of_0_is_not_written_as_libvirt_writes_none() -> None:
    # libvirt keeps the id 0 and writes `index` only when it is not 0: the next load
    # finds no index, and the job invalid ("missing job chain data").
    doc = blockjob.loads(jobs(_SRC.format(name="c", path="/c", index="0")))
    (job,) = doc.jobs
    assert not job.invalid
    dumped = doc.dumps()
    assert b"<source file='/c'/>" in dumped
    (again,) = blockjob.loads(dumped).jobs
    assert again.invalid


@pytest.mark.parametrize(("src", "written"), [
    # A network source always has tlsFromConfig in status XML (0 when it was absent).
    ("<src type='network' format='raw'><source index='4' name='e' protocol='rbd'/></src>",
     "<source protocol='rbd' name='e' tlsFromConfig='0' index='4'/>"),
    ("<src type='file' format='raw'><source index='4' startupPolicy='optional' file='/f'/>"
     "</src>", "<source file='/f' startupPolicy='optional' index='4'/>"),
    ("<src type='volume' format='raw'><source volume='v' mode='host' index='4' pool='p'/>"
     "</src>", "<source pool='p' volume='v' mode='host' index='4'/>"),
])
def test_a_job_image_source_has_libvirt_s_attributes_in_libvirt_s_order(
    src: str, written: str
) -> None:
    doc = blockjob.loads(jobs(f"<blockjob name='n' type='create' state='running'>{src}"
                              "</blockjob>"))
    dumped = doc.dumps()
    assert f"\n        {written}\n".encode() in dumped
    assert blockjob.loads(dumped).dumps() == dumped


def test_a_job_image_source_has_its_children_in_libvirt_s_order() -> None:
    # libvirt writes hosts, auth, then private data (node names before objects); an ssh
    # source's identity after its known hosts. A comment among them is not written.
    doc = blockjob.loads(jobs(
        "<blockjob name='r' type='create' state='running'><src type='network' format='raw'>"
        "<source protocol='rbd' name='p/i' tlsFromConfig='0' index='3'><privateData><objects>"
        "<secret type='auth' alias='a'/></objects><nodenames><nodename type='storage' name='s'/>"
        "</nodenames></privateData><auth username='u'/><!-- c --><host name='h'/></source></src>"
        "</blockjob>",
        "<blockjob name='s' type='create' state='running'><src type='network' format='raw'>"
        "<source protocol='ssh' name='p/i' tlsFromConfig='0' index='4'>"
        "<identity username='u' keyfile='/k'/><knownHosts path='/kh'/><host name='h'/>"
        "</source></src></blockjob>"))
    dumped = doc.dumps().decode()
    tags = re.findall(r"^ +<(\w+)", dumped[dumped.index("<blockjob name='r'"):], re.MULTILINE)
    assert tags[:13] == ["src", "source", "host", "auth", "privateData", "nodenames", "nodename",
                         "objects", "secret", "blockjob", "src", "source", "host"]
    assert tags[13:15] == ["knownHosts", "identity"]
    assert blockjob.loads(dumped.encode()).dumps() == dumped.encode()


def _nbd(index: str, port: str) -> str:
    return _NETWORK.format(protocol="nbd", hosts=f"<host name='h' port='{port}'/>").replace(
        "index='3'", f"index='{index}'")


@pytest.mark.parametrize(("index", "port", "written"), [
    # strtoul's syntax, as libvirt reads them, written back as the numbers read.
    (" 5", "+80", "index='5'>\n          <host name='h' port='80'/>"),
    ("+5", " 0", "index='5'>\n          <host name='h' port='10809'/>"),
])
def test_index_and_port_are_read_as_libvirt_reads_unsigned_numbers(
    index: str, port: str, written: str
) -> None:
    doc = blockjob.loads(jobs(_nbd(index, port)))
    (job,) = doc.jobs
    assert not job.invalid
    assert written.encode() in doc.dumps()


@pytest.mark.parametrize(("index", "port"), [("4294967296", "1"), ("-1", "1"), ("5", "-1"),
                                             ("5", "65536"), ("5", "0x50")])
def test_an_index_or_port_libvirt_cannot_read_breaks_the_image(index: str, port: str) -> None:
    doc = blockjob.loads(jobs(_nbd(index, port)))
    (job,) = doc.jobs
    assert job.invalid


def test_empty_private_data_wrappers_are_not_written_as_libvirt_writes_none() -> None:
    # libvirt's element helper writes nothing for an element without attributes or
    # children: an empty <nodenames>, <objects>, <slices> or <privateData> is gone.
    doc = blockjob.loads(jobs(
        "<blockjob name='c' type='create' state='running'><src type='file' format='raw'>"
        "<source file='/f' index='3'><slices/><privateData><nodenames/><objects>\n</objects>"
        "</privateData></source></src></blockjob>"))
    dumped = doc.dumps()
    assert b"      <src type='file' format='raw'>\n        <source file='/f' index='3'/>\n" \
           b"      </src>\n" in dumped
    assert blockjob.loads(dumped).dumps() == dumped
