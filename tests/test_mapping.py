"""Documents generated from the `<blockjob>` table: every row, every job type it belongs to.

The writer's output must satisfy both schemas and read back to the same model, so a row
whose schema rule or model field was forgotten fails here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import blockjob
from blockjob.cli import show
from blockjob.model import BlockJob, JobChains, JobState, JobType
from blockjob.statusxml.mapping import (
    DATA_CLASSES,
    JOB_ROWS,
    ROWS,
    ROWS_OF_CLASS,
    ROWS_OF_TYPE,
    Kind,
    Row,
    value_of,
)
from blockjob.statusxml.summary import job_summary
from blockjob.validation.check import validate_bytes
from tests.support.docs import disk, status
from tests.support.images import file_image

# Two disks with three-image chains; vdb also has a copy `<mirror>`.
DISKS = disk("vda", (3, 2, 1)) + disk("vdb", (6, 5, 4), mirror=9)
# BlockJob fields that are the reader's verdict or bookkeeping, not attributes or children.
NOT_ROWS = {"mirror", "data", "invalid", "problems", "raw", "kept_attributes", "kept_children"}


def _sample(row: Row, position: int, disk_name: str | None) -> Any:
    """A value other than the default for `row`, that the job's chains can resolve."""
    first = {"vda": 1, "vdb": 4, None: 50}[disk_name]
    samples: dict[Kind, Any] = {
        Kind.NODE: f"libvirt-{first + position % 3}-format",
        Kind.FLAG: True,
        Kind.YES: True,
        Kind.NAMES: ("b1", "b2"),
        Kind.NAMED: "b0",
        Kind.IMAGE: file_image(f"/img/{row.xml}.qcow2", index=40 + position),
    }
    return samples[row.kind]


def _orphan_chains() -> JobChains:
    below = file_image("/img/o-51.qcow2", index=51, storage_node="libvirt-51-storage",
                       format_node="libvirt-51-format", terminated=True)
    top = file_image("/img/o-50.qcow2", index=50, storage_node="libvirt-50-storage",
                     format_node="libvirt-50-format", backing=below)
    return JobChains(disk=top, mirror=file_image("/img/o-52.qcow2", index=52))


def generated_job(kind: JobType, disk_name: str | None) -> BlockJob:
    data_rows = ROWS_OF_TYPE.get(kind, ())
    data = DATA_CLASSES[kind](**{
        row.field: _sample(row, i, disk_name) for i, row in enumerate(data_rows)
    }) if kind in DATA_CLASSES else None
    return BlockJob(
        name=f"job-{kind.value}",
        type=kind,
        state=JobState.RUNNING,
        newstate=JobState.READY,
        # The schemas pair these with one job type each, as libvirt writes them.
        brokentype=JobType.COMMIT if kind is JobType.BROKEN else None,
        mirror=disk_name == "vdb" and kind is JobType.COPY,
        jobflags=0x4,
        errmsg="it failed <once>",
        disk=disk_name,
        chains=_orphan_chains() if disk_name is None else None,
        data=data,
    )


CASES: list[tuple[JobType, str | None]] = [
    (kind, "vdb" if kind is JobType.COPY else "vda") for kind in JobType
]
# An unbound job keeps its own chains; libvirt writes those only for jobs without a disk.
CASES += [(JobType.COPY, None), (JobType.PULL, None)]


@pytest.mark.parametrize(("kind", "disk_name"), CASES)
def test_a_job_with_every_row_is_valid_and_reads_back(kind: JobType, disk_name: str | None) -> None:
    job = generated_job(kind, disk_name)
    doc = blockjob.loads(status("<blockjobs active='no'/>", DISKS))
    doc.add_job(job)
    data = doc.dumps()

    report = validate_bytes(data, f"generated-{kind.value}.xml")
    assert report.verdicts == {"rng": True, "xsd": True}, (data.decode(), report.problems)

    again = blockjob.loads(data)
    (read,) = again.jobs
    assert (read.invalid, read.problems) == (False, ())
    assert read == job
    assert again.dumps() == data

    # `show --json` shows every row the job has set.
    summary = job_summary(read)
    for row in ROWS:
        if row.key is not None and value_of(row, job) not in (None, False):
            assert summary[row.key] not in (None, False, []), (row.xml, summary)


def test_every_row_is_written_by_some_generated_job() -> None:
    seen: set[str] = set()
    for kind, disk_name in CASES:
        job = generated_job(kind, disk_name)
        doc = blockjob.loads(status("<blockjobs active='no'/>", DISKS))
        doc.add_job(job)
        text = doc.dumps().decode()
        seen |= {row.xml for row in ROWS if f"<{row.xml}" in text or f" {row.xml}='" in text}
    assert seen == {row.xml for row in ROWS}


def test_every_model_field_has_a_row() -> None:
    job_fields = {f.name for f in dataclasses.fields(BlockJob)} - NOT_ROWS
    assert job_fields == {row.field for row in JOB_ROWS}
    for cls in DATA_CLASSES.values():
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields == {row.field for row in ROWS_OF_CLASS[cls]}, cls


def test_show_json_has_one_key_per_row() -> None:
    keys = set(job_summary(generated_job(JobType.COPY, "vdb")))
    assert keys == {row.key for row in ROWS if row.key is not None} | {
        "mirror", "invalid", "problems"}


@pytest.mark.parametrize(("kind", "disk_name"), CASES)
def test_show_text_names_every_row_a_job_carries(kind: JobType, disk_name: str | None) -> None:
    summary = job_summary(generated_job(kind, disk_name))
    details = show.details(summary)
    for row in ROWS:
        key = row.key
        if key is not None and key not in show.COLUMNS and summary[key] not in (
                None, False, [], ""):
            assert key.replace("_", "-") in details, key
