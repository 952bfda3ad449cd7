"""What requests share: finding the job a pivot or abort is about, and its QEMU state;
saving what a request changed so that a failed save leaves the document as the file."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from blockjob.errors import BlockJobError
from blockjob.model import BlockJob, JobState
from blockjob.qemu.monitor import Monitor, QemuJob
from blockjob.statusxml.document import StatusDocument
from blockjob.store import StoreError


class Saver(Protocol):
    """Where a request saves the document: the domain's owner (`StatusStore.owned`)."""

    def save(self, doc: StatusDocument) -> object: ...


class RequestError(BlockJobError):
    """A pivot or abort that cannot be asked for now (unknown job, wrong type or state)."""


def requested_job(
    doc: StatusDocument, name: str, monitor: Monitor, what: str
) -> tuple[BlockJob, QemuJob]:
    """Job `name` of the file and of QEMU; RequestError unless both know it and it runs."""
    job = doc.job(name)
    if job is None:
        raise RequestError(f"cannot {what} '{name}': the status file has no such block job")
    qjob = monitor.query_jobs().get(name)
    if qjob is None or qjob.status in ("concluded", "null"):
        seen = "unknown to QEMU" if qjob is None else f"QEMU says {qjob.status}"
        raise RequestError(f"cannot {what} '{name}': the job has ended ({seen})")
    return job, qjob


def persist_state(saver: Saver, doc: StatusDocument, job: BlockJob, state: JobState) -> BlockJob:
    """Record the request's state before QEMU is asked (a restart then knows what was asked)."""
    if job.state is state:
        return job  # asked again, e.g. resumed after a restart: already on file
    asked = replace(job, state=state)
    doc.replace_job(asked)
    try:
        saver.save(doc)
    except StoreError:
        doc.replace_job(job)  # the file still says what it said: so does the document
        raise
    return asked


def save_new_job(saver: Saver, doc: StatusDocument, job: BlockJob, *, mirror: bool) -> None:
    """Save `doc`, to which `job` (and, with `mirror`, its disk's `<mirror>`) was just
    added. A failed save takes them out again: the document says what the file says, and
    asking again is not refused as a second job."""
    try:
        saver.save(doc)
    except StoreError:
        forget_new_job(doc, job, mirror=mirror)
        raise


def forget_new_job(doc: StatusDocument, job: BlockJob, *, mirror: bool) -> None:
    """Take `job` (and, with `mirror`, its disk's `<mirror>`) out of `doc` again."""
    doc.remove_job(job.name)
    if mirror and job.disk is not None:
        doc.set_disk_chain(job.disk, drop_mirror=True)
