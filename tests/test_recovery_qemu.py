"""Recovery against a real QEMU: every crash point of the start flow, every outcome."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

import blockjob
from blockjob.demo.images import run_tool
from blockjob.demo.lab import Lab
from blockjob.jobs.commit import CrashPoint, start_commit
from blockjob.model import JobState
from blockjob.qemu.reopen import set_read_only
from blockjob.recovery import Decision, recover
from blockjob.store.status_store import StatusStore
from tests.support import scenario
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
    base_bitmaps,
    base_image,
    commit,
    counts,
    crash_at,
    job_status,
    started,
    wait_concluded,
    wait_until,
)

pytestmark = QEMU_MARKS

BEFORE_QEMU_JOB = [
    CrashPoint.JOB_PERSISTED, CrashPoint.BASE_WRITABLE,
    CrashPoint.BITMAPS_DISABLED, CrashPoint.BASE_READ_ONLY,
]
AFTER_QEMU_JOB = [CrashPoint.COMMIT_STARTED, CrashPoint.RUNNING_PERSISTED]


def assert_completed(tb: Lab) -> None:
    """The commit is finished as libvirt 6.2 would: merged, re-enabled, cleaned up."""
    assert_chain(assert_file_sound(tb.status_path), TOP, BASE)
    assert blockjob.load(tb.status_path).jobs == []
    with tb.connect() as monitor:
        assert monitor.query_jobs() == {}
        nodes = monitor.query_nodes()
    assert "libvirt-2-format" not in nodes and "libvirt-2-storage" not in nodes
    assert nodes[BASE].read_only
    bitmaps = base_bitmaps(tb)
    assert counts(bitmaps) == scenario.EXPECTED_AFTER_COMMIT
    assert {n for n, b in bitmaps.items() if b.recording} == {"chk0", "chk1", "chk2"}


def assert_restored(tb: Lab) -> None:
    """The commit left no trace: bitmaps recording again and unchanged, chain kept."""
    assert_chain(assert_file_sound(tb.status_path), TOP, MID, BASE)
    assert blockjob.load(tb.status_path).jobs == []
    with tb.connect() as monitor:
        assert monitor.query_jobs() == {}
        assert monitor.query_nodes()[BASE].read_only
    bitmaps = base_bitmaps(tb)
    assert counts(bitmaps) == scenario.EXPECTED_UNCHANGED
    assert {n for n, b in bitmaps.items() if b.recording} == {"chk0", "chk1"}


def recover_ok(tb: Lab, **kwargs: object) -> list[str]:
    report = recover([tb.status_path], **kwargs)  # type: ignore[arg-type]
    assert report.ok, [line for d in report.domains for line in d.lines()]
    return [job.decision for domain in report.domains for job in domain.jobs]


@pytest.mark.parametrize("point", BEFORE_QEMU_JOB, ids=str)
def test_crash_before_the_qemu_job_restores_the_bitmaps(tmp_path: Path, point: CrashPoint) -> None:
    with started(tmp_path) as tb:
        assert commit(tb, crash=point) is None
        job = blockjob.load(tb.status_path).job(JOB)
        assert job is not None and job.state == "new"
        assert sorted(job.disabled_base_bitmaps) == sorted(scenario.DISABLED_AT_START)
        assert recover_ok(tb) == [Decision.UNSTARTED]
        assert_restored(tb)


@pytest.mark.parametrize("point", AFTER_QEMU_JOB, ids=str)
def test_completed_after_each_crash_point(tmp_path: Path, point: CrashPoint) -> None:
    with started(tmp_path) as tb:
        assert commit(tb, crash=point) is None
        wait_concluded(tb)
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert_completed(tb)


@pytest.mark.parametrize("point", AFTER_QEMU_JOB, ids=str)
def test_failed_after_each_crash_point(tmp_path: Path, point: CrashPoint) -> None:
    with started(tmp_path, fail_commit=True) as tb:
        commit(tb, crash=point)
        wait_concluded(tb)
        with tb.connect() as monitor:
            assert monitor.query_jobs()[JOB].error == "Input/output error"
        assert recover_ok(tb) == [Decision.FAILED]
        assert_restored(tb)


@pytest.mark.parametrize("point", AFTER_QEMU_JOB, ids=str)
def test_cancelled_after_each_crash_point(tmp_path: Path, point: CrashPoint) -> None:
    with started(tmp_path) as tb:
        commit(tb, speed=CRAWL, crash=point)
        with tb.connect() as monitor:  # someone else cancels while the daemon is away
            monitor.job_cancel(JOB)
        wait_concluded(tb)
        report = recover([tb.status_path])
        job = report.domains[0].jobs[0]
        assert report.ok and job.decision == Decision.FAILED
        assert job.steps[0] == "record newstate=cancelled"  # not failed
        assert_restored(tb)


@pytest.mark.parametrize("point", AFTER_QEMU_JOB, ids=str)
def test_running_after_each_crash_point_is_adopted_then_finished(
    tmp_path: Path, point: CrashPoint
) -> None:
    with started(tmp_path) as tb:
        commit(tb, speed=CRAWL, crash=point)
        assert recover_ok(tb) == [Decision.ADOPT]
        job = assert_file_sound(tb.status_path).job(JOB)
        assert job is not None and job.state == "running"
        assert {n for n, b in base_bitmaps(tb).items() if b.recording} == set()
        with tb.connect() as monitor:
            assert job_status(monitor) == "running"
            monitor.execute("block-job-set-speed", {"device": JOB, "speed": 0})
        wait_concluded(tb)
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert_completed(tb)


def test_completed_commit_is_finished_and_stored_in_the_image(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        assert {b.recording for b in base_bitmaps(tb).values()} == {False}
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert_completed(tb)
        with tb.connect() as monitor:
            monitor.execute("quit")
        tb.stop()
        [base] = [image.path for disk in tb.disks for image in disk.images
                  if image.path.stem == "base"]
        info = json.loads(run_tool(["qemu-img", "info", "--output=json", str(base)]))
    stored = {b["name"]: b["flags"] for b in info["format-specific"]["data"]["bitmaps"]}
    # Re-enabled and merged with base writable: QEMU stored them as recording ("auto").
    assert stored == {"chk0": ["auto"], "chk1": ["auto"], "chk2": ["auto"], "bm-off": []}


def test_a_commit_listed_in_a_second_blockjobs_is_finished(tmp_path: Path) -> None:
    """libvirt reads the jobs of every `<blockjobs>`; so does recovery, or the commit's
    bitmaps would stay disabled. The file comes back with one `<blockjobs>`."""
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        root = etree.fromstring(tb.status_path.read_bytes())
        second = etree.Element("blockjobs", active="yes")
        second.extend(root.find("blockjobs"))  # type: ignore[arg-type]
        root.find("domain").addprevious(second)
        tb.status_path.write_bytes(etree.tostring(root))
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert_completed(tb)
        assert tb.status_path.read_bytes().count(b"<blockjobs") == 1


def test_ready_active_commit_is_adopted_as_ready(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        with StatusStore(tmp_path).owned(tb.name) as owner:
            job = start_commit(owner, "vda", TOP, BASE)
        assert job.type == "active-commit"
        with tb.connect() as monitor:
            wait_until(lambda: job_status(monitor, job.name) == "ready", "ready")
        assert recover_ok(tb) == [Decision.ADOPT]
        adopted = assert_file_sound(tb.status_path).job(job.name)
        assert adopted is not None and adopted.state == "ready"
        assert not base_bitmaps(tb)["chk1"].recording
        assert recover_ok(tb) == [Decision.ADOPT]  # nothing left to change


def test_an_active_commit_gets_its_mirror_with_running_as_in_libvirt_90(tmp_path: Path) -> None:
    """The disk's `<mirror>` was saved with the `new` job. libvirt 9.0 saves it only with
    `running`: finding a `new` job QEMU never had, it drops the job and keeps the mirror,
    then refuses every job on the disk. A start killed after QEMU took the job leaves `new`
    without a mirror (libvirt 9.0's own file there too): recovery adds it when adopting."""
    active = "commit-vda-libvirt-1-format"
    with started(tmp_path) as tb:
        with StatusStore(tmp_path).owned(tb.name) as owner, pytest.raises(CrashError):
            start_commit(owner, "vda", TOP, BASE, speed=CRAWL,
                         crash=crash_at(CrashPoint.COMMIT_STARTED))
        assert "<mirror" not in tb.status_path.read_text()
        assert recover_ok(tb) == [Decision.ADOPT]
        doc = assert_file_sound(tb.status_path)
        disk = doc.disk("vda")
        assert disk is not None and disk.mirror is not None
        assert disk.mirror.format_node == BASE
        # libvirt 9.0's bytes (ready='yes' too if the job got there meanwhile).
        assert re.search(r"<mirror type='file' job='active-commit'( ready='yes')?>",
                         tb.status_path.read_text())
        job = doc.job(active)
        assert job is not None and job.state in ("running", "ready")


def test_a_commit_can_leave_the_base_bitmaps_recording_as_libvirt_65_does(
    tmp_path: Path,
) -> None:
    """libvirt >= 6.5 ignores `<disabledBaseBitmaps>`: a commit it may take over must
    not disable base's bitmaps, or they stay disabled for good once it finishes the job."""
    with started(tmp_path) as tb:
        with StatusStore(tmp_path).owned(tb.name) as owner:
            job = start_commit(owner, "vda", MID, BASE, disable_base_bitmaps=False)
        assert job.disabled_base_bitmaps == ()
        assert "disabledBaseBitmaps" not in tb.status_path.read_text()
        assert {n for n, b in base_bitmaps(tb).items() if b.recording} == {"chk0", "chk1"}
        wait_concluded(tb)
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert {n for n, b in base_bitmaps(tb).items() if b.recording} == {
            "chk0", "chk1", "chk2"}


def test_pending_job_is_finalized_then_finished(tmp_path: Path) -> None:
    """A job started with auto-finalize off (libvirt >= 9) waits in `pending`."""
    with started(tmp_path) as tb:
        commit(tb, crash=CrashPoint.BASE_READ_ONLY)
        with tb.connect() as monitor:
            monitor.block_commit(JOB, device=TOP, top_node=MID, base_node=BASE,
                                 auto_finalize=False)
            wait_until(lambda: job_status(monitor) == "pending", "pending")
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert_completed(tb)


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        recover_ok(tb)
        before = tb.status_path.read_bytes(), base_bitmaps(tb)
        report = recover([tb.status_path])
        assert report.ok and report.domains[0].jobs == []
        assert (tb.status_path.read_bytes(), base_bitmaps(tb)) == before


def test_commit_someone_else_dismissed_is_finished_as_its_chain_shows(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        with tb.connect() as monitor:  # QEMU committed; someone else dismissed the job
            monitor.job_dismiss(JOB)
        report = recover([tb.status_path])
        job = report.domains[0].jobs[0]
        assert report.ok and job.decision == Decision.COMPLETED
        assert job.note is not None and "backing chain shows the commit done" in job.note
        assert_completed(tb)
        before = tb.status_path.read_bytes()
        assert recover_ok(tb) == []
        assert tb.status_path.read_bytes() == before


def test_vanished_job_gets_its_bitmaps_back_and_is_reported(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb, speed=CRAWL)
        with tb.connect() as monitor:  # cancelled and dismissed behind the daemon's back
            monitor.job_cancel(JOB)
            wait_until(lambda: job_status(monitor) == "concluded", "concluded")
            monitor.job_dismiss(JOB)
        report = recover([tb.status_path])
        job = report.domains[0].jobs[0]
        assert job.decision == Decision.VANISHED
        assert job.note is not None and "never completed" in job.note
        assert report.ok  # the chain QEMU runs is the file's: nothing else to say
        assert_restored(tb)


def test_committed_images_removed_by_someone_else_are_reported(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        with tb.connect() as monitor:  # dismissed, and mid deleted, before any merge
            monitor.job_dismiss(JOB)
            monitor.blockdev_del(MID)
            monitor.blockdev_del("libvirt-2-storage")
        report = recover([tb.status_path])
        problems = report.domains[0].jobs[0].problems
        assert not report.ok and any("left QEMU before their bitmaps" in p for p in problems)
        # What can be restored is: the listed bitmaps record again, the chain is QEMU's.
        assert_chain(assert_file_sound(tb.status_path), TOP, BASE)
        assert {n for n, b in base_bitmaps(tb).items() if b.recording} == {"chk0", "chk1"}
        assert recover_ok(tb) == []


def test_dry_run_changes_nothing_and_shows_the_plan(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        before = tb.status_path.read_bytes(), base_bitmaps(tb)
        report = recover([tb.status_path], dry_run=True)
        assert report.ok and report.domains[0].status == "planned"
        steps = report.domains[0].jobs[0].steps
        assert steps[0] == "record newstate=completed" and "job-dismiss" in steps[2]
        assert (tb.status_path.read_bytes(), base_bitmaps(tb)) == before
        with tb.connect() as monitor:
            assert job_status(monitor) == "concluded"


def test_pivoted_active_commit_makes_base_the_active_image(tmp_path: Path) -> None:
    """The daemon asked for the pivot (state pivoting) and died before it concluded."""
    with started(tmp_path) as tb:
        with StatusStore(tmp_path).owned(tb.name) as owner:
            job = start_commit(owner, "vda", TOP, BASE)
            with tb.connect() as monitor:
                wait_until(lambda: job_status(monitor, job.name) == "ready", "ready")
                doc = owner.load()
                doc.replace_job(replace(job, state=JobState.PIVOTING))
                owner.save(doc)
                monitor.job_complete(job.name)
        wait_concluded(tb, job.name)
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert_chain(assert_file_sound(tb.status_path), BASE)
        with tb.connect() as monitor:
            nodes = monitor.query_nodes()
        assert TOP not in nodes and MID not in nodes
        assert not nodes[BASE].read_only  # base is the active image now
        bitmaps = base_bitmaps(tb)
        # base 1-2M + mid 4-7M + top 12-13M; chk2: mid 6-7M + top 12-13M
        assert counts(bitmaps) == {"chk0": 2 << 20, "chk1": 5 << 20, "chk2": 2 << 20, "bm-off": 0}
        assert {n for n, b in bitmaps.items() if b.recording} == {"chk0", "chk1", "chk2"}


def test_base_left_writable_is_attention_in_a_dry_run_and_made_read_only(tmp_path: Path) -> None:
    """A recovery killed inside base's read-write window, after the merge was recorded."""
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        with tb.connect() as monitor:
            set_read_only(monitor, base_image(tb), False, kept={})
        dry = recover([tb.status_path], dry_run=True)
        assert not dry.ok
        assert dry.domains[0].failed_checks == ["base libvirt-3-format is writable; it must be "
                                                "read-only"]
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert_completed(tb)
