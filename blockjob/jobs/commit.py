"""Starting a block commit the crash-safe way (libvirt 6.2's flow, docs/format.md#bitmaps).

The status file is written before QEMU is touched, so that whatever happens after,
recovery finds the list of base bitmaps it has to re-enable. The caller owns the domain
(`StatusStore.owned`) for the whole flow: the document is read through that owner and every
save goes through it, so no other writer can change the file in between. Each `CrashPoint`
names a place where the daemon may die; README section `recovery` says what
recovery does at each one, and the tests crash at every one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from enum import StrEnum

from blockjob.errors import BlockJobError
from blockjob.jobs.requests import forget_new_job, save_new_job
from blockjob.model import BlockJob, CommitData, JobState, JobType, StorageSource
from blockjob.qemu.bitmaps import bitmaps_to_disable, disable_actions
from blockjob.qemu.monitor import Monitor, QMPCommandError
from blockjob.qemu.nodes import effective_node
from blockjob.qemu.reopen import kept_options, restore_base, set_read_only
from blockjob.statusxml.document import StatusDocument
from blockjob.statusxml.node import written_as_is
from blockjob.statusxml.sources import disk_mirror_node
from blockjob.store import DomainOwner


class CrashPoint(StrEnum):
    """Points of the start flow, in order; each is reached after the step it names."""

    JOB_PERSISTED = "job-persisted"        # file: state new + list; QEMU untouched
    BASE_WRITABLE = "base-writable"        # base reopened read-write; bitmaps still recording
    BITMAPS_DISABLED = "bitmaps-disabled"  # listed bitmaps disabled; base still read-write
    BASE_READ_ONLY = "base-read-only"      # base read-only again; no job in QEMU yet
    COMMIT_STARTED = "commit-started"      # QEMU runs the job; file still says new
    RUNNING_PERSISTED = "running-persisted"  # file says running: the flow is complete


CrashHook = Callable[[CrashPoint], None]
# libvirt's VIR_DOMAIN_BLOCK_COMMIT_ACTIVE, kept in `jobflags` as libvirt 9.0 does.
ACTIVE_FLAG = 0x4


class CommitError(BlockJobError):
    """The commit cannot be started (bad arguments, or QEMU refused it)."""


def no_crash(point: CrashPoint) -> None:
    del point


def _find(chain: StorageSource, node_name: str, what: str) -> tuple[int, StorageSource]:
    for position, image in enumerate(chain.images()):
        if image.matches(node_name):
            return position, image
    raise CommitError(f"{what} '{node_name}' is not in the disk's backing chain")


def _new_job(
    doc: StatusDocument, disk: str, top: str, base: str
) -> tuple[BlockJob, list[StorageSource], StorageSource]:
    """The job to record, the chain from `top` to the bottom, and the disk's top image."""
    found = doc.disk(disk)
    if found is None or found.chain is None:
        raise CommitError(f"the domain has no disk '{disk}' with a backing chain")
    images = found.chain.images()
    top_at, top_image = _find(found.chain, top, "top")
    base_at, base_image = _find(found.chain, base, "base")
    if base_at <= top_at:
        raise CommitError(f"base '{base}' must be below top '{top}' in the chain")
    if doc.job_for_disk(disk) is not None:
        raise CommitError(f"disk '{disk}' already has a block job")
    active = top_at == 0
    data = CommitData(
        base=doc.node_name_for(base_image),
        top=doc.node_name_for(top_image),
        topparent=None if active else doc.node_name_for(images[top_at - 1]),
    )
    job = BlockJob(
        name=f"commit-{disk}-{effective_node(top_image)}",
        type=JobType.ACTIVE_COMMIT if active else JobType.COMMIT,
        state=JobState.NEW,
        jobflags=ACTIVE_FLAG if active else 0,
        disk=disk,
        data=data,
    )
    return job, images[top_at:], found.chain


def start_commit(
    owner: DomainOwner,
    disk: str,
    top: str,
    base: str,
    *,
    doc: StatusDocument | None = None,
    monitor: Monitor | None = None,
    speed: int = 0,
    crash: CrashHook = no_crash,
    disable_base_bitmaps: bool = True,
) -> BlockJob:
    """Commit `top` into `base` (node names of disk `disk`'s chain) and return the job.

    `owner` is the domain as owned by the caller; every save goes through it. `doc` is the
    domain's document as loaded or saved through that owner (a caller that keeps one, like
    the tracker; it is changed in place); without it the file is loaded now. Base bitmaps
    the commit would dirty are disabled first and recorded in the job's
    `<disabledBaseBitmaps>`; `recover` re-enables and merges them when the job ends.
    With `disable_base_bitmaps=False` they keep recording (the commit's writes too), as
    libvirt >= 6.5 does, which ignores the list: a job it may take over loses nothing.
    Without `monitor`, the document's monitor socket is used.
    """
    if doc is None:
        doc = owner.load()
    elif not owner.holds(doc):
        raise CommitError("the document was not read through the domain's owner: "
                          "it may be older than the file")
    try:
        job, chain, device = _new_job(doc, disk, top, base)
    except ValueError as exc:  # an image without node names
        raise CommitError(str(exc)) from None
    base_image = next(i for i in chain if i.matches(base))
    found = doc.disk(disk)  # `_new_job` found it; its `<driver discard>` for base's reopens
    discard = found.discard if found is not None else None
    own = monitor is None
    qemu = monitor or Monitor.connect(doc.monitor_path or "")
    try:
        nodes = qemu.query_nodes()
        base_node = effective_node(base_image)
        names = bitmaps_to_disable([effective_node(i) for i in chain], base_node, nodes) \
            if disable_base_bitmaps else ()
        _check_recordable(names, base_node)
        job = replace(job, data=replace(job.commit or CommitData(), disabled_base_bitmaps=names))
        doc.add_job(job)
        save_new_job(owner, doc, job, mirror=False)
        crash(CrashPoint.JOB_PERSISTED)
        try:
            if names:
                kept = kept_options(nodes.get(base_node), discard)
                _disable(qemu, base_image, base_node, names, crash, kept=kept)
            _block_commit(qemu, job, device=device, top=chain[0], base=base_image, speed=speed)
        except QMPCommandError as exc:
            # QEMU refused: undo the bitmap change and forget the job, as if never asked.
            # Not on a lost or timed-out connection: QEMU may have started the job (a late
            # reply), and re-enabling the bitmaps under it would let the commit dirty
            # them. The job stays `new` on file; a restart adopts it or finds it unstarted.
            restore_base(qemu, base_image, names, discard=discard, read_only=True)
            forget_new_job(doc, job, mirror=False)
            owner.save(doc)
            raise CommitError(f"QEMU refused the commit: {exc}") from exc
        crash(CrashPoint.COMMIT_STARTED)
        job = replace(job, state=JobState.RUNNING)
        doc.replace_job(job)
        if job.type is JobType.ACTIVE_COMMIT:
            # The disk's `<mirror>` naming base comes with `running`, as libvirt 9.0 writes
            # it: libvirt drops a `new` job QEMU never had but keeps a `<mirror>` saved with
            # it, and then refuses every job on the disk. Recovery adds a missing one.
            doc.set_disk_chain(disk, mirror=disk_mirror_node(base_image, job.type, ready=False))
        owner.save(doc)
        crash(CrashPoint.RUNNING_PERSISTED)
        return job
    finally:
        if own:
            qemu.close()


def _check_recordable(names: tuple[str, ...], base_node: str) -> None:
    """The list of disabled bitmaps is what a restart re-enables: a name the file cannot
    hold (a control character XML has no place for) would come back as another name,
    and the bitmap would stay disabled forever. Refused before anything is done."""
    for name in names:
        if not written_as_is(name):
            raise CommitError(
                f"bitmap {name!r} of base {base_node} has a character the status file "
                f"cannot hold, so the commit could not re-enable it after a restart; "
                f"nothing was done")


def _disable(
    qemu: Monitor, base: StorageSource, base_node: str, names: tuple[str, ...], crash: CrashHook,
    *, kept: Mapping[str, object],
) -> None:
    # Not `transaction_on`: a crash point must be able to fire while base is writable.
    set_read_only(qemu, base, False, kept=kept)
    crash(CrashPoint.BASE_WRITABLE)
    qemu.transaction(disable_actions(base_node, names))
    crash(CrashPoint.BITMAPS_DISABLED)
    set_read_only(qemu, base, True, kept=kept)
    crash(CrashPoint.BASE_READ_ONLY)


def _block_commit(
    qemu: Monitor, job: BlockJob, *, device: StorageSource, top: StorageSource,
    base: StorageSource, speed: int,
) -> None:
    qemu.block_commit(
        job.name,
        device=effective_node(device),
        top_node=None if job.type is JobType.ACTIVE_COMMIT else effective_node(top),
        base_node=effective_node(base),
        speed=speed,
    )
