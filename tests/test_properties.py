"""Property: any valid job survives model -> XML -> model unchanged."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

import blockjob
from blockjob import (
    BackupData,
    BlockJob,
    CommitData,
    CopyData,
    CreateData,
    JobChains,
    JobState,
    JobType,
    PullData,
)
from tests.support.docs import jobs
from tests.support.images import file_image

# XML 1.0 cannot carry control characters; attribute values also lose TAB/LF/CR
# to normalisation, and text loses CR, so those stay out of generated strings.
_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Cn"))
NAMES = st.text(_CHARS, min_size=1, max_size=20)
TEXT = st.text(st.one_of(_CHARS, st.sampled_from("\t\n")), min_size=1, max_size=40)
VDA = [f"libvirt-{i}-{kind}" for i in (1, 2, 3) for kind in ("storage", "format")]


def _image(index: int) -> st.SearchStrategy[blockjob.StorageSource]:
    return st.builds(
        lambda path, fmt: file_image(path, fmt, index=index, storage_node=f"n{index}-s",
                                     format_node=f"n{index}-f"),
        NAMES, st.sampled_from(["qcow2", "raw"]),
    )


def _data(kind: JobType) -> st.SearchStrategy[object]:
    if kind is JobType.PULL:
        return st.builds(PullData, base=st.none() | st.sampled_from(VDA))
    if kind in (JobType.COMMIT, JobType.ACTIVE_COMMIT):
        return st.builds(
            CommitData,
            base=st.sampled_from(VDA), top=st.sampled_from(VDA),
            topparent=st.sampled_from(VDA) if kind is JobType.COMMIT else st.none(),
            delete_committed_images=st.booleans(),
            disabled_base_bitmaps=st.lists(NAMES, max_size=4).map(tuple),
        )
    if kind is JobType.COPY:
        return st.builds(CopyData, shallownew=st.booleans())
    if kind is JobType.CREATE:
        return st.builds(CreateData, src=_image(41), storage_only=st.booleans())
    if kind is JobType.BACKUP:
        return st.builds(BackupData, bitmap=st.none() | NAMES, store=_image(42))
    return st.none()


@st.composite
def valid_jobs(draw: st.DrawFn, name: str, disk: str | None) -> BlockJob:
    kind = draw(st.sampled_from(list(JobType)))
    needs_disk = kind in (JobType.PULL, JobType.COMMIT, JobType.ACTIVE_COMMIT, JobType.BACKUP)
    if needs_disk:
        disk = "vda"
    chains = None
    if disk is None and kind is JobType.COPY and draw(st.booleans()):
        below = dataclasses.replace(draw(_image(50)), terminated=True)
        chains = JobChains(
            disk=dataclasses.replace(draw(_image(51)), backing=below),
            mirror=draw(st.none() | _image(52)),
        )
    return BlockJob(
        name=name,
        type=kind,
        state=draw(st.sampled_from(list(JobState))),
        newstate=draw(st.none() | st.sampled_from(list(JobState))),
        brokentype=draw(st.none() | st.sampled_from(list(JobType))),
        jobflags=draw(st.none() | st.integers(0, 2**32 - 1)),
        errmsg=draw(st.none() | TEXT),
        disk=disk,
        mirror=disk == "vdb" and kind is JobType.COPY and draw(st.booleans()),
        chains=chains,
        data=draw(_data(kind)),  # type: ignore[arg-type]
    )


@st.composite
def job_sets(draw: st.DrawFn) -> list[BlockJob]:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    out: list[BlockJob] = []
    free_disks = ["vdb", None, None, None]
    for name in names:
        job = draw(valid_jobs(name, free_disks.pop(0) if draw(st.booleans()) else None))
        if job.disk is not None and any(other.disk == job.disk for other in out):
            continue
        out.append(job)
    return out


@settings(max_examples=300, deadline=None)
@given(job_sets())
def test_valid_jobs_survive_model_xml_model(generated: list[BlockJob]) -> None:
    doc = blockjob.loads(jobs())
    for job in generated:
        doc.add_job(job)
    data = doc.dumps()
    again = blockjob.loads(data)
    assert again.jobs == doc.jobs
    assert again.dumps() == data
