"""Aborting a running commit, active commit or any other job: libvirt's request, crash-safe.

`aborting` is saved before `job-cancel`, so however the job then concludes (a
cancelled ready mirror reports success) it is finished as `cancelled`: listed base
bitmaps re-enabled, the chain kept, the `<mirror>` dropped. That finish is
recovery's, run on `concluded`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from blockjob.jobs.requests import RequestError, Saver, persist_state, requested_job
from blockjob.model import BlockJob, JobState
from blockjob.qemu.monitor import Monitor
from blockjob.statusxml.document import StatusDocument


class AbortCrashPoint(StrEnum):
    """Points of the abort flow, in order; each is reached after the step it names."""

    ABORTING_PERSISTED = "aborting-persisted"  # file: aborting; QEMU job still runs
    CANCEL_SENT = "cancel-sent"                # QEMU cancels and concludes; file: aborting


AbortHook = Callable[[AbortCrashPoint], None]


def request_abort(
    saver: Saver, doc: StatusDocument, name: str, monitor: Monitor, *,
    crash: AbortHook | None = None,
) -> BlockJob:
    """Ask QEMU to cancel job `name`; returns the job (state aborting). Safe to repeat.
    A job being pivoted is refused, as libvirt refuses it: `job-complete` may have reached
    QEMU, base may hold the merged bitmaps (RequestError; the pivot can be asked again)."""
    job, _ = requested_job(doc, name, monitor, "abort")
    if job.state is JobState.PIVOTING:
        raise RequestError(f"cannot abort '{name}': it is being pivoted; ask the pivot again")
    job = persist_state(saver, doc, job, JobState.ABORTING)
    if crash is not None:
        crash(AbortCrashPoint.ABORTING_PERSISTED)
    monitor.job_cancel(name)
    if crash is not None:
        crash(AbortCrashPoint.CANCEL_SENT)
    return job
