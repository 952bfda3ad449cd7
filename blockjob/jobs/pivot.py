"""Pivoting a ready active commit (or copy): libvirt 6.2's request, crash-safe.

libvirt merges the committed images' bitmaps into base *before* `job-complete`
(its "Handle merging of bitmaps when pivoting an active block-commit"): after the
pivot base is the disk's active image. Unlike libvirt, `pivoting` is saved first:
a restart that finds the job gone then knows it pivoted (README, `Live tracking`).
The finish (chain, `<mirror>`, committed nodes) is recovery's, run on `concluded`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from blockjob.jobs.requests import RequestError, Saver, persist_state, requested_job
from blockjob.model import BlockJob, JobState, JobType
from blockjob.qemu.monitor import Monitor, QMPCommandError
from blockjob.qemu.nodes import node_of
from blockjob.statusxml.document import StatusDocument


class PivotCrashPoint(StrEnum):
    """Points of the pivot flow, in order; each is reached after the step it names."""

    PIVOTING_PERSISTED = "pivoting-persisted"  # file: pivoting; QEMU job ready, nothing merged
    BITMAPS_MERGED = "bitmaps-merged"          # base holds the merged bitmaps; job still ready
    COMPLETE_SENT = "complete-sent"            # QEMU pivots and concludes; file: pivoting


PivotHook = Callable[[PivotCrashPoint], None]
# Merges an active commit's bitmaps into base (recovery's merge step, which the
# caller above this layer provides); returns the bitmaps it had to skip.
MergeHook = Callable[[BlockJob], list[str]]
PIVOTABLE = frozenset({JobType.ACTIVE_COMMIT, JobType.COPY})


def request_pivot(
    saver: Saver, doc: StatusDocument, name: str, monitor: Monitor, *,
    merge: MergeHook, crash: PivotHook | None = None,
) -> tuple[BlockJob, list[str]]:
    """Ask QEMU to pivot ready job `name`; returns the job (state pivoting) and the bitmaps
    the merge had to skip. Safe to repeat on a job already recorded as pivoting."""
    job, qjob = requested_job(doc, name, monitor, "pivot")
    if job.type not in PIVOTABLE:
        raise RequestError(f"cannot pivot '{name}': a {job.type} job has no mirror to pivot to")
    if job.state not in (JobState.READY, JobState.PIVOTING) or qjob.status != "ready":
        raise RequestError(
            f"cannot pivot '{name}': it is not ready (file: {job.state}, QEMU: {qjob.status})")
    _check_copy_backing(doc, job, monitor)
    asked = job.state
    job = persist_state(saver, doc, job, JobState.PIVOTING)
    if crash is not None:
        crash(PivotCrashPoint.PIVOTING_PERSISTED)
    try:
        problems = merge(job) if job.type is JobType.ACTIVE_COMMIT else []
        if crash is not None:
            crash(PivotCrashPoint.BITMAPS_MERGED)
        monitor.job_complete(name)
    except QMPCommandError:
        # QEMU refused the merge (a busy bitmap) or job-complete (the job was cancelled
        # meanwhile): no pivot happens, so the job is recorded as it was (a `ready` one can
        # then be aborted). libvirt records pivoting once job-complete is accepted; a
        # merge that ran stays, as in libvirt.
        persist_state(saver, doc, job, asked)
        raise
    if crash is not None:
        crash(PivotCrashPoint.COMPLETE_SENT)
    return job, problems


def _check_copy_backing(doc: StatusDocument, job: BlockJob, monitor: Monitor) -> None:
    """A copy into an existing image with a backing chain of its own (shallow,
    reuse-external) runs in QEMU >= 6.0 on that image alone: libvirt 9.0 opens the chain
    only at the pivot (`blockdev-add`, then `blockdev-snapshot` onto the copy), which this
    flow does not do. Pivoting without it would give the guest a disk without the data
    below the copy, so it is refused."""
    disk = doc.disk(job.disk) if job.type is JobType.COPY and job.disk is not None else None
    backing = disk.mirror.backing if disk is not None and disk.mirror is not None else None
    if backing is None or (node := node_of(backing)) is None or node in monitor.node_names():
        return
    raise RequestError(
        f"cannot pivot '{job.name}': the copy's backing chain ({node}, {backing.path}) is "
        "not open in QEMU; libvirt attaches it when it pivots, blockjob does not")
