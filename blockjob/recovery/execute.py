"""Carry out a job's plan against QEMU and the status file, one step at a time.

The file is saved (through the domain's owner) after every step that changed it, and
every QEMU step first looks at what QEMU has now, so a recovery killed anywhere does
only what is missing when it runs again.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from blockjob.model import BlockJob, CommitData, JobState, JobType
from blockjob.qemu.bitmaps import Nodes, added, finish_actions, remove_actions, unusable
from blockjob.qemu.monitor import CONCLUDED, Monitor, QMPCommandError
from blockjob.qemu.nodes import effective_node
from blockjob.qemu.reopen import restore_base, transaction_on
from blockjob.recovery.backupfiles import deleted_when_ended
from blockjob.recovery.steps import (
    Cancel,
    Complete,
    DeleteFiles,
    DeleteNodes,
    Dismiss,
    Drop,
    DropMirror,
    Finalize,
    MergeBitmaps,
    Record,
    Reenable,
    RemoveBitmap,
    Step,
    StopExports,
)
from blockjob.statusxml.document import StatusDocument
from blockjob.statusxml.sources import disk_mirror_node
from blockjob.store.status_store import DomainOwner

# Called with each step just before it runs (tests use it to crash on purpose).
StepHook = Callable[[Step], None]
# Called ("before" | "after", what) around every QMP command and every save ("save").
Probe = Callable[[str, str], None]

CANCEL_WAIT_SECONDS = 30.0


@dataclass
class Context:
    doc: StatusDocument
    owner: DomainOwner
    monitor: Monitor
    problems: list[str] = field(default_factory=list)
    # Listed bitmaps of the current job that cannot be enabled (gone or inconsistent).
    unresolved: tuple[str, ...] = ()
    acknowledge: bool = False
    acknowledged: list[str] = field(default_factory=list)
    probe: Probe | None = None
    # Files of a backup the document ended, deleted before the save that forgets it.
    backup_files: list[str] = field(default_factory=list)


def save(ctx: Context) -> None:
    if ctx.probe is not None:
        ctx.probe("before", "save")
    ctx.owner.save(ctx.doc)
    if ctx.probe is not None:
        ctx.probe("after", "save")


def _record(ctx: Context, step: Record) -> None:
    job = ctx.doc.job(step.job)
    if job is None:
        return
    updated = replace(
        job,
        state=step.state if step.state is not None else job.state,
        newstate=step.newstate if step.newstate is not None else job.newstate,
        errmsg=step.errmsg if step.errmsg is not None else job.errmsg,
    )
    ctx.doc.replace_job(updated)
    if step.mirror_ready is not None:
        ctx.doc.set_disk_chain(step.mirror_ready, mirror_ready=True)
    if step.mirror is not None and job.disk is not None:
        ctx.doc.set_disk_chain(job.disk, mirror=disk_mirror_node(
            step.mirror, job.type, ready=updated.state is JobState.READY))
    save(ctx)


def _ask_and_wait(ctx: Context, step: Cancel | Complete) -> None:
    """`job-cancel` or `job-complete`, then wait until QEMU has concluded the job (or,
    started with auto-finalize off, it waits in pending; the job is planned again)."""
    if isinstance(step, Cancel):
        sent = "job-cancel"
        ctx.monitor.job_cancel(step.job)
    else:
        sent = "job-complete"
        ctx.monitor.job_complete(step.job)
    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    while time.monotonic() < deadline:
        qjob = ctx.monitor.query_jobs().get(step.job)
        if qjob is None or qjob.status in (CONCLUDED, "pending"):
            return
        time.sleep(0.02)
    ctx.problems.append(
        f"job '{step.job}' did not conclude within {CANCEL_WAIT_SECONDS:g} s of {sent}"
    )


def _bitmap_problems(ctx: Context, problems: list[str], names: tuple[str, ...]) -> None:
    ctx.unresolved = tuple(dict.fromkeys((*ctx.unresolved, *names)))
    if ctx.acknowledge:
        ctx.acknowledged.extend(problems)
    else:
        ctx.problems.extend(problems)


def _merge(ctx: Context, step: MergeBitmaps) -> None:
    nodes = ctx.monitor.query_nodes()
    base = effective_node(step.base)
    committed = [effective_node(image) for image in step.committed]
    keep_writable = step.base_is_active
    if not all(name in nodes for name in committed):
        # Committed nodes are deleted only after the merge, which enables every listed
        # bitmap: one still disabled means they left QEMU some other way, unmerged.
        if _restore(ctx, Reenable(step.base, step.listed, keep_writable, step.discard), nodes):
            ctx.problems.append(
                f"committed images {', '.join(committed)} left QEMU before their bitmaps "
                f"were merged into {base}: the listed bitmaps were re-enabled without "
                f"the changes recorded in them")
        return
    actions, problems = finish_actions(committed, step.chain, base, step.listed, nodes)
    ctx.problems.extend(p for p in problems if "invalid chain" in p)
    _bitmap_problems(ctx, [p for p in problems if "invalid chain" not in p],
                     unusable(base, step.listed, nodes, added(actions)))
    transaction_on(ctx.monitor, step.base, actions, discard=step.discard,
                   read_only_after=not keep_writable, nodes=nodes)


def _restore(ctx: Context, step: Reenable, nodes: Nodes | None = None) -> int:
    """Carry out `step`; returns how many listed bitmaps were still disabled."""
    problems, nodes, enabled = restore_base(ctx.monitor, step.base, step.listed,
                                            discard=step.discard,
                                            read_only=not step.base_is_active, nodes=nodes)
    _bitmap_problems(ctx, problems, unusable(effective_node(step.base), step.listed, nodes))
    return enabled


def _dismiss(ctx: Context, step: Dismiss) -> None:
    # A job the plan saw concluded is still there, waiting for this (`Monitor.concluded`).
    if ctx.monitor.concluded(step.job) or step.job in ctx.monitor.query_jobs():
        ctx.monitor.job_dismiss(step.job)


def _delete(ctx: Context, step: DeleteNodes) -> None:
    """A node QEMU refuses to let go (something the file does not name still uses it: an
    image whose format node the file lost, an export) is left, and reported: the job is
    over either way, and raising would keep it in the file to fail the same way forever."""
    present = ctx.monitor.node_names()
    for image in step.images:
        for name in (image.format_node, image.storage_node):
            if name is None or name not in present:
                continue
            try:
                ctx.monitor.blockdev_del(name)
            except QMPCommandError as exc:
                ctx.problems.append(f"node {name} is left in QEMU, which refused to delete "
                                    f"it ({exc.description}): something still uses it")
                break  # a storage node is its format node's, which stays


def _delete_files(ctx: Context, step: DeleteFiles) -> None:
    delete_images(ctx.monitor, step.local_paths(), "committed image", ctx.problems)


def delete_images(monitor: Monitor, paths: list[str], what: str, problems: list[str]) -> None:
    """Delete image files whose nodes left QEMU; each one kept is a problem."""
    if not paths:
        return
    held = _open_in_qemu(monitor)
    for path in paths:
        problem = _delete_file(path, held)
        if problem is not None:
            problems.append(f"{what} {path} {problem}")


def _open_in_qemu(monitor: Monitor) -> set[tuple[int, int]]:
    """The files QEMU's nodes have open now (device, inode): the committed nodes left,
    so a committed path among them is another node's image."""
    held = set()
    for node in monitor.query_nodes().values():
        with contextlib.suppress(OSError, ValueError):  # json: names, gone files
            if node.filename is not None and os.path.isabs(node.filename):
                found = os.stat(node.filename)
                held.add((found.st_dev, found.st_ino))
    return held


def _delete_file(path: str, held: set[tuple[int, int]]) -> str | None:
    """Unlink `path` (a symlink itself, never what it points to); what kept it, if any."""
    if not os.path.isabs(path):
        return "is a relative path (relative to what is unknown): not deleted"
    try:
        found = os.lstat(path)
        if (found.st_dev, found.st_ino) in held:
            return "is still open in QEMU for another node: not deleted"
        if stat.S_ISDIR(found.st_mode):
            return "is a directory, not an image: not deleted"
        if not (stat.S_ISREG(found.st_mode) or stat.S_ISLNK(found.st_mode)):
            # A device node, FIFO or socket named as an image: someone's, not a job's.
            return "is not a regular file, not an image: not deleted"
        os.unlink(path)
    except FileNotFoundError:
        pass  # deleted already (a rerun), or by someone else
    except OSError as exc:
        return f"could not be deleted: {exc.strerror or exc}"
    return None


def _stop_exports(ctx: Context, step: StopExports) -> None:
    """The server stops only when it serves nothing else (libvirt's own server stops
    once the backup's last export ended): another job's export, or one the backup never
    made, is left served, and only the image's own exports are deleted. One command
    either way, so a rerun after a kill finds the same thing done."""
    image = step.image
    served = ctx.monitor.block_exports()
    ours = [name for name, node in served.items()
            if node in (image.format_node, image.storage_node)]
    if ours and len(ours) == len(served):
        ctx.monitor.nbd_server_stop()
        return
    for name in ours:
        ctx.monitor.block_export_del(name)


def _remove_bitmap(ctx: Context, step: RemoveBitmap) -> None:
    actions = remove_actions(effective_node(step.image), step.name, ctx.monitor.query_nodes())
    if actions:
        ctx.monitor.transaction(actions)


def unresolved_record(job: BlockJob, names: tuple[str, ...]) -> BlockJob | None:
    """What stays of a commit whose listed bitmaps cannot be enabled: the job with its
    top set to its base (no images of its own) and only those bitmaps listed."""
    data = job.commit
    if data is None or data.base is None:
        return None
    outcome = job.newstate if job.newstate in (
        JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED) else job.state
    return replace(
        job, state=outcome, newstate=None, mirror=False, chains=None,
        # A commit needs a topparent to load; base stands in for it as for top.
        data=CommitData(base=data.base, top=data.base, disabled_base_bitmaps=names,
                        topparent=data.base if job.type is JobType.COMMIT else None),
    )


def forget(ctx: Context, step: Drop | DropMirror) -> None:
    """What a Drop or DropMirror changes in the document, not saved yet."""
    if isinstance(step, DropMirror):
        ctx.doc.set_disk_chain(step.disk, drop_mirror=True)
        return
    job = ctx.doc.job(step.job)
    kept = (unresolved_record(job, ctx.unresolved)
            if job is not None and ctx.unresolved and not ctx.acknowledge else None)
    if job is not None:
        ctx.doc.remove_job(step.job)
    if step.disk is not None and (step.chain is not None or step.drop_mirror):
        # After the job is gone, so no job is judged against the shorter chain.
        ctx.doc.set_disk_chain(step.disk, step.chain, drop_mirror=step.drop_mirror)
    if kept is not None:
        ctx.doc.add_job(kept)
    if not step.backup:
        return
    ended = {job.disk: _backup_disk_state(job)} if job is not None and job.disk else {}
    if any(other.type is JobType.BACKUP for other in ctx.doc.jobs):
        for disk, state in ended.items():
            ctx.doc.set_backup_disk_state(disk, state)
        return
    # The last job: its state decides the files, and `<backups>` goes with it.
    ctx.backup_files += deleted_when_ended(ctx.doc.dumps(), ended)
    ctx.doc.end_backup()


def _backup_disk_state(job: BlockJob) -> str:
    """How libvirt records the end of a backup's job in `<backups>`: QEMU's `concluded`
    with an error and anything short of an end count as failed."""
    outcome = job.newstate if job.newstate is not None else job.state
    return {JobState.COMPLETED: "complete", JobState.CANCELLED: "cancelled"}.get(
        outcome, "failed")


def run_step(ctx: Context, step: Step) -> None:
    match step:
        case Finalize(job=job):
            ctx.monitor.job_finalize(job)
        case Record():
            _record(ctx, step)
        case Cancel() | Complete():
            _ask_and_wait(ctx, step)
        case MergeBitmaps():
            _merge(ctx, step)
        case Reenable():
            _restore(ctx, step)
        case Dismiss():
            _dismiss(ctx, step)
        case DeleteNodes():
            _delete(ctx, step)
        case DeleteFiles():
            _delete_files(ctx, step)
        case StopExports():
            _stop_exports(ctx, step)
        case RemoveBitmap():
            _remove_bitmap(ctx, step)
        case Drop() | DropMirror():
            forget(ctx, step)
            save(ctx)
