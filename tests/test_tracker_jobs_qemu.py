"""The tracker on real QEMU beyond a plain commit: `pending` saved before `job-finalize`
(jobs started with auto-finalize off), and create, backup and copy jobs the daemon
started itself and recorded with `add_job`, each ending as recovery ends it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from blockjob.demo.images import run_tool
from blockjob.demo.lab import Lab
from blockjob.jobs.commit import CrashPoint
from blockjob.jobs.requests import RequestError
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
from blockjob.qemu.monitor import Monitor
from blockjob.recovery import recover
from blockjob.statusxml.sources import disk_mirror_node
from blockjob.store.status_store import StatusStore
from tests.support import scenario
from tests.support.finish_lab import backup_job, exports, record_pull, start_pull
from tests.support.images import file_image
from tests.support.qemu_fixtures import (
    BASE,
    CRAWL,
    JOB,
    MID,
    QEMU_MARKS,
    TOP,
    CrashError,
    assert_chain,
    assert_file_sound,
    crash_at,
    job_status,
    started,
    wait_until,
)
from tests.support.tracking import (
    ACTIVE_JOB,
    Log,
    assert_active_aborted,
    assert_pivoted,
    end_state,
    full_disk,
    lab_dir,
    recorder,
    saves,
    to_end,
    to_ready,
    tracker,
)
from tests.test_recovery_qemu import assert_completed

pytestmark = QEMU_MARKS
PULL = "pull-vda-libvirt-1-format"


def test_pending_is_saved_before_job_finalize(tmp_path: Path) -> None:
    """A pull started with auto-finalize off: pending is on disk when job-finalize runs,
    the outcome is on disk before the first finishing step."""
    log: Log = []
    with started(tmp_path) as tb, tracker(tb, **recorder(log, tb.status_path)) as t:
        t.monitor.execute("block-stream", {
            "job-id": PULL, "device": TOP, "base-node": BASE, "speed": CRAWL,
            "auto-finalize": False, "auto-dismiss": False})
        t.add_job(BlockJob(name=PULL, type=JobType.PULL, state=JobState.RUNNING, jobflags=0,
                           disk="vda", data=PullData(base="libvirt-3-storage")))
        t.monitor.execute("block-job-set-speed", {"device": PULL, "speed": 0})
        to_end(t, PULL)
        assert_chain(assert_file_sound(tb.status_path), TOP, BASE)
    assert saves(log) == [("running:-",), ("pending:pending",), ("pending:completed",), ()]
    steps = [entry[1:] for entry in log if entry[0] == "step"]
    assert steps == [("Record", "running:-"), ("Finalize", "pending:pending"),
                     ("Record", "pending:pending"), ("Dismiss", "pending:completed"),
                     ("MergeBitmaps",), ("DeleteNodes",), ("Drop", "pending:completed")]


def test_a_new_commit_that_waits_in_pending_is_finalized_and_finished(tmp_path: Path) -> None:
    """The commit reaches QEMU (auto-finalize off) while the file still says new."""
    log: Log = []
    with started(tmp_path) as tb:
        with tracker(tb, **recorder(log, tb.status_path)) as t:
            with pytest.raises(CrashError):
                t.start_commit("vda", MID, BASE, crash=crash_at(CrashPoint.BASE_READ_ONLY))
            t.monitor.block_commit(JOB, device=TOP, top_node=MID, base_node=BASE,
                                   speed=CRAWL, auto_finalize=False)
            t.monitor.execute("block-job-set-speed", {"device": JOB, "speed": 0})
            to_end(t, JOB)
        assert_completed(tb)
    assert saves(log) == [("new:-",), ("pending:pending",), ("pending:completed",), ()]
    assert ("step", "Finalize", "pending:pending") in log
    assert log.index(("save", TOP, "pending:completed")) < log.index(
        ("step", "MergeBitmaps"))


@pytest.mark.parametrize(("request_", "state", "outcome", "check"), [
    ("pivot", "pivoting", "completed", assert_pivoted),
    ("abort", "aborting", "cancelled", assert_active_aborted)], ids=["pivot", "abort"])
def test_a_requested_active_commit_without_auto_finalize(
    tmp_path: Path, request_: str, state: str, outcome: str, check: Callable[[Lab], None],
) -> None:
    """After job-complete QEMU holds a job started with auto-finalize off in pending: it
    stays `pivoting` on file (libvirt records pending only over new or running) and is
    finalized. `job-cancel` (forced) concludes it without pending. Both end as the
    uninterrupted flow."""
    log: Log = []
    with started(tmp_path) as tb:
        with tracker(tb, **recorder(log, tb.status_path)) as t:
            with pytest.raises(CrashError):
                t.start_active_commit("vda", BASE, crash=crash_at(CrashPoint.BASE_READ_ONLY))
            t.monitor.block_commit(ACTIVE_JOB, device=TOP, base_node=BASE, auto_finalize=False)
            to_ready(t)
            getattr(t, request_)(ACTIVE_JOB)
            to_end(t, ACTIVE_JOB)
        check(tb)
    assert saves(log) == [("new:-",), ("ready:ready",), (f"{state}:ready",),
                          (f"{state}:{outcome}",), ()]
    finalized = [entry for entry in log if entry[:2] == ("step", "Finalize")]
    assert finalized == ([("step", "Finalize", "pivoting:ready")] if request_ == "pivot" else [])


# -- other job types, recorded with add_job -----------------------------------------

Started = tuple[BlockJob, StorageSource | None]  # the record, and a copy's mirror image


def _target(tb: Lab, monitor: Monitor, name: str) -> StorageSource:
    """A new qcow2 image of the disk's size, attached as libvirt-9 (a backup or copy
    target)."""
    path = tb.directory / "vda" / name
    run_tool(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(scenario.SIZE)])
    monitor.execute("blockdev-add", {"driver": "file", "filename": str(path),
                                     "node-name": "libvirt-9-storage"})
    monitor.execute("blockdev-add", {"driver": "qcow2", "file": "libvirt-9-storage",
                                     "node-name": "libvirt-9-format", "backing": None})
    return file_image(str(path), index=9, storage_node="libvirt-9-storage",
                      format_node="libvirt-9-format", terminated=True)


def _create(tb: Lab, monitor: Monitor) -> Started:
    name, path = "create-libvirt-9-storage", tb.directory / "vda" / "new.raw"
    monitor.execute("blockdev-create", {"job-id": name, "options": {
        "driver": "file", "filename": str(path), "size": 1 << 20}})
    src = file_image(str(path), "raw", index=9, storage_node="libvirt-9-storage")
    return BlockJob(name=name, type=JobType.CREATE, state=JobState.RUNNING,
                    data=CreateData(src=src, storage_only=True)), None


def _backup(tb: Lab, monitor: Monitor) -> Started:
    name, store = "backup-vda-libvirt-9-format", _target(tb, monitor, "backup.qcow2")
    monitor.execute("blockdev-backup", {"job-id": name, "device": TOP,
                                        "target": "libvirt-9-format", "sync": "full",
                                        "speed": CRAWL, "auto-dismiss": False})
    return BlockJob(name=name, type=JobType.BACKUP, state=JobState.RUNNING, jobflags=0,
                    disk="vda", data=BackupData(store=store)), None


def _copy(tb: Lab, monitor: Monitor) -> Started:
    name, target = "copy-vda-libvirt-9-format", _target(tb, monitor, "copy.qcow2")
    monitor.execute("blockdev-mirror", {"job-id": name, "device": TOP,
                                        "target": "libvirt-9-format", "sync": "full",
                                        "auto-dismiss": False})
    return BlockJob(name=name, type=JobType.COPY, state=JobState.RUNNING, jobflags=0,
                    disk="vda", data=CopyData()), target


@dataclass(frozen=True)
class Flow:
    start: Callable[[Lab, Monitor], Started]
    request: str | None = None  # "pivot" or "abort" once ready; None: runs to its end
    chain: tuple[str, ...] = (TOP, MID, BASE)  # the disk's chain at the end


FLOWS = {
    "create": Flow(_create),
    "backup": Flow(_backup),
    "copy-pivot": Flow(_copy, "pivot", ("libvirt-9-format",)),
    "copy-abort": Flow(_copy, "abort"),
}
REQUESTED = {"pivot": JobState.PIVOTING, "abort": JobState.ABORTING}


def _live(tb: Lab, flow: Flow) -> None:
    """The daemon starts the job in QEMU, records it, and its tracker follows it."""
    with tracker(tb) as t:
        job, mirror = flow.start(tb, t.monitor)
        t.add_job(job, mirror=mirror)
        if flow.request is not None:
            to_ready(t, job.name)
            getattr(t, flow.request)(job.name)
        elif job.type is JobType.BACKUP:
            t.monitor.execute("block-job-set-speed", {"device": job.name, "speed": 0})
        to_end(t, job.name)


def _offline(tb: Lab, flow: Flow) -> None:
    """The same job under a daemon without a tracker that dies after asking QEMU (what
    libvirt records before pivot or abort, then QEMU alone); `recover` finishes it."""
    with tb.connect() as monitor, StatusStore(tb.directory).owned(tb.name) as owner:
        job, mirror = flow.start(tb, monitor)
        doc = owner.load()
        doc.add_job(job if flow.request is None else replace(job, state=REQUESTED[flow.request]))
        if mirror is not None:
            doc.set_disk_chain("vda", mirror=disk_mirror_node(mirror, job.type, ready=False))
        owner.save(doc)
        if flow.request is not None:
            wait_until(lambda: job_status(monitor, job.name) == "ready", "ready")
            monitor.execute("job-complete" if flow.request == "pivot" else "job-cancel",
                            {"id": job.name})
        elif job.type is JobType.BACKUP:
            monitor.execute("block-job-set-speed", {"device": job.name, "speed": 0})
        wait_until(lambda: job_status(monitor, job.name) == "concluded", "concluded")
    report = recover([tb.status_path])
    assert report.ok, [line for d in report.domains for line in d.lines()]


@pytest.mark.parametrize("kind", list(FLOWS))
def test_a_job_recorded_with_add_job_ends_as_recovery_ends_it(tmp_path: Path, kind: str) -> None:
    flow = FLOWS[kind]
    with started(lab_dir(tmp_path, "live")) as live:
        _live(live, flow)
        doc = assert_file_sound(live.status_path)
        assert doc.jobs == []
        disk = doc.disk("vda")
        assert disk is not None and disk.mirror is None
        assert_chain(doc, *flow.chain)
        live_end = end_state(live)
    assert live_end[2] == []  # QEMU has no job left
    with started(lab_dir(tmp_path, "offline")) as offline:
        _offline(offline, flow)
        assert end_state(offline) == live_end


def test_a_copy_reaches_ready_as_libvirt_9_writes_it(tmp_path: Path) -> None:
    log: Log = []
    with started(tmp_path) as tb, tracker(tb, **recorder(log)) as t:
        job, mirror = _copy(tb, t.monitor)
        t.add_job(job, mirror=mirror)
        to_ready(t, job.name)
        text = tb.status_path.read_text()
        assert (f"<blockjob name='{job.name}' type='copy' state='ready' newstate='ready' "
                "jobflags='0x0'>") in text
        assert "<mirror type='file' job='copy' ready='yes'>" in text
        assert saves(log) == [("running:-",), ("ready:ready",)]
        t.abort(job.name)
        to_end(t, job.name)


def test_add_job_refuses_a_mirror_without_a_disk(tmp_path: Path) -> None:
    with started(tmp_path) as tb, tracker(tb) as t:
        before = tb.status_path.read_bytes()
        job = BlockJob(name="copy-x", type=JobType.COPY, state=JobState.RUNNING)
        with pytest.raises(RequestError, match="has a mirror but no disk"):
            t.add_job(job, mirror=file_image("/x.qcow2", index=9, storage_node="s"))
        assert t.doc.job("copy-x") is None
        assert tb.status_path.read_bytes() == before


def test_add_job_whose_save_fails_leaves_the_document_as_the_file(tmp_path: Path) -> None:
    """As a commit's first save: the job and its `<mirror>` stayed in the document, so a
    retry was refused ("already exists") for a job the file never got."""
    with started(tmp_path) as tb, tracker(tb) as t:
        job, mirror = _copy(tb, t.monitor)
        before = t.doc.dumps()
        with full_disk(t):
            t.add_job(job, mirror=mirror)
        assert t.doc.dumps() == before
        t.add_job(job, mirror=mirror)
        to_ready(t, job.name)
        t.abort(job.name)
        to_end(t, job.name)


@pytest.mark.parametrize("ended", ["vda", "vdb"])  # the job first, or second, in the file
def test_a_backups_running_job_is_cancelled_once_a_sibling_ends_badly_while_tracked(
    tmp_path: Path, ended: str
) -> None:
    """libvirt 9.0 cancels a backup's jobs still running once one of them failed or was
    cancelled, live as at a restart (recovery's `cancel-with-backup`). The tracker
    adopted the other job: it ran on, and the backup never ended."""
    log: Log = []
    with started(tmp_path, second_disk=True) as tb:
        with tb.connect() as monitor:
            vda = start_pull(monitor, tb, "vda", 1, 9)
            vdb = start_pull(monitor, tb, "vdb", 4, 10)
        record_pull(tb, [("vda", 1, vda, 9), ("vdb", 4, vdb, 10)])
        running = backup_job(*(("vdb", 4) if ended == "vda" else ("vda", 1)))
        with tracker(tb, **recorder(log, tb.status_path)) as t:
            t.monitor.job_cancel(backup_job(ended, 1 if ended == "vda" else 4))
            assert t.wait_for(lambda doc: not doc.jobs, 60), t.reports
            # Adopted at open, then finished as cancelled.
            decisions = [r.decision for r in t.reports if r.job == running]
            assert decisions == ["adopt", "finish-failed"], t.reports
        # Recorded aborting while the ended job was still on file: a daemon killed in
        # between finds the cancel on record.
        place = sorted([running, backup_job(ended, 1 if ended == "vda" else 4)]).index(running)
        assert any(len(jobs) == 2 and jobs[place].startswith("aborting:")
                   for jobs in saves(log)), log
        with tb.connect() as monitor:  # a fresh look
            assert monitor.query_jobs() == {} and exports(monitor) == {}
        text = tb.status_path.read_bytes()
        assert b"<backups>" not in text and b"async='backup'" not in text


def test_a_backup_job_that_ends_before_its_cancel_lands_still_ends_the_backup(
    tmp_path: Path,
) -> None:
    # vdb concludes between the query that found it running and its job-cancel, which
    # QEMU then refuses: the refusal was raised from wait_for before vda, whose end
    # started it all, was reconciled. It is reported; vdb's own event finishes it.
    with started(tmp_path, second_disk=True) as tb:
        with tb.connect() as monitor:
            vda = start_pull(monitor, tb, "vda", 1, 9)
            vdb = start_pull(monitor, tb, "vdb", 4, 10)
        record_pull(tb, [("vda", 1, vda, 9), ("vdb", 4, vdb, 10)])
        running = backup_job("vdb", 4)
        with tracker(tb) as t:
            t.monitor.job_cancel(backup_job("vda", 1))
            raced: list[str] = []

            def conclude_first(when: str, command: str) -> None:
                if (when, command) == ("before", "job-cancel") and not raced:
                    raced.append(command)
                    t.monitor.job_cancel(running)
                    wait_until(lambda: t.monitor.query_jobs()[running].status == "concluded",
                               "vdb concluded")

            t.monitor.observer = conclude_first
            assert t.wait_for(lambda doc: not doc.jobs, 60), t.reports
            [refused] = [r for r in t.reports if r.decision == "cancel-with-backup"]
            assert refused.job == running and "cancel" in (refused.error or "")
        with tb.connect() as monitor:  # a fresh look
            assert monitor.query_jobs() == {} and exports(monitor) == {}
        text = tb.status_path.read_bytes()
        assert b"<backups>" not in text and b"async='backup'" not in text
