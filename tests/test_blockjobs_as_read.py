"""A loaded `<blockjobs>` whose key was seen written as read is written as read
(`statusxml.asread`): every such dump is held to the model's writing of the same file,
with no key and no image shape seen, and every image built."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blockjob
from blockjob.errors import StatusXMLError
from blockjob.model import JobState
from blockjob.statusxml import asread, lazyimages
from tests.support.corpus import status_files
from tests.support.docs import disk, status
from tests.test_images_as_read import _images, _loadable, _unbuilt

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> set[object]:
    """The keys seen written as read, and the image shapes: none yet."""
    seen: set[object] = set()
    monkeypatch.setattr(asread, "AS_READ", seen)
    monkeypatch.setattr(lazyimages, "_AS_READ", set())
    return seen


def _model(data: bytes, edit: Callable[[blockjob.StatusDocument], None] | None = None) -> bytes:
    """The dump of `data` (after `edit`) written from the model: no key or shape seen, every
    image built."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asread, "AS_READ", set())
        patch.setattr(lazyimages, "_AS_READ", set())
        doc = blockjob.loads(data)
        for image in _images(doc):
            assert image.type  # builds it
        if edit is not None:
            edit(doc)
        return doc.dumps()


def _as_read(doc: blockjob.StatusDocument) -> bool:
    """Whether the document's last dump was written as read."""
    return doc._dumped is not None and doc._dumped.written is None


def _files() -> dict[Path, bytes]:
    return _loadable(status_files() + sorted(DATA.glob("*.xml")) + sorted(DATA.glob("*/*.xml")))


def test_every_file_dumps_as_the_model_writes_it_unseen_seen_and_built(keys: set[object]) -> None:
    files = _files()
    # libvirt's own layout too: a file as the model writes it.
    inputs = list(files.values()) + [_model(data) for data in files.values()]
    learning = [blockjob.loads(data).dumps() for data in inputs]
    assert keys  # libvirt's files are written as read
    docs = [blockjob.loads(data) for data in inputs]
    learnt = [doc.dumps() for doc in docs]
    built = [_model(data) for data in inputs]
    assert learning == built
    assert learnt == built
    assert sum(map(_as_read, docs)) >= len(files)


FIXTURE = "blockjob-blockdev-in.xml"


@pytest.fixture
def fixture_bytes() -> bytes:
    found = [path for path in status_files() if path.name == FIXTURE]
    if not found:
        pytest.skip(f"{FIXTURE} not among the shared files")
    return found[0].read_bytes()


def _edits() -> Iterator[tuple[str, Callable[[blockjob.StatusDocument], None]]]:
    def state(doc: blockjob.StatusDocument, index: int) -> None:
        job = doc.jobs[index]
        doc.replace_job(dataclasses.replace(job, state=JobState.FAILED))

    def remove_and_add(doc: blockjob.StatusDocument) -> None:
        job = doc.jobs[0]
        doc.remove_job(job.name)
        doc.add_job(job)

    def remove(doc: blockjob.StatusDocument) -> None:
        doc.remove_job(doc.jobs[4].name)

    yield "nothing", lambda doc: None
    yield "first job's state", lambda doc: state(doc, 0)
    yield "last job's state", lambda doc: state(doc, -1)
    yield "a job removed", remove
    yield "a job removed and added", remove_and_add


@pytest.mark.parametrize(("name", "edit"), list(_edits()), ids=[name for name, _ in _edits()])
def test_a_file_libvirt_wrote_is_written_as_read_and_edited_after(
    name: str, edit: Callable[[blockjob.StatusDocument], None], fixture_bytes: bytes
) -> None:
    blockjob.loads(fixture_bytes).dumps()  # its key seen
    doc = blockjob.loads(fixture_bytes)
    assert doc.dumps() == fixture_bytes
    assert _as_read(doc) and _unbuilt(doc) == _images(doc)  # nothing parsed or built
    edit(doc)
    assert doc.dumps() == _model(fixture_bytes, edit)  # the jobs' texts cut from the bytes
    def twice(twin: blockjob.StatusDocument) -> None:
        edit(twin)
        edit(twin)

    edit(doc)  # and again, from texts written since
    assert doc.dumps() == _model(fixture_bytes, twice)


def test_a_job_replaced_before_the_first_dump_is_written_from_the_model(
    fixture_bytes: bytes
) -> None:
    blockjob.loads(fixture_bytes).dumps()

    def edit(doc: blockjob.StatusDocument) -> None:
        doc.replace_job(dataclasses.replace(doc.jobs[1], state=JobState.FAILED))

    doc = blockjob.loads(fixture_bytes)
    edit(doc)
    assert doc.dumps() == _model(fixture_bytes, edit)


def test_a_disk_chain_set_after_a_dump_as_read_is_written_as_the_model_writes_it(
    fixture_bytes: bytes
) -> None:
    blockjob.loads(fixture_bytes).dumps()

    def edit(doc: blockjob.StatusDocument) -> None:
        doc.dumps()
        doc.set_disk_chain("vda", drop_mirror=True)

    doc = blockjob.loads(fixture_bytes)
    edit(doc)
    assert doc.dumps() == _model(fixture_bytes, edit)


# Two jobs in libvirt's layout: a commit on vda naming images of its chain, a copy on
# vdb taking the disk's mirror, and a pull on vdc (its `<base>` not required).
_COMMIT = ("<blockjob name='a' type='commit' state='running'><disk dst='vda'/>"
           "<base node='libvirt-1-storage'/><top node='libvirt-3-storage'/>"
           "<topparent node='libvirt-2-storage'/></blockjob>")
_COPY = "<blockjob name='b' type='copy' state='ready'><disk dst='vdb' mirror='yes'/></blockjob>"
_PULL = "<blockjob name='c' type='pull' state='{state}'><disk dst='vdc'/>{base}</blockjob>"
_DISKS = disk("vda", (3, 2, 1)) + disk("vdb", (5, 4), mirror=9) + disk("vdc", (7, 6))


def _base(pull_state: str = "running", copy_job: str = "copy", more: str = "") -> bytes:
    """The jobs (and `more`) as the model writes them: libvirt's layout."""
    pull = _PULL.format(state=pull_state, base="<base node='libvirt-6-storage'/>")
    return _model(status(f"<blockjobs active='yes'>{_COMMIT}{_COPY}{pull}{more}</blockjobs>",
                         _DISKS.replace("job='copy'", f"job='{copy_job}'")))


def _in_domain(old: str, new: str) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        at = data.index(b"<domain")
        return data[:at] + data[at:].replace(old.encode(), new.encode())
    return change


def _everywhere(old: str, new: str) -> Callable[[bytes], bytes]:
    return lambda data: data.replace(old.encode(), new.encode())


def _drop_mirror(data: bytes) -> bytes:
    return re.sub(rb"<mirror .*?</mirror>", b"", data)


# (how the file dumped differs from the one whose key was seen, written as read?)
_DOMAIN_CHANGES = {
    "disk removed": (_in_domain("dev='vda'", "dev='vdz'"), False),
    "dst renamed": (_everywhere("dst='vda'", "dst='vdz'"), False),
    "dst and its disk renamed": (_everywhere("'vda'", "'vdz'"), True),
    "mirror dropped": (_drop_mirror, False),
    "node renamed in the chain": (_in_domain("libvirt-1-storage", "libvirt-8-storage"), False),
    "node renamed in the chain and the job": (_everywhere("libvirt-1-storage", "libvirt-8-s"),
                                              True),
    "job names out of order": (_everywhere("name='a'", "name='d'"), False),
}


@pytest.mark.parametrize("change", list(_DOMAIN_CHANGES))
def test_a_domain_changed_since_the_key_was_seen_is_written_as_the_model_writes_it(
    change: str, keys: set[object]
) -> None:
    seen = _base()
    blockjob.loads(seen).dumps()
    assert keys
    how, as_read = _DOMAIN_CHANGES[change]
    data = how(seen)
    assert data != seen
    doc = blockjob.loads(data)
    assert doc.dumps() == _model(data)
    assert _as_read(doc) is as_read


def test_active_from_the_domain_is_written_as_the_model_writes_it(keys: set[object]) -> None:
    # A failed pull and a copy on a disk whose mirror is a copy's: `active` is the domain's.
    seen = _base("failed")
    blockjob.loads(seen).dumps()
    for job in ("active-commit", "copy"):  # the domain's mirror no longer (again) a copy's
        data = _base("failed", copy_job=job).replace(b"state='ready'", b"state='failed'")
        assert blockjob.loads(data).dumps() == _model(data)


def _pull(base: str) -> Callable[[bytes], bytes]:
    return _everywhere("<base node='libvirt-6-storage'/>", f"<base node='{base}'/>")


# Values in the same place as one seen written as read, that writing does not copy: each
# is written as the model writes it. (change of the file seen, of the file dumped)
_SAME = _everywhere("", "")
_FLAGS = "state='ready' jobflags='0x{}'"
_HOST = "<host name='h' port='7'/>"
_VALUES = {
    "index with a leading zero": (_SAME, _everywhere("index='5'", "index='05'")),
    "port 0, the default port": (_SAME, _everywhere(_HOST, _HOST.replace("7", "0"))),
    "port with a leading zero": (_SAME, _everywhere(_HOST, _HOST.replace("7", "07"))),
    "transport": (_everywhere(_HOST, _HOST.replace("/>", " transport='rdma'/>")),
                  _everywhere(_HOST, _HOST.replace("/>", " transport='tcp'/>"))),
    # No default port for rbd, 10809 for nbd.
    "protocol": (lambda data: _everywhere(_HOST, "<host name='h'/>")(data)
                 .replace(b"'nbd'", b"'rbd'"), _everywhere(_HOST, "<host name='h'/>")),
    "storage type": (_SAME, _everywhere("<src type='network'", "<src type='file'")),
    "job type": (_SAME, _everywhere("type='commit'", "type='active-commit'")),
    "brokentype": (_everywhere("state='ready'", "state='ready' brokentype='pull'"),
                   _everywhere("state='ready'", "state='ready' brokentype='none'")),
    "empty node name": (_SAME, _pull("")),
    "reference": (_SAME, _everywhere("dst='vdc'", "dst='&#118;dc'")),
    "value with a double quote": (_SAME, _everywhere("name='c'", "name='c\"'")),
    "value with a TAB": (_SAME, _everywhere("name='c'", "name='c\t'")),
    "value with a LF": (_SAME, _everywhere("name='c'", "name='c\n'")),
    "value with a CR": (_SAME, _everywhere("name='c'", "name='c\r'")),
    "value with a >": (_SAME, _everywhere("name='c'", "name='c>'")),
    "jobflags not as written": (_everywhere("state='ready'", _FLAGS.format("1")),
                                _everywhere("state='ready'", _FLAGS.format("01"))),
    "active not as written": (_SAME, _everywhere("active='yes'", "active='no'")),
    # The file seen is not written as read: its key is not kept.
    "seen written otherwise": (_everywhere("state='ready'", _FLAGS.format("01")),
                               lambda data: _everywhere("state='ready'", _FLAGS.format("01"))(
                                   data).replace(b"name='c'", b"name='cc'")),
}


def _with_image() -> bytes:
    """The jobs, and a create job whose image has a network host."""
    create = ("<blockjob name='d' type='create' state='running'><src type='network' "
              "format='raw'><source protocol='nbd' file='/f' name='e' tlsFromConfig='0' "
              f"index='5'>{_HOST}</source></src></blockjob>")
    return _base(more=create)


@pytest.mark.parametrize("case", list(_VALUES))
def test_a_value_writing_does_not_copy_is_written_as_the_model_writes_it(
    case: str, keys: set[object]
) -> None:
    seen_change, change = _VALUES[case]
    seen = seen_change(_with_image())
    as_read = blockjob.loads(seen).dumps() == seen
    assert bool(keys) is as_read  # its key kept when written as read
    data = change(_with_image())
    assert data != _with_image()
    assert blockjob.loads(data).dumps() == _model(data)


def test_a_prefixed_name_is_written_as_the_model_writes_it(keys: set[object]) -> None:
    # A job's unknown attribute and child, declaring their namespace: the model writes the
    # declarations only where the root does not make them.
    seen = _base().replace(b"<disk dst='vdc'/>", b"<disk dst='vdc'/><x:k xmlns:x='urn:a'/>") \
        .replace(b"name='c'", b"name='c' xmlns:y='urn:a' y:f='1'")
    assert blockjob.loads(seen).dumps() == _model(seen)
    seen = _model(seen)
    declared = seen.replace(b"<domstatus ", b"<domstatus xmlns:x='urn:a' xmlns:y='urn:a' ")
    assert declared != _model(declared)
    for data in (seen, declared):
        assert blockjob.loads(data).dumps() == _model(data)


def test_a_job_with_unknown_parts_is_written_as_read(keys: set[object]) -> None:
    seen = _model(_base().replace(b"<disk dst='vdc'/>", b"<disk dst='vdc'/><k a='1'>t</k>")
                  .replace(b"name='c'", b"name='c' f='1'"))
    blockjob.loads(seen).dumps()
    data = seen.replace(b"a='1'", b"a='2'").replace(b"f='1'", b"f='2'")
    doc = blockjob.loads(data)
    assert doc.dumps() == _model(data)
    assert _as_read(doc)

    def edit(doc: blockjob.StatusDocument) -> None:
        doc.replace_job(dataclasses.replace(doc.jobs[2], state=JobState.FAILED))

    edit(doc)  # its text cut from the bytes, its children after its kept attribute
    assert doc.dumps() == _model(data, edit)


def test_a_default_namespace_the_root_binds_to_a_prefix_is_written_as_read(
    keys: set[object]
) -> None:
    # `xmlns='...'` is a value cut from the key: a root binding a prefix to its URI (outside
    # the bytes) must not make the model write the kept child otherwise.
    seen = _model(_base().replace(b"<disk dst='vdc'/>", b"<disk dst='vdc'/><k xmlns='urn:a'/>"))
    blockjob.loads(seen).dumps()
    assert keys
    for root, uri in ((b"xmlns:x='urn:a'", b"urn:a"), (b"xmlns:x='urn:b'", b"urn:b")):
        data = seen.replace(b"<domstatus ", b"<domstatus " + root + b" ") \
            .replace(b"xmlns='urn:a'", b"xmlns='" + uri + b"'")
        doc = blockjob.loads(data)
        assert doc.dumps() == _model(data)
        assert _as_read(doc)


@pytest.mark.parametrize("char", ["\x7f", "\x85", "\u2028", "\ufeff", "\ufdd0", "\U0010ffff"])
def test_a_value_with_a_character_xml_keeps_is_written_as_read(
    char: str, keys: set[object]
) -> None:
    # Characters no XML reader normalizes and writing leaves alone, in a job's name, a
    # kept attribute and an image's path.
    seen = _model(_with_image().replace(b"name='c'", b"name='c' f='1'"))
    blockjob.loads(seen).dumps()
    assert keys
    raw = char.encode()
    data = seen.replace(b"name='c'", b"name='c" + raw + b"'") \
        .replace(b"f='1'", b"f='" + raw + b"'").replace(b"file='/f'", b"file='/f" + raw + b"'")
    doc = blockjob.loads(data)
    assert doc.dumps() == _model(data)
    assert _as_read(doc)


def test_the_keys_kept_are_bounded(keys: set[object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asread, "AS_READ_MAX", 1)
    for data in (_base(), _base("failed")):
        blockjob.loads(data).dumps()
        assert len(keys) == 1


# Values in libvirt's other spellings, empty, and characters writing escapes.
_ANY_VALUE = st.one_of(
    st.sampled_from(["", "0", "00", "05", "0x1", "0x01", "yes", "no", "ready", "failed",
                     "copy", "storage", "tcp", "file", "vda", "vdb", "vdc", "vdz", "a", "z",
                     "libvirt-1-storage", "libvirt-6-storage", "libvirt-9-format", "é"]),
    st.text(alphabet="05xa-' \"&<>\t\n\ré", max_size=5),
)


def _escaped(value: str, raw: bool) -> bytes:
    """`value` in single quotes: escaped as XML wants, or raw (maybe not well-formed)."""
    if not raw:
        value = value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
    return f"'{value}'".encode()


_VALUE_AT = re.compile(rb"\s([\w:-]+)=('[^']*')")
_SEEDS = {str(path): data for path, data in _files().items()} | {
    "jobs on three disks, and an image": _with_image()}
# What may change in the domain between the file seen and the one dumped.
_DOMAIN = st.sampled_from([
    lambda data: data,
    _in_domain("dev='vda'", "dev='vdz'"),
    _in_domain("dev='vdb'", "dev='vda'"),
    _drop_mirror,
    _in_domain("job='copy'", "job='active-commit'"),
    _in_domain("libvirt-1-storage", "libvirt-8-storage"),
    _in_domain("libvirt-6-storage", "libvirt-3-storage"),
])


@pytest.mark.fuzz
@settings(max_examples=int(os.environ.get("BLOCKJOB_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(seed=st.sampled_from(sorted(_SEEDS)), data=st.data())
def test_a_blockjobs_of_a_key_seen_with_any_values_or_domain_dumps_as_the_model_writes_it(
    seed: str, data: st.DataObject
) -> None:
    """Values of `<blockjobs>` and the domain changed, in the file whose key was seen or in
    the one dumped after: written as read only where the model writes the same bytes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asread, "AS_READ", set())
        patch.setattr(lazyimages, "_AS_READ", set())
        libvirts = _model(_SEEDS[seed])  # in libvirt's layout
        start = libvirts.index(b"<blockjobs")
        end = libvirts.index(b"</blockjobs>" if b"</blockjobs>" in libvirts else b">", start)
        places = [found.span(2) for found in _VALUE_AT.finditer(libvirts, start, end)]
        chosen = data.draw(st.lists(st.sampled_from(places), max_size=4, unique=True)) \
            if places else []
        dumped = b""
        for step in ("seen", "dumped"):
            changed = libvirts
            if step == "dumped" or data.draw(st.booleans()):
                for first, last in sorted(chosen, reverse=True):
                    value = _escaped(data.draw(_ANY_VALUE), data.draw(st.booleans()))
                    changed = changed[:first] + value + changed[last:]
                changed = data.draw(_DOMAIN)(changed)
            try:
                dumped = blockjob.loads(changed).dumps()
            except StatusXMLError:
                return
        assert dumped == _model(changed)
