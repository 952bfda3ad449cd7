"""A backup job that ended while the daemon was away is finished the way libvirt 9.0
finishes it (seen in ../shared/libvirt-lab: libvirtd killed during a push backup,
restarted once QEMU concluded the job): the NBD server of a pull backup stops, its image
leaves QEMU, an incremental backup's
bitmap leaves the disk's top, and with the backup's last job the file drops `<backups>`
and the async job `<job ... async='backup'>`. Without the last two a restarted libvirt
waits for the backup forever and refuses every later job of the domain."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

import blockjob
from blockjob.model import BlockJob, JobState
from blockjob.qemu.monitor import QemuJob
from blockjob.recovery import Decision, plan_job
from blockjob.recovery.backupfiles import deleted_when_ended
from blockjob.recovery.execute import Context, run_step
from blockjob.recovery.steps import (
    Cancel,
    DeleteNodes,
    Drop,
    Record,
    RemoveBitmap,
    StopExports,
    describe,
)
from tests.support.corpus import REAL

PUSH = REAL / "backup-push-running.xml"


class _Saved:
    def __init__(self) -> None:
        self.saved: list[bytes] = []

    def save(self, doc: blockjob.StatusDocument) -> None:
        self.saved.append(doc.dumps())


def _push() -> bytes:
    if not PUSH.is_file():
        pytest.skip(f"{PUSH} is not available")
    return PUSH.read_bytes()


def _ended_by_libvirt(data: bytes) -> bytes:
    """What libvirt 9.0 writes once the backup's only job ended (its lab, same diff)."""
    data = re.sub(rb"\n *<job type='none' async='backup'[^>]*/>", b"", data)
    data = re.sub(rb"\n *<backups>.*?</backups>", b"", data, flags=re.DOTALL)
    return re.sub(rb"<blockjobs active='yes'>.*?</blockjobs>", b"<blockjobs active='no'/>",
                  data, flags=re.DOTALL)


@pytest.mark.parametrize("error", [None, "No space left on device"])
def test_ended_backup_leaves_qemu_and_the_file_as_libvirt_leaves_them(
    error: str | None,
) -> None:
    data = _push()
    doc = blockjob.loads(data)
    job = doc.jobs[0]
    plan = plan_job(doc, job, QemuJob(job.name, "backup", "concluded", error=error))
    assert plan.decision is (Decision.COMPLETED if error is None else Decision.FAILED)
    (stop,) = [step for step in plan.steps if isinstance(step, StopExports)]
    assert stop.image.format_node == "libvirt-9-format"
    (deleted,) = [step for step in plan.steps if isinstance(step, DeleteNodes)]
    assert [image.format_node for image in deleted.images] == ["libvirt-9-format"]
    (removed,) = [step for step in plan.steps if isinstance(step, RemoveBitmap)]
    assert (removed.image.format_node, removed.name) == ("libvirt-5-format", "backup-vda")
    drop = plan.steps[-1]
    assert isinstance(drop, Drop) and drop.backup
    assert describe(drop).endswith("; end the backup if no job of it is left (deleting "
                                   "the images libvirt deletes then)")
    (record,) = [step for step in plan.steps if isinstance(step, Record)]
    doc.replace_job(replace(job, newstate=record.newstate))  # as run before the drop
    saver = _Saved()
    ctx = Context(doc, saver, monitor=None)  # type: ignore[arg-type]
    run_step(ctx, drop)
    assert saver.saved == [_ended_by_libvirt(data)]
    # A push backup keeps its target once completed; libvirt deletes a failed one's.
    target = "/srv/vlab-run/images/vda.backup-push.qcow2"
    assert ctx.backup_files == ([] if error is None else [target])
    assert blockjob.loads(saver.saved[0]).dumps() == saver.saved[0]


def test_a_backup_with_a_job_left_keeps_its_backups_element() -> None:
    data = _push()
    doc = blockjob.loads(data)
    job = doc.jobs[0]
    doc.add_job(replace(job, name="backup-vdb-libvirt-1-format", disk="vdb"))
    drop = plan_job(doc, job, QemuJob(job.name, "backup", "concluded")).steps[-1]
    run_step(Context(doc, _Saved(), monitor=None), drop)  # type: ignore[arg-type]
    kept = doc.dumps()
    assert b"<backups>" in kept and b"async='backup'" in kept


def test_end_backup_without_a_backup_changes_nothing() -> None:
    data = _push()
    idle = _ended_by_libvirt(data)
    doc = blockjob.loads(idle)
    doc.end_backup()
    assert doc.dumps() == idle


VDB = "backup-vdb-libvirt-1-format"


def _job(doc: blockjob.StatusDocument, name: str) -> BlockJob:
    job = doc.job(name)
    assert job is not None
    return job


def _two_jobs() -> tuple[blockjob.StatusDocument, str]:
    """The push backup with a second job, on vdb; the name of the first (vda's)."""
    doc = blockjob.loads(_push())
    job = doc.jobs[0]
    doc.add_job(replace(job, name=VDB, disk="vdb"))
    return doc, job.name


@pytest.mark.parametrize(("vda", "recorded", "cancelled"), [
    (QemuJob("", "backup", "concluded", error="No space left on device"), None, True),
    (QemuJob("", "backup", "concluded", error="Operation canceled"), None, True),
    (None, JobState.FAILED, True),  # dismissed already; the outcome was recorded first
    (None, JobState.CANCELLED, True),
    (QemuJob("", "backup", "concluded"), None, False),  # completed: the others go on
    (QemuJob("", "backup", "running"), None, False),
])
def test_a_backup_job_still_running_is_cancelled_once_a_sibling_failed(
    vda: QemuJob | None, recorded: JobState | None, cancelled: bool
) -> None:
    # libvirt 9.0 (qemuBackupNotifyBlockjobEnd, seen in ../shared/libvirt-lab) cancels the
    # backup's running jobs once one failed or was cancelled; recovery adopted them, so
    # the backup never ended (the ended job's disk stays 'running' in <backups>).
    doc, first = _two_jobs()
    if recorded is not None:
        doc.replace_job(replace(doc.jobs[0], newstate=recorded))
    qemu = {VDB: QemuJob(VDB, "backup", "running")}
    qemu.update({first: replace(vda, id=first)} if vda is not None else {})
    plan = plan_job(doc, _job(doc, VDB), qemu[VDB], qemu_jobs=qemu)
    if not cancelled:
        assert (plan.decision, plan.steps) == (Decision.ADOPT, ())
        return
    assert plan.decision is Decision.BACKUP_FAILED
    assert plan.steps == (Record(VDB, state=JobState.ABORTING), Cancel(VDB))
    assert plan.note == f"job '{first}' of the same backup failed or was cancelled"


def test_a_backup_job_qemu_already_aborts_is_not_cancelled_again() -> None:
    doc, first = _two_jobs()
    qemu = {first: QemuJob(first, "backup", "concluded", error="Operation canceled"),
            VDB: QemuJob(VDB, "backup", "aborting")}
    assert plan_job(doc, _job(doc, VDB), qemu[VDB], qemu_jobs=qemu).decision is Decision.ADOPT
    doc.replace_job(replace(_job(doc, VDB), state=JobState.ABORTING))
    qemu[VDB] = QemuJob(VDB, "backup", "running")
    plan = plan_job(doc, _job(doc, VDB), qemu[VDB], qemu_jobs=qemu)
    assert plan.steps == (Cancel(VDB),), "recorded aborting already"


def _backup(mode: str, states: tuple[str, ...], flags: str = "0x0",
            extra: str = "") -> bytes:
    store = "scratch" if mode == "pull" else "target"
    disks = "".join(f"<disk name='vd{chr(97 + i)}' backup='yes' state='{state}' type='file'>"
                    f"<{store} file='/img/{i}'/></disk>" for i, state in enumerate(states))
    return (f"<domstatus><job type='none' async='backup' flags='{flags}'/><backups>"
            f"<domainbackup mode='{mode}'><disks>{disks}{extra}</disks></domainbackup>"
            "</backups></domstatus>").encode()


@pytest.mark.parametrize(("data", "deleted"), [
    (_backup("pull", ("complete", "cancelled")), ["/img/0", "/img/1"]),
    (_backup("push", ("complete", "complete")), []),
    (_backup("push", ("complete", "failed")), ["/img/0", "/img/1"]),
    (_backup("push", ("cancelled",)), ["/img/0"]),
    (_backup("pull", ("complete",), flags="0x1"), []),
    (_backup("pull", ("complete",), flags="junk"), ["/img/0"]),
    (_backup("pull", ("complete",), extra=(
        "<disk name='vdx' backup='no'/><disk name='vdy' type='network'>"
        "<scratch protocol='nbd' name='x'/></disk><disk name='vdz'><scratch file='/z'/></disk>")),
     ["/img/0", "/z"]),
    (b"<domstatus/>", []),
], ids=["pull", "push-completed", "push-failed", "push-cancelled", "reuse-external",
        "unreadable-flags", "only-local-files", "no-backup"])
def test_the_images_libvirt_deletes_when_a_backup_ends(data: bytes, deleted: list[str]) -> None:
    # qemuBackupJobTerminate (libvirt 9.0): scratch files of a pull backup, targets of a
    # push backup that did not complete, never files the caller gave (REUSE_EXTERNAL).
    assert deleted_when_ended(data) == deleted
