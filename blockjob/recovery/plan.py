"""What to do with each recorded job, given what QEMU says about it now.

The rules (README section `recovery` has them as a table) follow libvirt's
reconnect handling (SPEC.md section 10.2) and, for commits that disabled base
bitmaps, libvirt 6.2's finishing steps (section 8). Unlike libvirt, a job QEMU
never started or already forgot still gets its bitmaps re-enabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from blockjob.jobs.commit import commit_images
from blockjob.model import BlockJob, JobState, JobType, PullData, StorageSource
from blockjob.qemu.monitor import QemuJob
from blockjob.qemu.nodes import images_between, without
from blockjob.recovery.steps import (
    Cancel,
    DeleteNodes,
    Dismiss,
    Drop,
    Finalize,
    MergeBitmaps,
    MirrorReady,
    Record,
    Reenable,
    Step,
)
from blockjob.statusxml.document import StatusDocument

OUTCOMES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
# Jobs that only pivot (finish "completed") after libvirt asked QEMU to complete them.
MIRRORING = frozenset({JobType.COPY, JobType.ACTIVE_COMMIT})


class Decision(StrEnum):
    ADOPT = "adopt"                      # QEMU still works on it: track its state
    FINALIZE = "finalize"                # pending in QEMU: finalize, then decide again
    COMPLETED = "finish-completed"       # ended well: libvirt's finishing steps
    FAILED = "finish-failed"             # ended with an error or was cancelled
    UNSTARTED = "never-started"          # recorded as new, unknown to QEMU
    VANISHED = "vanished"                # QEMU forgot it and nothing says how it ended
    INVALID = "invalid"                  # the file's job data is broken


@dataclass(frozen=True)
class JobPlan:
    job: str
    decision: Decision
    qemu_status: str | None  # None: QEMU does not know the job
    steps: tuple[Step, ...]
    note: str | None = None


def _outcome(job: BlockJob, qjob: QemuJob | None) -> JobState | None:
    """How the job ended: from QEMU if it still reports it, else as recorded."""
    if qjob is None or qjob.status != "concluded":
        recorded = job.newstate if job.newstate in OUTCOMES else job.state
        return recorded if recorded in OUTCOMES else None
    if job.state is JobState.ABORTING:
        return JobState.CANCELLED
    if qjob.error is not None:
        return JobState.FAILED
    if job.type in MIRRORING and job.state is not JobState.PIVOTING:
        return JobState.CANCELLED  # a ready mirror that was cancelled reports success
    return JobState.COMPLETED


def _reenable(doc: StatusDocument, job: BlockJob, *, restore: bool = False) -> list[Step]:
    # Only base is needed: an invalid job whose top is lost still gets its bitmaps back.
    data = job.commit
    base = doc.resolve_node(job, data.base) if data is not None and data.base else None
    if base is None or not (job.disabled_base_bitmaps or restore):
        return []
    return [Reenable(base, job.disabled_base_bitmaps, restore_read_only=restore)]


def _record(job: BlockJob, outcome: JobState, qjob: QemuJob | None) -> list[Step]:
    errmsg = qjob.error if qjob is not None and outcome is JobState.FAILED else job.errmsg
    if job.newstate is outcome or job.state is outcome:
        return []
    return [Record(job.name, newstate=outcome, errmsg=errmsg)]


def _drop(
    doc: StatusDocument, job: BlockJob, chain: StorageSource | None = None
) -> Drop:
    """Forget `job`; a copy or active commit that is over takes its disk's `<mirror>` along."""
    disk = doc.disk(job.disk) if job.disk is not None else None
    drop_mirror = job.type in MIRRORING and disk is not None and disk.mirror is not None
    if chain is None and not drop_mirror:
        return Drop(job.name)
    return Drop(job.name, job.disk, chain, drop_mirror)


def _dismiss(job: BlockJob, qjob: QemuJob | None) -> list[Step]:
    return [Dismiss(job.name)] if qjob is not None else []


def _completed(doc: StatusDocument, job: BlockJob, qjob: QemuJob | None) -> list[Step]:
    steps = _record(job, JobState.COMPLETED, qjob)
    if job.type in (JobType.COMMIT, JobType.ACTIVE_COMMIT):
        found = commit_images(doc, job)
        if found is None:
            return [*steps, *_dismiss(job, qjob), _drop(doc, job)]
        return [
            *steps,
            MergeBitmaps(found.base, found.committed, found.chain_names(),
                         job.disabled_base_bitmaps),
            *_dismiss(job, qjob),
            DeleteNodes(found.committed),
            _drop(doc, job, found.remaining()),
        ]
    if job.type is JobType.PULL:
        return [*steps, *_dismiss(job, qjob), *_pulled(doc, job)]
    disk = doc.disk(job.disk) if job.disk is not None else None
    if job.type is JobType.COPY and disk is not None and disk.mirror is not None:
        # A copy that completed has pivoted: the disk now runs on the mirror's images.
        return [*steps, *_dismiss(job, qjob), _drop(doc, job, disk.mirror)]
    return [*steps, *_dismiss(job, qjob), _drop(doc, job)]


def _pulled(doc: StatusDocument, job: BlockJob) -> list[Step]:
    """A finished pull copied everything above `base` into the top image."""
    disk = doc.disk(job.disk) if job.disk is not None else None
    if disk is None or disk.chain is None or disk.chain.backing is None:
        return [Drop(job.name)]
    base_name = job.data.base if isinstance(job.data, PullData) else None
    base = doc.resolve_node(job, base_name) if base_name else None
    removed = images_between(disk.chain, disk.chain.backing, base)
    return [DeleteNodes(tuple(removed)), Drop(job.name, job.disk, without(disk.chain, removed))]


def _ended_badly(
    doc: StatusDocument, job: BlockJob, qjob: QemuJob | None, outcome: JobState
) -> list[Step]:
    return [
        *_record(job, outcome, qjob), *_reenable(doc, job), *_dismiss(job, qjob), _drop(doc, job)
    ]


def _adopt(doc: StatusDocument, job: BlockJob, qjob: QemuJob) -> list[Step]:
    if qjob.status == "ready" and job.state in (JobState.NEW, JobState.RUNNING):
        # libvirt saves the mapped status as newstate before it acts on it.
        data = job.commit
        base = doc.resolve_node(job, data.base) if data is not None and data.base else None
        record = [] if job.newstate is JobState.READY else [
            Record(job.name, newstate=JobState.READY)]
        return [*record, MirrorReady(job.name, base if job.type in MIRRORING else None)]
    if job.state is JobState.NEW:
        return [Record(job.name, state=JobState.RUNNING)]
    return []


def plan_job(doc: StatusDocument, job: BlockJob, qjob: QemuJob | None) -> JobPlan:
    status = qjob.status if qjob is not None else None

    def plan(decision: Decision, steps: list[Step], note: str | None = None) -> JobPlan:
        return JobPlan(job.name, decision, status, tuple(steps), note)

    if job.invalid or job.type is JobType.BROKEN:
        cancel: list[Step] = [Cancel(job.name)] if status not in (None, "concluded") else []
        steps = [*cancel, *_dismiss(job, qjob), *_reenable(doc, job), _drop(doc, job)]
        return plan(Decision.INVALID, steps, "; ".join(job.problems) or "invalid job data")
    if status == "pending":
        return plan(Decision.FINALIZE, [Finalize(job.name)])
    outcome = _outcome(job, qjob)
    if status not in (None, "concluded"):
        return plan(Decision.ADOPT, _adopt(doc, job, qjob) if qjob is not None else [])
    if outcome is JobState.COMPLETED:
        return plan(Decision.COMPLETED, _completed(doc, job, qjob))
    if outcome is not None:
        return plan(Decision.FAILED, _ended_badly(doc, job, qjob, outcome))
    if job.state is JobState.NEW:
        return plan(Decision.UNSTARTED, [*_reenable(doc, job, restore=True), _drop(doc, job)])
    return plan(
        Decision.VANISHED, [*_reenable(doc, job), _drop(doc, job)],
        f"QEMU does not know job '{job.name}' (state {job.state}); how it ended is unknown",
    )
