"""A loaded job image whose shape was seen written as read is written as read, unbuilt
(`lazyimages.job_image_node`), and those bytes are the ones its built image writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

import blockjob
from blockjob.errors import StatusXMLError
from blockjob.model import BackupData, CreateData, StorageSource
from blockjob.statusxml import lazyimages
from tests.support.corpus import status_files
from tests.support.docs import jobs

DATA = Path(__file__).parent / "data"


@pytest.fixture
def shapes(monkeypatch: pytest.MonkeyPatch) -> set[object]:
    """The shapes seen written as read: none yet."""
    seen: set[object] = set()
    monkeypatch.setattr(lazyimages, "_AS_READ", seen)
    return seen


def _images(doc: blockjob.StatusDocument) -> list[StorageSource]:
    found: list[StorageSource | None] = []
    for job in doc.jobs:
        if isinstance(job.data, CreateData):
            found.append(job.data.src)
        if isinstance(job.data, BackupData):
            found.append(job.data.store)
        if job.chains is not None:
            found += (job.chains.disk, job.chains.mirror)
    return [image for image in found if image is not None]


def _unbuilt(doc: blockjob.StatusDocument) -> list[StorageSource]:
    return [image for image in _images(doc) if "_build" in image.__dict__]


def _built_and_dumped(data: bytes) -> bytes:
    doc = blockjob.loads(data)
    for image in _images(doc):
        assert image.type  # builds it
    return doc.dumps()


def _loadable(paths: list[Path]) -> dict[Path, bytes]:
    found = {}
    for path in paths:
        data = path.read_bytes()
        try:
            blockjob.loads(data)
        except StatusXMLError:
            continue
        found[path] = data
    return found


def test_images_written_as_read_are_the_bytes_of_built_images(shapes: set[object]) -> None:
    files = _loadable(status_files() + sorted(DATA.glob("*.xml")) + sorted(DATA.glob("*/*.xml")))
    built = {path: _built_and_dumped(data) for path, data in files.items()}
    learning = {path: blockjob.loads(data).dumps() for path, data in files.items()}
    assert shapes  # libvirt's files hold images it writes as read
    learnt = {path: blockjob.loads(data).dumps() for path, data in files.items()}
    assert learning == built
    assert learnt == built


def test_the_first_dump_of_a_file_libvirt_wrote_builds_no_image(shapes: set[object]) -> None:
    data = (DATA / "orphan-chains-in.xml").read_bytes()
    blockjob.loads(data).dumps()  # its shapes seen
    doc = blockjob.loads(data)
    dumped = doc.dumps()
    assert _images(doc) and _unbuilt(doc) == _images(doc)
    assert dumped == _built_and_dumped(data)
    assert [image.path for image in _images(doc)] == [image.path for image in _images(
        blockjob.loads(data))]  # and they build as before, once read


_NBD = (
    "<blockjob name='n' type='create' state='running'><src type='network' format='raw'>"
    "<source protocol='nbd' name='e' tlsFromConfig='0' index='{index}'>"
    "<host name='h' port='{port}'/></source></src></blockjob>"
)


@pytest.mark.parametrize(("seen", "read", "written"), [
    # The same shape, values that reading makes something of: libvirt writes 5, not 05...
    (("5", "7"), ("05", "7"), "index='5'>\n          <host name='h' port='7'/>"),
    # ...and a TCP host's default port for port 0, and the number it read for 007.
    (("5", "7"), ("5", "0"), "index='5'>\n          <host name='h' port='10809'/>"),
    (("5", "7"), ("5", "007"), "index='5'>\n          <host name='h' port='7'/>"),
])
def test_an_image_of_a_shape_seen_as_read_has_its_values_written_as_libvirt_reads_them(
    seen: tuple[str, str], read: tuple[str, str], written: str, shapes: set[object]
) -> None:
    before = blockjob.loads(jobs(_NBD.format(index=seen[0], port=seen[1])))
    before.dumps()
    assert shapes
    doc = blockjob.loads(jobs(_NBD.format(index=read[0], port=read[1])))
    assert written.encode() in doc.dumps()


def test_an_image_of_a_shape_seen_as_read_under_another_storage_type_is_put_in_form(
    shapes: set[object]
) -> None:
    # A file source keeps these as read; a network one orders its attributes, gets
    # tlsFromConfig and a default port for its host.
    source = "<source file='/f' protocol='nbd' index='3'><host name='h'/></source>"
    for kind in ("file", "network"):
        data = jobs("<blockjob name='c' type='create' state='running'>"
                    f"<src type='{kind}' format='raw'>{source}</src></blockjob>")
        assert blockjob.loads(data).dumps() == _built_and_dumped(data)
    assert len(shapes) == 1
    assert b"<source protocol='nbd' tlsFromConfig='0' file='/f' index='3'>\n" \
           b"          <host name='h' port='10809'/>" in blockjob.loads(data).dumps()


def test_an_image_with_an_empty_value_is_written_as_its_built_image_is(
    shapes: set[object]
) -> None:
    # An empty `file` is kept; the shape with a value was seen, the empty one is not taken.
    for path in ("/f", ""):
        data = jobs("<blockjob name='c' type='create' state='running'>"
                    f"<src type='file' format='raw'><source file='{path}' index='3'/></src>"
                    "</blockjob>")
        assert blockjob.loads(data).dumps() == _built_and_dumped(data)
    assert len(shapes) == 1


def test_the_shapes_kept_are_bounded(shapes: set[object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazyimages, "_AS_READ_MAX", 1)
    data = (DATA / "orphan-chains-in.xml").read_bytes()
    for _ in range(2):
        assert blockjob.loads(data).dumps() == _built_and_dumped(data)
        assert len(shapes) == 1


# Values whose writing could differ from their reading: numbers in libvirt's other
# spellings, empty, spaces, characters lxml or libvirt escape, quotes of either kind.
_VALUES = st.one_of(
    st.sampled_from(["", "0", "00", "05", "+5", "-1", " 5", "0x1f", "65536", "tcp", "unix",
                     "rdma", "nbd", "file", "network", "yes", "2", "a'b", 'a"b', "a&b",
                     "<", ">", "\t", "\n", "\r", "é", "\u2028", "]]>", 'a="b"', "a=", '="', "x='"]),
    st.text(alphabet="05x+-' \"&<>\t\n\rén/", max_size=6),
)
_SEEDS = {str(path): data for path, data in _loadable(
    status_files() + sorted(DATA.glob("*.xml")) + sorted(DATA.glob("*/*.xml"))).items()} | {
    "nbd": jobs(_NBD.format(index="5", port="7")),  # network hosts are rare in the files
    "unix": jobs("<blockjob name='n' type='create' state='running'><src type='network' "
                 "format='raw'><source protocol='nbd' tlsFromConfig='0' index='2'>"
                 "<host transport='unix' socket='/s'/></source></src></blockjob>"),
}
_WITH_IMAGES = sorted(name for name, data in _SEEDS.items() if _images(blockjob.loads(data)))


@pytest.mark.fuzz
@settings(max_examples=int(os.environ.get("BLOCKJOB_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(seed=st.sampled_from(_WITH_IMAGES), data=st.data())
def test_an_image_of_a_shape_seen_with_any_values_dumps_as_its_built_image(
    seed: str, data: st.DataObject
) -> None:
    """Values and texts changed in the images of a file, after the shapes of the file, or
    of the file with other values in the same places, were seen: written as read only
    where the built image writes the same bytes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lazyimages, "_AS_READ", set())
        tree = etree.fromstring(_SEEDS[seed])
        parts = [element for element in tree.iterfind(".//blockjobs/blockjob//*")
                 if element.attrib or not len(element)]
        places = [(element, data.draw(st.sampled_from(
            sorted(element.attrib) + ([] if len(element) else [None]))))  # None: its text
            for element in data.draw(st.lists(st.sampled_from(parts), min_size=1, max_size=4))]
        for step in ("seen", "dumped"):
            if step == "dumped" or data.draw(st.booleans()):
                for element, name in places:
                    if name is None:
                        element.text = data.draw(_VALUES)
                    else:
                        element.set(name, data.draw(_VALUES))
            changed = etree.tostring(tree)
            try:
                learnt = blockjob.loads(changed).dumps()
            except StatusXMLError:
                return
        assert learnt == _built_and_dumped(changed)


def test_an_image_with_a_quote_in_a_text_is_written_as_its_built_image_is(
    shapes: set[object]
) -> None:
    # Cut as a value, `="b"` in a text left the shape of a seen `a=`: written as read, the
    # text's `"` became `'` (libvirt writes `&quot;`).
    for text in ("a=", 'a="b"'):
        data = jobs("<blockjob name='c' type='create' state='running'>"
                    "<src type='file' format='raw'><source file='/f' index='3'><privateData>"
                    f"<relPath>{text}</relPath></privateData></source></src></blockjob>")
        assert blockjob.loads(data).dumps() == _built_and_dumped(data)
    assert b"<relPath>a=&quot;b&quot;</relPath>" in blockjob.loads(data).dumps()
