"""A document writes again only the jobs that changed since its last dump; never stale text.

The oracle is a twin: the same file loaded again, the same edits made, dumped once at the
end, so it renders every job from its model. Whatever the first document kept from earlier
dumps must give the same bytes.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import blockjob
from blockjob import (
    BackupData,
    BlockJob,
    CommitData,
    CopyData,
    CreateData,
    JobState,
    JobType,
    PullData,
    StatusDocument,
)
from blockjob.element import Node
from blockjob.model import JobData
from blockjob.statusxml import writer
from tests.support.corpus import FIXTURES

DATA = Path(__file__).parent / "data"
FILES = [DATA / "every-type-in.xml", DATA / "invalid-jobs-in.xml", DATA / "orphan-chains-in.xml"]
FIXTURE = FIXTURES / "blockjob-blockdev-in.xml"
STATES = list(JobState)


def _files() -> list[object]:
    found: list[object] = [pytest.param(path, id=path.name) for path in FILES]
    reason = f"{FIXTURE} not found"
    found.append(pytest.param(FIXTURE, id=FIXTURE.name,
                              marks=pytest.mark.skipif(not FIXTURE.is_file(), reason=reason)))
    return found


# An edit: (kind, job position among the jobs, a number the kind may use, dump after it).
Edit = tuple[str, int, int, bool]


def _other_data(data: JobData | None, number: int) -> JobData | None:
    """`data` with one field changed (a child or, for a copy, an attribute)."""
    if isinstance(data, CommitData):
        return dataclasses.replace(data, top=f"libvirt-{number}-format")
    if isinstance(data, PullData):
        return dataclasses.replace(data, base=f"libvirt-{number}-format")
    if isinstance(data, CopyData):
        return dataclasses.replace(data, shallownew=not data.shallownew)
    if isinstance(data, CreateData):
        return dataclasses.replace(data, storage_only=not data.storage_only)
    if isinstance(data, BackupData):
        return dataclasses.replace(data, bitmap=f"b{number}")
    return data


def _apply(doc: StatusDocument, edit: Edit, removed: dict[str, BlockJob]) -> None:
    kind, position, number, _dump = edit
    names = sorted(job.name for job in [*doc.jobs, *removed.values()])
    name = names[position % len(names)]
    job = doc.job(name)
    if job is None:
        doc.add_job(removed.pop(name))  # the very object removed before
        return
    if kind == "state":
        doc.replace_job(dataclasses.replace(job, state=STATES[number % len(STATES)]))
    elif kind == "newstate":
        doc.replace_job(dataclasses.replace(job, newstate=STATES[number % len(STATES)]))
    elif kind == "errmsg":
        doc.replace_job(dataclasses.replace(job, errmsg=f"failed {number} <&'>"))
    elif kind == "data":
        doc.replace_job(dataclasses.replace(job, data=_other_data(job.data, number)))
    elif kind == "kept":
        kept = ((None, Node("future", (("n", str(number)),))),)
        doc.replace_job(dataclasses.replace(job, kept_children=kept))
    elif kind == "kept_attribute":
        after = ("name", "state", None)[number % 3]
        doc.replace_job(dataclasses.replace(job, kept_attributes=((after, "future", str(number)),)))
    elif kind == "type":  # a copy becomes a pull and back: their attribute rows differ
        if isinstance(job.data, CopyData):
            doc.replace_job(dataclasses.replace(job, type=JobType.PULL, data=PullData()))
        else:
            doc.replace_job(dataclasses.replace(job, type=JobType.COPY,
                                                data=CopyData(shallownew=True)))
    elif kind == "equal":
        doc.replace_job(dataclasses.replace(job))  # equal, but another object
    else:
        removed[name] = doc.remove_job(name)


def _twin(data: bytes, edits: list[Edit]) -> bytes:
    doc = blockjob.loads(data)
    removed: dict[str, BlockJob] = {}
    for edit in edits:
        _apply(doc, edit, removed)
    return doc.dumps()


_KINDS = ["state", "newstate", "errmsg", "data", "kept", "kept_attribute", "type", "equal",
          "remove"]
_EDITS = st.lists(st.tuples(st.sampled_from(_KINDS), st.integers(0, 20), st.integers(0, 20),
                            st.booleans()), max_size=12)


@pytest.mark.parametrize("path", _files())
@settings(max_examples=40, deadline=None)
@given(edits=_EDITS)
def test_every_dump_after_edits_is_what_a_fresh_render_writes(
    path: Path, edits: list[Edit]
) -> None:
    data = path.read_bytes()
    doc = blockjob.loads(data)
    removed: dict[str, BlockJob] = {}
    doc.dumps()
    for done, edit in enumerate(edits, 1):
        _apply(doc, edit, removed)
        if edit[3]:
            assert doc.dumps() == _twin(data, edits[:done])
    assert doc.dumps() == _twin(data, edits)


def _commit_doc() -> tuple[StatusDocument, BlockJob]:
    doc = blockjob.loads((DATA / "every-type-in.xml").read_bytes())
    job = next(job for job in doc.jobs if job.commit is not None and job.disk is not None)
    return doc, job


def test_a_changed_job_is_written_again_and_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    doc, job = _commit_doc()
    doc.dumps()
    written: list[str] = []
    real = writer.job_text

    def counting(job: BlockJob, last: writer.JobText | None = None) -> writer.JobText:
        written.append(job.name)
        return real(job, last)

    monkeypatch.setattr("blockjob.statusxml.document.job_text", counting)
    assert doc.dumps() == doc.dumps()
    assert written == []
    doc.replace_job(dataclasses.replace(job, state=JobState.PENDING))
    assert b"state='pending'" in doc.dumps()
    assert written == [job.name]


def test_children_follow_an_edit_of_errmsg_or_data() -> None:
    doc, job = _commit_doc()
    doc.dumps()
    commit = job.commit
    assert commit is not None
    doc.replace_job(dataclasses.replace(job, errmsg="gone",
                                        data=dataclasses.replace(commit, top="libvirt-77")))
    out = doc.dumps()
    assert b"<errmsg>gone</errmsg>" in out
    assert b"<top node='libvirt-77'/>" in out


def test_active_follows_a_state_change_of_an_unchanged_text() -> None:
    data = (DATA / "no-jobs-idle-in.xml").read_bytes()
    doc = blockjob.loads(data)
    disk = doc.disks[0].target
    idle = BlockJob(name="j", type=blockjob.JobType.COPY, state=JobState.PENDING, disk=disk)
    doc.add_job(idle)
    assert b"<blockjobs active='no'>" in doc.dumps()
    doc.replace_job(dataclasses.replace(idle, state=JobState.RUNNING))
    assert b"<blockjobs active='yes'>" in doc.dumps()
    doc.replace_job(idle)  # its text was written before, with active='no'
    assert b"<blockjobs active='no'>" in doc.dumps()


def test_removing_and_adding_back_a_job() -> None:
    doc, job = _commit_doc()
    first = doc.dumps()
    doc.remove_job(job.name)
    assert f"name='{job.name}'".encode() not in doc.dumps()
    doc.add_job(job)
    assert doc.dumps() == first


@pytest.mark.parametrize("state", [JobState.READY, JobState.PIVOTING, JobState.NEW])
def test_set_disk_chain_after_a_dump_and_an_edit_is_what_a_fresh_document_gives(
    state: JobState,
) -> None:
    # The states differ in length: the edited dump's `<blockjobs>` bytes move.
    docs = [_commit_doc(), _commit_doc()]
    docs[0][0].dumps()
    for doc, job in docs:
        assert job.disk is not None
        doc.replace_job(dataclasses.replace(job, state=state))
        doc.set_disk_chain(job.disk, drop_mirror=True)
    assert docs[0][0].dumps() == docs[1][0].dumps()


def test_set_disk_chain_reloads_and_the_dump_follows() -> None:
    doc, job = _commit_doc()
    assert job.disk is not None
    doc.dumps()
    doc.replace_job(dataclasses.replace(job, state=JobState.READY))
    doc.set_disk_chain(job.disk, drop_mirror=True)
    reloaded = blockjob.loads(doc.dumps())
    assert doc.dumps() == reloaded.dumps()
    assert reloaded.job(job.name) is not None
    assert reloaded.job(job.name).state is JobState.READY  # type: ignore[union-attr]


def test_set_disk_chain_keeps_the_dumps_line_break_before_blockjobs() -> None:
    # `<blockjobs>` on the line of the element before it: a dump starts it on a line of
    # its own, and a disk rewrite must build on those bytes, not on the loaded ones.
    data = (DATA / "every-type-in.xml").read_bytes()
    start = data.index(b"<blockjobs")
    line_break = data.rindex(b"\n", 0, start)
    joined = data[:line_break] + data[line_break + 1:start].strip() + data[start:]
    edited, fresh = blockjob.loads(joined), blockjob.loads(joined)
    target = edited.disks[0].target
    edited.set_disk_chain(target, edited.disks[0].chain)
    assert edited.dumps() == fresh.dumps()


@pytest.mark.parametrize("clone", [lambda d: pickle.loads(pickle.dumps(d)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_a_copied_document_writes_its_own_edits(clone: object) -> None:
    doc, job = _commit_doc()
    before = doc.dumps()
    twin = clone(doc)  # type: ignore[operator]
    assert twin.dumps() == before
    twin.replace_job(dataclasses.replace(twin.job(job.name), state=JobState.PENDING))
    assert b"state='pending'" in twin.dumps()
    assert doc.dumps() == before
    doc.replace_job(dataclasses.replace(job, errmsg="mine"))
    assert b"<errmsg>mine</errmsg>" not in twin.dumps()


def test_a_shallow_copy_shares_the_jobs_and_writes_them_as_they_are() -> None:
    doc, job = _commit_doc()
    doc.dumps()
    other = copy.copy(doc)
    other.replace_job(dataclasses.replace(job, state=JobState.PENDING))
    assert doc.dumps() == other.dumps()
    assert b"state='pending'" in doc.dumps()


def test_kept_parts_stay_in_place_when_only_a_state_changes() -> None:
    data = (DATA / "every-type-in.xml").read_bytes().replace(
        b"<blockjob name=", b"<blockjob speed='9' name=", 1)
    doc = blockjob.loads(data)
    job = next(job for job in doc.jobs if job.kept_attributes)
    doc.dumps()
    doc.replace_job(dataclasses.replace(job, state=JobState.ABORTING))
    position = [j.name for j in doc.jobs].index(job.name)
    assert doc.dumps() == _twin(data, [("state", position, STATES.index(JobState.ABORTING), True)])
    assert b"speed='9'" in doc.dumps()
