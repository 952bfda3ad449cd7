"""What pivot and abort share: finding the job a request is about, and its QEMU state."""

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
