"""A disk read from its own bytes (the restart path) equals the disk read from the document."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

import blockjob
from blockjob import BlockJob, JobState, JobType
from blockjob.statusxml import document as document_module
from blockjob.statusxml.disks import Disk, known_names, read_disk_at, read_disks
from blockjob.statusxml.parse import parse
from tests.support.corpus import FIXTURES, status_file_params
from tests.support.docs import disk, status

DATA = Path(__file__).parent / "data"
FIXTURE = FIXTURES / "blockjob-blockdev-in.xml"
OURS = sorted(DATA.glob("*.xml"))
# Node names where a walk of the chain's children must not look, or must not count: in the
# disk's own `<privateData>`, of another type, namespaced, repeated, and in a mirror.
CHAINS_SAMPLE = b"""<domstatus><domain><devices>
<disk type='file'><privateData><nodename type='storage' name='outside'/></privateData>
<source file='/a' index='2'><privateData><nodenames>
<nodename type='storage' name='top-storage'/><nodename type='other' name='typed'/>
<x:nodename xmlns:x='urn:x' type='format' name='spaced'/><nodename name='untyped'/>
<nodename type='format' name='top-storage'/></nodenames></privateData></source>
<backingStore type='file' index='1'><format type='qcow2'/><source file='/b'>
<privateData><nodenames><nodename type='format' name='base-format'/>
<nodename type='storage' name='typed'/></nodenames></privateData></source>
<backingStore/></backingStore><target dev='vda'/>
<mirror type='file' job='copy'><source file='/m'><privateData><nodenames>
<nodename type='storage' name='mirror-storage'/></nodenames></privateData></source></mirror>
<nodename type='storage' name='loose'/></disk>
</devices></domain></domstatus>"""


def _plain(data: bytes) -> dict[str, Disk]:
    return read_disks(parse(data, "f").find("domain"))


def _fast_reads(data: bytes) -> int:
    """Check that each disk's fast read, where it gives one, equals the plain one, and that
    the document's lookups equal its disk list; returns how many fast reads there were."""
    plain = _plain(data)
    fast = {target: read_disk_at(data, target, disk.line) for target, disk in plain.items()}
    assert {t: disk for t, disk in fast.items() if disk is not None}.items() <= plain.items()
    by_lookup = blockjob.loads(data)
    assert {t: by_lookup.disk(t) for t in plain} == plain
    assert {disk.target: disk for disk in blockjob.loads(data).disks} == plain
    _mirrors_agree(data, plain)
    return sum(disk is not None for disk in fast.values())


def _mirrors_agree(data: bytes, plain: dict[str, Disk]) -> None:
    """`disk_has_mirror` on a fresh document says what the disks read in full say."""
    expected = {target: disk.mirror is not None for target, disk in plain.items()}
    assert {t: blockjob.loads(data).disk_has_mirror(t) for t in plain} == expected


@pytest.mark.parametrize("path", status_file_params())
def test_fast_path_agrees_on_libvirts_files(path: Path) -> None:
    data = path.read_bytes()
    # libvirt writes one element per line: every disk is read from its own bytes.
    assert _fast_reads(data) == len(_plain(data))


@pytest.mark.parametrize("path", OURS, ids=[p.name for p in OURS])
def test_fast_path_agrees_on_our_files(path: Path) -> None:
    _fast_reads(path.read_bytes())


def test_a_disks_discard_mode_is_read_from_its_first_driver() -> None:
    """What base's reopens repeat (QEMU does not report it); libvirt reads the first
    `<driver>`."""
    unmap = disk("vda", (2, 1)).replace(
        "type='qcow2'/>", "type='qcow2' discard='unmap'/><driver discard='ignore'/>", 1)
    data = status("<blockjobs active='no'/>", unmap + "\n" + disk("vdb", (4, 3)))
    assert _fast_reads(data) == 2
    assert [d.discard for d in blockjob.loads(data).disks] == ["unmap", None]


def _fixture() -> bytes:
    if not FIXTURE.is_file():
        pytest.skip(f"{FIXTURE} not found")
    return FIXTURE.read_bytes()


def _two_disks_on_one_line(data: bytes) -> bytes:
    """`data` with the line breaks inside the domain's `<devices>` removed."""
    start = data.index(b"<devices>", data.index(b"<domain "))
    end = data.index(b"</devices>", start)
    return data[:start] + data[start:end].replace(b"\n", b"") + data[end:]


def test_disks_sharing_a_line_fall_back_to_the_document() -> None:
    data = _two_disks_on_one_line(_fixture())
    plain = _plain(data)
    second = list(plain.values())[1]
    assert read_disk_at(data, second.target, second.line) is None
    assert blockjob.loads(data).disk(second.target) == second
    _mirrors_agree(data, plain)


def test_a_namesake_disk_before_it_on_its_line_falls_back_to_the_document() -> None:
    # Same target, in `<metadata>`: parsed alone, it would pass for the disk.
    decoy = b"<metadata><disk type='file'><source file='/decoy'/><target dev='vda'/></disk>"
    data = status("<blockjobs active='no'/>").replace(
        b"<devices><disk ", decoy + b"</metadata><devices><disk ", 1)
    vda = _plain(data)["vda"]
    assert vda.chain is not None and vda.chain.path == "/img/vda-3.qcow2"
    assert read_disk_at(data, "vda", vda.line) is None
    assert blockjob.loads(data).disk("vda") == vda
    _mirrors_agree(data, _plain(data))


def test_a_prefix_declared_above_the_disk_falls_back_to_the_document() -> None:
    data = _fixture().replace(b"<domain ", b"<domain xmlns:x='urn:x' ", 1)
    data = data.replace(b"<driver ", b"<x:tuning/><driver ", 1)
    plain = _plain(data)
    first = next(iter(plain.values()))
    assert read_disk_at(data, first.target, first.line) is None
    assert blockjob.loads(data).disk(first.target) == first
    _mirrors_agree(data, plain)


def test_no_such_start_tag_gives_none() -> None:
    assert read_disk_at(_fixture(), "vda", 1) is None


def test_disk_lines_count_in_the_loaded_file_after_job_edits() -> None:
    data = _fixture()
    loaded = {disk.target: disk for disk in _plain(data).values()}
    doc = blockjob.loads(data)
    doc.add_job(BlockJob(name="extra", type=JobType.BROKEN, state=JobState.FAILED))
    doc.dumps()  # splits the bytes around `<blockjobs>`, which now has one more job
    assert {t: doc.disk(t) for t in loaded} == loaded
    assert {disk.target: disk for disk in doc.disks} == loaded


def test_a_mirror_is_told_apart_without_building_the_disks_chains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # vda's mirror loses its image: `Disk.mirror` is None for a `<mirror>` without `<source>`.
    data = _fixture()
    start = data.index(b"<mirror type='file' file='/tmp/copy'")
    end = data.index(b"</mirror>", start)
    data = data[:start] + data[start:end].replace(b"<source", b"<sourcex", 1).replace(
        b"</source>", b"</sourcex>", 1) + data[end:]
    plain = _plain(data)
    assert plain["vda"].mirror is None and plain["vdd"].mirror is not None
    _mirrors_agree(data, plain)
    monkeypatch.setattr(document_module, "read_disk_at", _refuse)
    monkeypatch.setattr(document_module, "read_disks", _refuse)
    doc = blockjob.loads(data)
    assert {t: doc.disk_has_mirror(t) for t in plain} == {
        t: disk.mirror is not None for t, disk in plain.items()}


def test_mirrors_of_a_repeated_target_and_of_a_disk_without_one() -> None:
    # Only the first disk of a target counts; a later one's mirror, or the mirror of a disk
    # without a target, is no disk's. A mirror without `<source>` is no image.
    no_target = disk("vdz", (30,), mirror=31).replace("<target dev='vdz' bus='virtio'/>", "")
    no_source = disk("vdc", (40,), mirror=41).replace(
        "<source file='/img/vdc-copy", "<sourcex file='/img/vdc-copy").replace(
        "</source></mirror>", "</sourcex></mirror>")
    disks = (disk("vda", (3,)) + disk("vda", (5,), mirror=9) + disk("vdb", (6,), mirror=8)
             + no_target + no_source)
    data = status("<blockjobs active='no'/>", disks)
    plain = _plain(data)
    assert {t: disk.mirror is not None for t, disk in plain.items()} == {
        "vda": False, "vdb": True, "vdc": False}
    _mirrors_agree(data, plain)


def test_a_mirror_of_an_edited_document_is_read_from_its_tail() -> None:
    data = _fixture()
    loaded = _plain(data)
    doc = blockjob.loads(data)
    doc.add_job(BlockJob(name="extra", type=JobType.BROKEN, state=JobState.FAILED))
    doc.dumps()
    assert {t: doc.disk_has_mirror(t) for t in loaded} == {
        t: disk.mirror is not None for t, disk in loaded.items()}


def _refuse(*args: object) -> None:
    raise AssertionError("a disk's chains were built")


def test_an_image_with_a_non_ascii_name_in_its_source_reads_and_rewrites() -> None:
    # Kept as lxml's ASCII serialization, `<nodename d\u0639name=...>` became `d&#1593;name`,
    # which is no XML: reading the image's `<source>` (comparing disks, rewriting a chain)
    # raised XMLSyntaxError.
    data = status("<blockjobs active='no'/>").replace(
        b"<nodename type='format' name='libvirt-2-format'/>",
        "<nodename type='format' d\u0639name='x' name='libvirt-2-format'/><\u00e9t\u00e9/>"
        .encode(), 1)
    doc = blockjob.loads(data)
    vda = doc.disk("vda")
    assert vda is not None and vda.chain is not None and vda.chain.backing is not None
    assert vda.chain.backing.source.children[0].tag == "privateData"
    assert vda == _plain(data)["vda"]
    doc.set_disk_chain("vda", vda.chain.backing)
    dumped = doc.dumps()
    assert "d\u0639name='x'".encode() in dumped and "<\u00e9t\u00e9/>".encode() in dumped
    assert blockjob.loads(dumped).dumps() == dumped


def _names_by_walk(chains: list[etree._Element], wanted: set[str], mirror: bool) -> set[str]:
    """`known_names` as a walk of each chain's children, one lxml iterator each."""
    tags = ("source", "backingStore", "mirror") if mirror else ("source", "backingStore")
    return {nodename.get("name") or "" for chain in chains for child in chain.iterchildren(*tags)
            for nodename in child.iter("nodename")
            if nodename.get("name") in wanted and nodename.get("type") in ("storage", "format")}


def _chains_of(data: bytes) -> list[etree._Element]:
    """The domain's disks and every orphan chain, each with names wanted of every kind."""
    root = parse(data, "f")
    return [*root.iterfind("domain/devices/disk"), *root.iterfind("blockjobs/blockjob/chains/*")]


@pytest.mark.parametrize("path", [*status_file_params(), *OURS, CHAINS_SAMPLE])
def test_known_names_agree_with_a_walk_of_every_chain(path: Path | bytes) -> None:
    """The node names a job may refer to, found by one XPath query per chain, are those a
    walk of its `<source>`, `<backingStore>` (and `<mirror>`) children finds: for every
    name in the file (of any type, or namespaced, or outside those children), alone and
    all at once."""
    data = path if isinstance(path, bytes) else path.read_bytes()
    for chain in _chains_of(data):
        names = {n.get("name") or "" for n in chain.iter("{*}nodename")} | {"absent"}
        for wanted in [names, *({name} for name in names)]:
            for mirror in (False, True):
                assert known_names([chain], wanted, mirror=mirror) == _names_by_walk(
                    [chain], wanted, mirror), (chain.sourceline, wanted, mirror)
