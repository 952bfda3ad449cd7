"""What to do with each recorded job, given what QEMU says about it now.

The rules (README section `recovery` has them as a table) follow libvirt's
reconnect handling (docs/format.md#reconnect) and, for commits that disabled base
bitmaps, libvirt 6.2's finishing steps (docs/format.md#bitmaps). Unlike libvirt, a job
QEMU never started or already forgot still gets its bitmaps re-enabled, a QEMU job of
another type than recorded is left alone, and a job that ended without saying how is
finished the way QEMU's graph shows it ended: a copy or active commit by the node its device
runs on (pivoted or not), a commit or pull by the backing edge above what it removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from blockjob.model import (
    BackupData,
    BlockJob,
    CopyData,
    CreateData,
    JobState,
    JobType,
    PullData,
    StorageSource,
)
from blockjob.qemu.monitor import CONCLUDED, QemuJob
from blockjob.qemu.nodes import effective_node, images_between, node_of, same_image, without
from blockjob.recovery.steps import (
    Cancel,
    Complete,
    DeleteFiles,
    DeleteNodes,
    Dismiss,
    Drop,
    Finalize,
    MergeBitmaps,
    Record,
    Reenable,
    RemoveBitmap,
    Step,
    StopExports,
)
from blockjob.statusxml.disks import Disk
from blockjob.statusxml.document import StatusDocument

OUTCOMES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
# Jobs that only pivot (finish "completed") after libvirt asked QEMU to complete them.
MIRRORING = frozenset({JobType.COPY, JobType.ACTIVE_COMMIT})
# QEMU statuses in which a job still takes a `job-cancel` (QEMU's verb table; `pending`
# is finalized first). `waiting`: done, waiting for the jobs of its transaction.
CANCELLABLE = frozenset({"created", "running", "paused", "ready", "standby", "waiting"})
# A recorded abort is asked again in `pending` too (QEMU cancels a pending job, which then
# concludes cancelled with the chain kept): finalizing it completed the job asked to stop.
ABORTABLE = CANCELLABLE | {"pending"}
# QEMU statuses of a paused job (`standby`: paused once ready), by `job-pause` or, with
# `on-error` stop, by an I/O error. QEMU takes no `job-complete` from them.
PAUSED = frozenset({"paused", "standby"})
# The `type` of QEMU's job (`query-jobs`) for each recorded type.
QEMU_TYPES = {
    JobType.PULL: "stream", JobType.COMMIT: "commit", JobType.ACTIVE_COMMIT: "commit",
    JobType.COPY: "mirror", JobType.BACKUP: "backup", JobType.CREATE: "create",
}
# `jobflags` of a copy made with VIR_DOMAIN_BLOCK_COPY_SHALLOW (virsh blockcopy --shallow).
COPY_SHALLOW = 0x1
# QEMU's `error` of a job cancelled before it was ready (strerror(ECANCELED), glibc).
CANCELLED_ERROR = "Operation canceled"


class Decision(StrEnum):
    ADOPT = "adopt"                      # QEMU still works on it: track its state
    FINALIZE = "finalize"                # pending in QEMU: finalize, then decide again
    COMPLETED = "finish-completed"       # ended well: libvirt's finishing steps
    FAILED = "finish-failed"             # ended with an error or was cancelled
    PIVOTED = "pivot-window-completed"   # QEMU pivoted and forgot the job: finish it
    NOT_PIVOTED = "pivot-window-cancelled"  # QEMU forgot the job, device never moved
    UNSTARTED = "never-started"          # recorded as new, unknown to QEMU
    VANISHED = "vanished"                # QEMU forgot it and nothing says how it ended
    UNRESOLVED = "unresolved-bitmaps"    # kept only because listed bitmaps are unusable
    INVALID = "invalid"                  # the file's job data is broken
    FOREIGN = "foreign-job"              # QEMU's job of that id has another type
    BACKUP_FAILED = "cancel-with-backup"  # a sibling job of its backup failed: cancel
    ASKED_AGAIN = "asked-again"          # a recorded abort or pivot QEMU never acted on
    UNDECIDABLE = "undecidable"          # pivot window without a device to ask
    HELD = "pivot-held"                  # a recorded pivot of a job QEMU holds paused


# Decisions that change nothing and need an operator.
ATTENTION = frozenset({Decision.FOREIGN, Decision.UNDECIDABLE, Decision.HELD})


@dataclass(frozen=True)
class JobPlan:
    job: str
    decision: Decision
    qemu_status: str | None  # None: QEMU does not know the job
    steps: tuple[Step, ...]
    note: str | None = None
    problem: str | None = None  # what needs an operator although the steps run


class _Planner(Protocol):
    """`plan_job`'s `plan`: the job's plan, from a decision and its steps."""

    def __call__(self, decision: Decision, steps: list[Step], note: str | None = None,
                 problem: str | None = None) -> JobPlan: ...


def job_kind(job: BlockJob) -> JobType:
    """The job's type; for one libvirt re-typed `broken`, the type it had."""
    return job.brokentype or job.type


def _recorded(job: BlockJob) -> JobState | None:
    """The outcome the file records (a daemon saves it before the finishing steps)."""
    recorded = job.newstate if job.newstate in OUTCOMES else job.state
    return recorded if recorded in OUTCOMES else None


def _outcome(
    doc: StatusDocument, job: BlockJob, qjob: QemuJob | None, roots: Sequence[str] | None
) -> JobState | None:
    """How the job ended: from QEMU if it still reports it, else as recorded."""
    if qjob is None or qjob.status != CONCLUDED:
        return _recorded(job)
    if qjob.error == CANCELLED_ERROR or (qjob.error is not None and job.state is JobState.ABORTING):
        return JobState.CANCELLED
    if qjob.error is not None:
        return JobState.FAILED
    if job.type not in MIRRORING:
        # Cancelled, such a job concludes with an error: a cancel that came too late to
        # stop it (libvirt would still call the job cancelled) found it done.
        return JobState.COMPLETED
    # A ready mirror concludes without error whether it pivoted or was cancelled: the
    # device tells which; without one, what the daemon asked for.
    pivoted = _pivot_window(doc, job, roots)
    if pivoted is not None:
        return JobState.COMPLETED if pivoted else JobState.CANCELLED
    return JobState.COMPLETED if job.state is JobState.PIVOTING else JobState.CANCELLED


def _disk(doc: StatusDocument, job: BlockJob) -> Disk | None:
    """The job's disk. Read from the file on first use (`StatusDocument.disk`), so the
    rules below ask for it only once nothing cheaper has decided."""
    return doc.disk(job.disk) if job.disk is not None else None


def _disk_chain(doc: StatusDocument, job: BlockJob) -> StorageSource | None:
    disk = _disk(doc, job)
    return disk.chain if disk is not None else None


def _discard(doc: StatusDocument, job: BlockJob) -> str | None:
    """The `<driver discard>` of the job's disk, which QEMU does not report: reopens of its
    images repeat it, as libvirt's do."""
    disk = _disk(doc, job)
    return disk.discard if disk is not None else None


def _base(doc: StatusDocument, job: BlockJob) -> StorageSource | None:
    data = job.commit
    return doc.resolve_node(job, data.base) if data is not None and data.base else None


def is_unresolved_record(doc: StatusDocument, job: BlockJob) -> bool:
    """A commit kept only to remember unusable bitmaps: its top is its base."""
    data = job.commit
    return (data is not None and data.top is not None and data.top == data.base
            and bool(job.disabled_base_bitmaps) and _base(doc, job) is not None)


def _commit_images(
    doc: StatusDocument, job: BlockJob
) -> tuple[StorageSource, list[StorageSource], StorageSource] | None:
    """(base, committed images top first, the disk's chain) of a commit, if resolvable."""
    data = job.commit
    chain = _disk_chain(doc, job)
    if data is None or chain is None or data.base is None or data.top is None:
        return None
    base = doc.resolve_node(job, data.base)
    top = doc.resolve_node(job, data.top)
    if base is None or top is None:
        return None
    committed = images_between(chain, top, base)
    return (base, committed, chain) if committed else None


def _is_top(chain: StorageSource | None, image: StorageSource) -> bool:
    return chain is not None and same_image(chain, image)


def _reenable(doc: StatusDocument, job: BlockJob, *, always: bool = False) -> list[Step]:
    if not (job.disabled_base_bitmaps or always):
        return []  # decided before base is looked up: that reads the disk
    # Only base is needed: an invalid job whose top is lost still gets its bitmaps back.
    base = _base(doc, job)
    if base is None:
        return []
    active = _is_top(_disk_chain(doc, job), base)
    return [Reenable(base, job.disabled_base_bitmaps, base_is_active=active,
                     discard=_discard(doc, job))]


def _record(job: BlockJob, outcome: JobState, qjob: QemuJob | None) -> list[Step]:
    failed = qjob is not None and outcome is JobState.FAILED
    errmsg = qjob.error if failed and qjob is not None else job.errmsg
    if job.newstate is outcome or job.state is outcome:
        return []
    return [Record(job.name, newstate=outcome, errmsg=errmsg)]


def _drop(
    doc: StatusDocument, job: BlockJob, chain: StorageSource | None = None
) -> Drop:
    """Forget `job`; a copy or active commit that is over (or was, before libvirt re-typed it
    `broken`) takes its disk's `<mirror>` along."""
    drop_mirror = job_kind(job) in MIRRORING and job.disk is not None \
        and doc.disk_has_mirror(job.disk)
    backup = job.type is JobType.BACKUP
    if chain is None and not drop_mirror:
        return Drop(job.name, backup=backup)
    return Drop(job.name, job.disk, chain, drop_mirror, backup=backup)


def _backup_end(doc: StatusDocument, job: BlockJob) -> list[Step]:
    """What libvirt 9.0 takes away when a backup's job ended: the NBD server exporting a
    pull backup's scratch image, that image or a push backup's target, which QEMU would
    keep open, and the bitmap an incremental push backup added to the disk's top, whose
    name the next one needs."""
    data = job.data
    if not isinstance(data, BackupData):
        return []
    steps: list[Step] = []
    if data.store is not None and node_of(data.store) is not None:
        steps += [StopExports(data.store), DeleteNodes((data.store,))]
    chain = _disk_chain(doc, job) if data.bitmap else None
    if data.bitmap and chain is not None and node_of(chain) is not None:
        steps.append(RemoveBitmap(chain, data.bitmap))
    return steps


def _dismiss(job: BlockJob, qjob: QemuJob | None) -> list[Step]:
    return [Dismiss(job.name)] if qjob is not None else []


def _left(old: StorageSource, new: StorageSource | None) -> tuple[StorageSource, ...]:
    """Images of `old` that are not in `new`: they left the disk and go from QEMU's graph."""
    kept = new.images() if new is not None else []
    return tuple(i for i in old.images() if not any(same_image(i, k) for k in kept))


def merge_step(doc: StatusDocument, job: BlockJob) -> MergeBitmaps | None:
    """The bitmap merge that finishes commit `job`, or None if its images are unknown.
    A pivot runs it before `job-complete` too (libvirt 6.2), so it is a step of its own."""
    found = _commit_images(doc, job)
    if found is None:
        return None
    base, committed, chain = found
    below_top = chain.images()[chain.images().index(committed[0]):]
    return MergeBitmaps(base, tuple(committed), tuple(map(effective_node, below_top)),
                        job.disabled_base_bitmaps,
                        base_is_active=_is_top(without(chain, committed), base),
                        discard=_discard(doc, job))


def _completed(doc: StatusDocument, job: BlockJob, qjob: QemuJob | None) -> list[Step]:
    steps = _record(job, JobState.COMPLETED, qjob)
    if job.type in (JobType.COMMIT, JobType.ACTIVE_COMMIT):
        chain = _disk_chain(doc, job)
        merge = merge_step(doc, job)
        if merge is None or chain is None:
            return [*steps, *_reenable(doc, job), *_dismiss(job, qjob), _drop(doc, job)]
        data = job.commit
        files = [DeleteFiles(merge.committed)] if data and data.delete_committed_images else []
        return [
            *steps,
            merge,
            *_dismiss(job, qjob),
            DeleteNodes(merge.committed),
            *files,
            _drop(doc, job, without(chain, merge.committed)),
        ]
    if job.type is JobType.PULL:
        return [*steps, *_dismiss(job, qjob), *_pulled(doc, job)]
    disk = _disk(doc, job) if job.type is JobType.COPY else None
    if disk is not None and disk.mirror is not None:
        return [*steps, *_pivoted_copy(doc, job, qjob, disk.mirror, disk.chain)]
    return [*steps, *_dismiss(job, qjob), *_backup_end(doc, job), *_create_end(job),
            _drop(doc, job)]


def _pivoted_copy(
    doc: StatusDocument, job: BlockJob, qjob: QemuJob | None, mirror: StorageSource,
    chain: StorageSource | None,
) -> list[Step]:
    """A copy that completed has pivoted: the disk now runs on the mirror's images, the
    old chain's bitmaps carried over into them, its images gone from QEMU."""
    pivoted = _copy_chain(job, mirror, chain)
    left = _left(chain, pivoted) if chain is not None else ()
    deleted = [DeleteNodes(left)] if left else []
    carried = _copy_bitmaps(job, mirror, chain, _discard(doc, job))
    return [*carried, *_dismiss(job, qjob), *deleted, _drop(doc, job, pivoted)]


def _create_end(job: BlockJob) -> list[Step]:
    """libvirt 9.0 ends a create job whose caller is gone (the daemon died while its
    API call waited) alike whatever the outcome: the storage node it attached for a
    format's creation is `blockdev-del`'d, else QEMU keeps the new file open for no one.
    The format node was never attached, and a job creating the storage attached none."""
    data = job.data
    if not isinstance(data, CreateData) or data.storage_only or data.src is None \
            or data.src.storage_node is None:
        return []
    return [DeleteNodes((replace(data.src, format_node=None),))]


def _copy_bitmaps(
    job: BlockJob, mirror: StorageSource, chain: StorageSource | None, discard: str | None
) -> list[Step]:
    """libvirt 9.0 carries the checkpoints over to a pivoted copy: the bitmaps of the
    disk's chain (a shallow copy's: of its top only) are merged into the copy's top,
    which is the disk's active layer from then on. A raw copy holds no bitmaps."""
    images = chain.images() if chain is not None else []
    if mirror.format == "raw":
        return []
    copied = images[:1] if (job.jobflags or 0) & COPY_SHALLOW else images
    return _carry_bitmaps(mirror, copied, images, discard)


def _copy_chain(
    job: BlockJob, mirror: StorageSource, chain: StorageSource | None
) -> StorageSource:
    """The chain a copy pivots to. A shallow copy into an image libvirt created
    (`shallownew`) records its mirror without backing: the copy inherits the disk's chain
    below its top, as libvirt 9.0 finishes it (only the old top leaves)."""
    data = job.data
    inherits = isinstance(data, CopyData) and data.shallownew and mirror.backing is None
    if not inherits or chain is None or chain.backing is None:
        return mirror
    return replace(mirror, backing=chain.backing, terminated=False)


def _pulled(doc: StatusDocument, job: BlockJob) -> list[Step]:
    """A finished pull copied everything above `base` into the top image."""
    chain = _disk_chain(doc, job)
    if chain is None or chain.backing is None:
        return [Drop(job.name)]
    base_name = job.data.base if isinstance(job.data, PullData) else None
    base = doc.resolve_node(job, base_name) if base_name else None
    removed = images_between(chain, chain.backing, base)
    return [*_pull_bitmaps(chain, removed, _discard(doc, job)), DeleteNodes(tuple(removed)),
            Drop(job.name, job.disk, without(chain, removed))]


def _pull_bitmaps(
    chain: StorageSource, removed: Sequence[StorageSource], discard: str | None
) -> list[Step]:
    """libvirt 9.0 merges the pulled images' bitmaps into the disk's top before they go:
    a checkpoint's changes recorded in them would otherwise be missing from the next
    incremental backup. Runs after `job-dismiss` (README `QEMU care`)."""
    return _carry_bitmaps(chain, removed, chain.images(), discard)


def _carry_bitmaps(
    into: StorageSource, leaving: Sequence[StorageSource], chain: Sequence[StorageSource],
    discard: str | None,
) -> list[Step]:
    """Merge the bitmaps of `leaving` (images of `chain`) into `into`, the disk's active
    layer once they left (`discard`: the disk's); nothing when an image has no node name
    to merge by."""
    if not leaving or None in map(node_of, [into, *chain]):
        return []
    return [MergeBitmaps(into, tuple(leaving), tuple(map(effective_node, chain)), (),
                         base_is_active=True, discard=discard)]


def _ended_badly(
    doc: StatusDocument, job: BlockJob, qjob: QemuJob | None, outcome: JobState
) -> list[Step]:
    steps = [*_record(job, outcome, qjob), *_reenable(doc, job), *_dismiss(job, qjob)]
    return [*steps, *_unpivoted_copy(doc, job), *_backup_end(doc, job), *_create_end(job),
            _drop(doc, job)]


def _unpivoted_copy(doc: StatusDocument, job: BlockJob) -> list[Step]:
    """A copy that ended without a pivot: its target images never became the disk's, so
    they leave QEMU's graph, as libvirt 9.0 detaches a cancelled copy's mirror chain.
    An invalid copy (or one libvirt re-typed `broken`) as well: its `<mirror>` goes with
    it, and nodes left behind would be open in QEMU with nothing naming them."""
    disk = _disk(doc, job) if job_kind(job) is JobType.COPY else None
    if disk is None or disk.mirror is None:
        return []
    left = _left(disk.mirror, disk.chain)
    return [DeleteNodes(left)] if left else []


def _adopt(doc: StatusDocument, job: BlockJob, qjob: QemuJob) -> list[Step]:
    state, newstate = job.state, job.newstate
    if qjob.status == "ready" and state in (JobState.NEW, JobState.RUNNING):
        # libvirt 9.0 writes both, and marks the disk's mirror ready.
        state = newstate = JobState.READY
    elif state is JobState.NEW:
        state = JobState.RUNNING
    disk = _disk(doc, job) if state is JobState.READY and job.type in MIRRORING else None
    ready = disk is not None and disk.mirror is not None and not disk.mirror_ready
    mirror = _missing_mirror(doc, job)
    if state is job.state and newstate is job.newstate and not ready and mirror is None:
        return []
    return [Record(job.name, state=state, newstate=newstate if newstate is not job.newstate
                   else None, mirror_ready=job.disk if ready else None, mirror=mirror)]


def _missing_mirror(doc: StatusDocument, job: BlockJob) -> StorageSource | None:
    """The base of an active commit QEMU runs whose disk has no `<mirror>` (its start was
    killed before the `running` save, which writes it, as libvirt 9.0 does): without one
    libvirt cannot pivot the job. None when the disk has its mirror, or for other jobs."""
    if job.type is not JobType.ACTIVE_COMMIT:
        return None
    disk = _disk(doc, job)
    return _base(doc, job) if disk is not None and disk.mirror is None else None


def _pending(job: BlockJob) -> list[Step]:
    """libvirt 9.0 records `pending` only over `new` or `running` (a pivoting job keeps
    what was asked; an aborting one is cancelled instead: `ABORTABLE`). Saved before
    `job-finalize`, as state and newstate the way libvirt 9.0 saves `ready` (README
    `Rules`)."""
    if job.state not in (JobState.NEW, JobState.RUNNING):
        return []
    return [Record(job.name, state=JobState.PENDING, newstate=JobState.PENDING)]


def _pivot_window(
    doc: StatusDocument, job: BlockJob, roots: Sequence[str] | None
) -> bool | None:
    """Whether QEMU pivoted a copy or active commit that ended without saying how: the
    device runs on the job's target (base, or the copy's top) instead of the disk's
    recorded top. None when no device of this disk tells."""
    if roots is None:
        return None
    disk = _disk(doc, job)
    if disk is None or disk.chain is None:
        return None
    target = disk.mirror if job_kind(job) is JobType.COPY else _base(doc, job)
    # An image the file names no node of cannot be recognised among the devices' roots.
    if target is not None and node_of(target) in roots:
        return True
    if node_of(disk.chain) in roots:
        return False
    return None


def _commit_landed(
    doc: StatusDocument, job: BlockJob, backing: Mapping[str, str] | None
) -> bool | None:
    """Whether QEMU's graph shows commit `job` done: the image above its top backs onto
    its base (True) or still onto its top (False). None when the graph or file does not
    tell, or top is the disk's top (an active commit: the device tells)."""
    found = _commit_images(doc, job) if backing is not None else None
    if backing is None or found is None:
        return None
    base, committed, chain = found
    images = chain.images()
    at = next(i for i, image in enumerate(images) if same_image(image, committed[0]))
    return _edge_says(backing, images[at - 1] if at else None, base, committed[0])


def _pull_landed(
    doc: StatusDocument, job: BlockJob, backing: Mapping[str, str] | None
) -> bool | None:
    """Whether QEMU's graph shows pull `job` done: the disk's top backs onto its base
    (True) or still onto the image below it (False); a pull of the whole chain does not
    tell (a node without a backing edge may be gone too)."""
    chain = _disk_chain(doc, job) if backing is not None else None
    base_name = job.data.base if isinstance(job.data, PullData) else None
    if backing is None or chain is None or chain.backing is None or not base_name:
        return None
    base = doc.resolve_node(job, base_name)
    return _edge_says(backing, chain, base, chain.backing) if base is not None else None


def _edge_says(
    backing: Mapping[str, str], above: StorageSource | None, new: StorageSource,
    old: StorageSource,
) -> bool | None:
    """True when `above` backs onto `new` in QEMU, False when still onto `old`."""
    names = [node_of(image) if image is not None else None for image in (above, new, old)]
    if None in names:
        return None
    edge = backing.get(str(names[0]))
    return True if edge == names[1] else False if edge == names[2] else None


def _landed(
    doc: StatusDocument, job: BlockJob, roots: Sequence[str] | None,
    backing: Mapping[str, str] | None,
) -> bool | None:
    """Whether the job's change reached QEMU's graph (None: the graph does not tell)."""
    if job.type in MIRRORING:
        return _pivot_window(doc, job, roots)
    if job.type is JobType.COMMIT:
        return _commit_landed(doc, job, backing)
    if job.type is JobType.PULL:
        return _pull_landed(doc, job, backing)
    return None


def graph_questions(job: BlockJob, qjob: QemuJob | None) -> tuple[bool, bool]:
    """Whether planning `job` reads the devices' roots (`query-block`), and the graph's
    backing edges: only for a job that ended without saying how, that is one QEMU forgot
    before an outcome was recorded (a mirror, a commit, a pull), or a mirror that
    concluded without error. A restart plans every job: the rest ask QEMU nothing more.
    (The edges are never asked while QEMU still reports a job: a concluded stream job
    must be dismissed first, README `QEMU care`.)"""
    if job.invalid or job.type is JobType.BROKEN:
        # An invalid copy's mirror images leave QEMU, unless its device runs on them.
        return job_kind(job) is JobType.COPY, False
    if qjob is None:
        open_end = _recorded(job) is None and job.state is not JobState.NEW
    else:
        open_end = qjob.status == CONCLUDED and qjob.error is None
    # A concluded stream job must be dismissed before the graph is asked (QEMU 7.2 crashes,
    # README `QEMU care`): a pull asks only once QEMU forgot it.
    return (open_end and job.type in MIRRORING,
            open_end and qjob is None and job.type in (JobType.COMMIT, JobType.PULL))


def failed_sibling(
    doc: StatusDocument, job: BlockJob, qemu_jobs: Mapping[str, QemuJob]
) -> str | None:
    """Another job of the domain's backup (a domain runs one backup at a time) that
    ended failed or cancelled, by QEMU's word or as recorded: its name, else None."""
    for other in doc.jobs:
        if other.type is JobType.BACKUP and other.name != job.name and not other.invalid \
                and _outcome(doc, other, qemu_jobs.get(other.name), None) in (
                    JobState.FAILED, JobState.CANCELLED):
            return other.name
    return None


def _baseless(job: BlockJob) -> str | None:
    """The loss an invalid job's drop makes when its base is not found in the file: its
    listed bitmaps stay disabled, and no record of them can be kept (libvirt would not
    load it). Reported, so the drop is never silent."""
    if not job.disabled_base_bitmaps:
        return None
    return (f"bitmaps {', '.join(job.disabled_base_bitmaps)} listed in "
            f"<disabledBaseBitmaps> cannot be re-enabled: the job's base is not found in "
            f"the file; they stay disabled in QEMU until an operator enables them")


def _cancel_with_backup(job: BlockJob) -> list[Step]:
    """libvirt 9.0 cancels the backup's jobs still running once one of them failed or was
    cancelled, recording them `aborting`; the backup ends with the last of them."""
    record = [] if job.state is JobState.ABORTING else [
        Record(job.name, state=JobState.ABORTING)]
    return [*record, Cancel(job.name)]


def _asked_again(doc: StatusDocument, job: BlockJob, status: str | None) -> list[Step]:
    """The abort or pivot the file records (saved before its QMP command) that QEMU has not
    acted on: the daemon died in between. libvirt 9.0 never asks it again and refuses both
    on such a job ("still being ended"), for good. So recovery asks: `job-cancel`; for an
    active commit, the pivot's bitmap merge and `job-complete` (a copy's pivot may need its
    backing chain opened first: the tracker's `pivot` asks that one)."""
    if job.state is JobState.ABORTING and status in ABORTABLE:
        return [Cancel(job.name)]
    merge = merge_step(doc, job) if job.state is JobState.PIVOTING and status == "ready" \
        and job.type is JobType.ACTIVE_COMMIT else None
    return [merge, Complete(job.name)] if merge is not None else []


def paused_by_error(name: str, status: str, io_status: str) -> str:
    """The problem of an adopted job an I/O error paused (QEMU's `on-error` stop): it
    makes no progress until an operator resumes or aborts it, while libvirt 9.0 says
    it runs."""
    return (f"job '{name}' is {status} by an I/O error (io-status {io_status}): it makes "
            f"no progress until it is resumed (job-resume) or aborted")


def plan_job(
    doc: StatusDocument, job: BlockJob, qjob: QemuJob | None,
    roots: Sequence[str] | None = None, backing: Mapping[str, str] | None = None, *,
    qemu_jobs: Mapping[str, QemuJob] | None = None,
) -> JobPlan:
    """`roots`: the node each block device runs on (`query-block`), `backing`: each node's
    backing node; None if not asked (`graph_questions` says when they count).
    `qemu_jobs`: all of QEMU's jobs, which a running backup job's siblings are judged by
    (None: only as recorded)."""
    status = qjob.status if qjob is not None else None

    def plan(decision: Decision, steps: list[Step], note: str | None = None,
             problem: str | None = None) -> JobPlan:
        return JobPlan(job.name, decision, status, tuple(steps), note, problem)

    expected = QEMU_TYPES.get(job_kind(job))
    if qjob is not None and expected is not None and qjob.type != expected:
        return plan(Decision.FOREIGN, [], f"QEMU's job '{job.name}' is a {qjob.type} job, "
                    f"the file records a {job_kind(job)} ({expected}) job")
    if job.invalid or job.type is JobType.BROKEN:
        return _plan_invalid(doc, job, qjob, roots, plan)
    if qjob is None and is_unresolved_record(doc, job):
        return plan(Decision.UNRESOLVED, [*_reenable(doc, job), Drop(job.name)])
    if status == "pending" and job.state is not JobState.ABORTING:
        return plan(Decision.FINALIZE, [*_pending(job), Finalize(job.name)])
    # A job QEMU already aborts needs no second job-cancel (QEMU would refuse it).
    sibling = failed_sibling(doc, job, qemu_jobs or {}) \
        if job.type is JobType.BACKUP and status not in (None, CONCLUDED, "aborting") else None
    if sibling is not None:
        return plan(Decision.BACKUP_FAILED, _cancel_with_backup(job),
                    f"job '{sibling}' of the same backup failed or was cancelled")
    if job.state is JobState.PIVOTING and status in PAUSED:
        return plan(Decision.HELD, [], f"the file records a pivot of job '{job.name}'; "
                    f"QEMU holds the job {status} (paused), and takes no job-complete "
                    f"until it is resumed (job-resume); libvirt 9.0 refuses to pivot or "
                    f"abort it until QEMU says ready; nothing changed")
    again = _asked_again(doc, job, status)
    if again:
        return plan(Decision.ASKED_AGAIN, again, f"the file records {job.state}; QEMU still "
                    f"says {status}: the request is asked again")
    if status not in (None, CONCLUDED):
        return plan(Decision.ADOPT, _adopt(doc, job, qjob) if qjob is not None else [])
    outcome = _outcome(doc, job, qjob, roots)
    if outcome is JobState.COMPLETED:
        return plan(Decision.COMPLETED, _completed(doc, job, qjob))
    if outcome is not None:
        return plan(Decision.FAILED, _ended_badly(doc, job, qjob, outcome))
    if job.state is JobState.NEW:
        return plan(Decision.UNSTARTED, [*_reenable(doc, job, always=True), _drop(doc, job)])
    return _plan_forgotten(doc, job, _landed(doc, job, roots, backing), plan)


def _plan_invalid(
    doc: StatusDocument, job: BlockJob, qjob: QemuJob | None, roots: Sequence[str] | None,
    plan: _Planner,
) -> JobPlan:
    """A job whose data libvirt would call invalid: cancelled if QEMU still runs it, and
    dropped with what it holds in QEMU (a backup's, create's or copy's images), as any
    end; a copy QEMU pivoted is finished as pivoted instead."""
    note = "; ".join(job.problems) or "invalid job data"
    disk = _disk(doc, job) if job_kind(job) is JobType.COPY else None
    if disk is not None and disk.mirror is not None and _pivot_window(doc, job, roots):
        # The device runs on the copy: the file must say so, or libvirt restarts the
        # domain on images QEMU no longer runs.
        return plan(Decision.INVALID, _pivoted_copy(doc, job, qjob, disk.mirror, disk.chain),
                    f"{note}; QEMU pivoted to the copy: finished as a completed copy")
    status = qjob.status if qjob is not None else None
    cancel: list[Step] = [Cancel(job.name)] if status not in (None, CONCLUDED) else []
    restore = _reenable(doc, job)
    steps = [*cancel, *_dismiss(job, qjob), *restore, *_unpivoted_copy(doc, job),
             *_backup_end(doc, job), *_create_end(job), _drop(doc, job)]
    return plan(Decision.INVALID, steps, note, None if restore else _baseless(job))


def _plan_forgotten(
    doc: StatusDocument, job: BlockJob, landed: bool | None, plan: _Planner
) -> JobPlan:
    """A job QEMU no longer knows, recorded as neither new nor ended: finished the way
    QEMU's graph shows it ended (`landed`), else its bitmaps are restored and it is dropped."""
    if job.type in MIRRORING and landed is not None:
        if landed:
            return plan(Decision.PIVOTED, _completed(doc, job, None),
                        "QEMU pivoted and forgot the job; finished as completed")
        return plan(Decision.NOT_PIVOTED, _ended_badly(doc, job, None, JobState.CANCELLED),
                    "QEMU forgot the job and the device never pivoted; finished as cancelled")
    if job.type in MIRRORING and job.state in (JobState.READY, JobState.PIVOTING):
        return plan(Decision.UNDECIDABLE, [], f"QEMU no longer knows {job.type} job "
                    f"'{job.name}' ({job.state}) and no device of disk {job.disk} shows "
                    f"whether it pivoted; nothing changed")
    if landed:
        return plan(Decision.COMPLETED, _completed(doc, job, None),
                    f"QEMU forgot the job; its backing chain shows the {job.type} done; "
                    f"finished as completed")
    how = ("its backing chain shows it never completed" if landed is False
           else "how it ended is unknown")
    return plan(Decision.VANISHED, [*_reenable(doc, job), _drop(doc, job)],
                f"QEMU does not know job '{job.name}' (state {job.state}); {how}")
