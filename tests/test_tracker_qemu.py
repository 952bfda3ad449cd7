"""The live tracker on real QEMU: events saved in libvirt's order, active commit to
pivot, abort, and the same end state as recovery."""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import pytest

import blockjob
from blockjob.demo.lab import Lab
from blockjob.jobs.abort import AbortCrashPoint
from blockjob.jobs.commit import CommitError
from blockjob.jobs.pivot import PivotCrashPoint
from blockjob.jobs.requests import RequestError
from blockjob.model import BlockJob, CommitData, JobState, JobType, PullData
from blockjob.qemu.monitor import Monitor, MonitorUnavailableError, QMPCommandError
from blockjob.recovery import recover
from blockjob.recovery.plan import Decision
from blockjob.recovery.steps import MergeBitmaps, Reenable, Step
from blockjob.store.status_store import DomainBusyError, StatusStore
from blockjob.tracker import JobTracker
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
    commit,
    crash_at,
    job_status,
    started,
    wait_concluded,
    wait_until,
)
from tests.support.tracking import (
    ACTIVE_JOB,
    WAIT,
    Log,
    assert_active_aborted,
    assert_pivoted,
    end_state,
    full_disk,
    gone,
    lab_dir,
    recorder,
    to_end,
    to_ready,
    tracker,
)
from tests.test_recovery_qemu import assert_completed, assert_restored

pytestmark = QEMU_MARKS

def test_a_top_only_checkpoint_is_merged_at_the_pivot_without_a_problem(tmp_path: Path) -> None:
    """A libvirt checkpoint's bitmap lives in the top alone. The pivot merged it into base;
    the finish then took top, mid (without it) and base (with it) for a broken chain and
    reported "invalid chain; not merged" for a merge that had been done."""
    with started(tmp_path) as tb:
        with tb.connect() as monitor:
            monitor.execute("block-dirty-bitmap-add", {"node": TOP, "name": "ck1",
                                                       "persistent": True})
        with tracker(tb) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)
            assert t.pivot(ACTIVE_JOB) == []
            to_end(t, ACTIVE_JOB)
        assert base_bitmaps(tb)["ck1"].recording


def state_on_file(tb: Lab, name: str) -> JobState | None:
    job = blockjob.load(tb.status_path).job(name)
    return job.state if job is not None else None


def test_a_live_commit_saves_newstate_before_any_finishing_step(tmp_path: Path) -> None:
    log: Log = []
    with started(tmp_path) as tb, tracker(tb, **recorder(log)) as t:
        t.start_commit("vda", MID, BASE)
        to_end(t, JOB)
    saves = [entry[1:] for entry in log if entry[0] == "save"]
    assert saves[:3] == [(TOP, "new:-"), (TOP, "running:-"), (TOP, "running:completed")]
    assert saves[-1] == (TOP,)  # job dropped, chain top..base
    first_step = log.index(("step", "MergeBitmaps"))
    assert ("save", TOP, "running:completed") in log[:first_step]


def test_a_live_commit_ends_as_recovery_ends_it(tmp_path: Path) -> None:
    with started(lab_dir(tmp_path, "a")) as live:
        with tracker(live) as t:
            t.start_commit("vda", MID, BASE)
            to_end(t, JOB)
        assert_completed(live)
        live_end = end_state(live)
    with started(lab_dir(tmp_path, "b")) as offline:
        commit(offline)
        wait_concluded(offline)
        assert recover([offline.status_path]).ok
        # Same file bytes but for the labs' directories, monitors and pids; same QEMU.
        assert end_state(offline) == live_end


def test_active_commit_reaches_ready_as_libvirt_writes_it_then_pivots(tmp_path: Path) -> None:
    log: Log = []
    with started(tmp_path) as tb:
        with tracker(tb, **recorder(log)) as t:
            job = t.start_active_commit("vda", BASE)
            assert job.name == ACTIVE_JOB and job.type is JobType.ACTIVE_COMMIT
            assert job.jobflags == 4
            to_ready(t)
            text = tb.status_path.read_text()
            assert (f"<blockjob name='{ACTIVE_JOB}' type='active-commit' state='ready' "
                    "newstate='ready' jobflags='0x4'>") in text
            assert "<mirror type='file' job='active-commit' ready='yes'>" in text
            saves = [entry[2:] for entry in log if entry[0] == "save"]
            # ready has no finishing step: one save, as libvirt 9.0's file has it.
            assert saves[:3] == [("new:-",), ("running:-",), ("ready:ready",)]
            assert t.pivot(ACTIVE_JOB) == []
            assert state_on_file(tb, ACTIVE_JOB) is JobState.PIVOTING
            to_end(t, ACTIVE_JOB)
        assert_pivoted(tb)


def test_pivot_is_refused_before_ready_and_for_a_plain_commit(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_commit("vda", MID, BASE, speed=CRAWL)
            with pytest.raises(RequestError, match="has no mirror to pivot to"):
                t.pivot(JOB)
            with pytest.raises(RequestError, match="no such block job"):
                t.pivot("nope")
            t.abort(JOB)
            to_end(t, JOB)
            with pytest.raises(RequestError, match="no such block job"):
                t.abort(JOB)
            t.doc.add_job(BlockJob(name="ghost", type=JobType.COMMIT, state=JobState.RUNNING))
            with pytest.raises(RequestError, match="has ended \\(unknown to QEMU\\)"):
                t.abort("ghost")
        assert_restored(tb)


@pytest.mark.parametrize(("name", "disk", "message"), [
    (JOB, None, "a block job named .* already exists"),
    ("pull-vda", "vda", "disk 'vda' already has block job"),
    ("pull-vdz", "vdz", "job 'pull-vdz': the domain has no disk 'vdz'"),
], ids=["name", "busy-disk", "no-disk"])
def test_add_job_refuses_a_taken_name_or_disk_and_changes_nothing(
    tmp_path: Path, name: str, disk: str | None, message: str
) -> None:
    with started(tmp_path) as tb, tracker(tb) as t:
        t.start_commit("vda", MID, BASE, speed=CRAWL)
        before = tb.status_path.read_bytes()
        with pytest.raises(RequestError, match=f"cannot add: {message}"):
            t.add_job(BlockJob(name=name, type=JobType.PULL, state=JobState.RUNNING,
                               disk=disk, data=PullData()))
        assert tb.status_path.read_bytes() == before and [j.name for j in t.doc.jobs] == [JOB]
        t.abort(JOB)
        to_end(t, JOB)


def test_abort_of_a_running_commit_reenables_and_records_cancelled(tmp_path: Path) -> None:
    log: Log = []
    with started(tmp_path) as tb:
        with tracker(tb, **recorder(log)) as t:
            t.start_commit("vda", MID, BASE, speed=CRAWL)
            t.abort(JOB)
            assert state_on_file(tb, JOB) is JobState.ABORTING
            to_end(t, JOB)
        assert ("save", TOP, "aborting:cancelled") in log
        assert log.index(("save", TOP, "aborting:cancelled")) < log.index(("step", "Reenable"))
        assert_restored(tb)


def test_abort_of_a_ready_active_commit_keeps_the_chain(tmp_path: Path) -> None:
    log: Log = []
    with started(tmp_path) as tb:
        with tracker(tb, **recorder(log)) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)
            t.abort(ACTIVE_JOB)
            to_end(t, ACTIVE_JOB)
        assert ("save", TOP, "aborting:cancelled") in log
        assert_active_aborted(tb)


def test_the_tracker_owns_the_domain(tmp_path: Path) -> None:
    with (started(tmp_path) as tb, tracker(tb), pytest.raises(DomainBusyError),
          StatusStore(tb.directory).owned(tb.name, timeout=0.1)):
        pass


def test_open_of_an_open_tracker_is_refused_and_it_stays_open(tmp_path: Path) -> None:
    """A failed `open` releases the domain; a second `open` must not close the first."""
    with started(tmp_path) as tb, tracker(tb) as t:
        with pytest.raises(RuntimeError, match="open already"):
            t.open()
        assert t.monitor.query_jobs() == {}
        with pytest.raises(DomainBusyError):
            StatusStore(tb.directory).owned(tb.name, timeout=0.1).__enter__()


def test_events_missed_while_away_are_caught_up_at_connect(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)  # started by a daemon that then went away
        wait_concluded(tb)
        with tracker(tb) as t:
            assert blockjob.load(tb.status_path).jobs == []
            assert [r.decision for r in t.reports] == ["finish-completed"]
        assert_completed(tb)


def test_a_stream_job_recorded_with_add_job_is_followed(tmp_path: Path) -> None:
    name = "pull-vda-libvirt-1-format"
    with started(tmp_path) as tb, tracker(tb) as t:
        t.monitor.execute("block-stream", {
            "job-id": name, "device": TOP, "base-node": BASE, "auto-dismiss": False,
            "speed": CRAWL})
        t.add_job(BlockJob(name=name, type=JobType.PULL, state=JobState.RUNNING, jobflags=0,
                           disk="vda", data=PullData(base="libvirt-3-storage")))
        assert blockjob.load(tb.status_path).job(name) is not None
        t.monitor.execute("block-job-set-speed", {"device": name, "speed": 0})
        to_end(t, name)
        assert_chain(assert_file_sound(tb.status_path), TOP, BASE)
        assert t.monitor.query_jobs() == {}
        assert MID not in t.monitor.query_nodes()


def test_a_commit_ending_beside_a_concluded_pull_of_another_disk_is_finished(
    tmp_path: Path
) -> None:
    """vda's commit concluded, then vdb's pull: the commit's event came first, and its
    finish asked for the node graph while the stream waited for its dismiss. The guard
    that keeps QEMU 7.2 from crashing raised UnsafeQueryError out of `wait_for`; the pull
    is finished first, as a restart orders them."""
    with started(tmp_path, second_disk=True) as tb, tracker(tb) as t:
        t.start_commit("vda", MID, BASE, speed=CRAWL)
        start_pull_of_vdb(t)
        for job in (JOB, VDB_PULL):  # in this order, not followed meanwhile
            conclude(t, job)
        assert t.wait_for(lambda doc: doc.jobs == [], WAIT)
        assert_both_finished(tb, t, TOP, BASE)


def test_a_pivot_beside_a_concluded_pull_of_another_disk_is_done(tmp_path: Path) -> None:
    """The pivot saved `pivoting`, then its merge's graph query met the concluded stream:
    UnsafeQueryError, the job left `pivoting` (which libvirt neither pivots nor aborts)
    with nothing asked of QEMU. The pull is finished first."""
    with started(tmp_path, second_disk=True) as tb, tracker(tb) as t:
        t.start_active_commit("vda", BASE)
        to_ready(t)
        start_pull_of_vdb(t)
        conclude(t, VDB_PULL)
        assert t.pivot(ACTIVE_JOB) == []
        assert t.wait_for(lambda doc: doc.jobs == [], WAIT)
        assert_both_finished(tb, t, BASE)


VDB_PULL = "pull-vdb-libvirt-4-format"


def start_pull_of_vdb(t: JobTracker) -> None:
    """vdb's mid pulled into its top, crawling, recorded with `add_job`."""
    t.monitor.execute("block-stream", {
        "job-id": VDB_PULL, "device": "libvirt-4-format", "base-node": "libvirt-6-format",
        "auto-dismiss": False, "speed": CRAWL})
    t.add_job(BlockJob(name=VDB_PULL, type=JobType.PULL, state=JobState.RUNNING, jobflags=0,
                       disk="vdb", data=PullData(base="libvirt-6-storage")))


def conclude(t: JobTracker, job: str) -> None:
    """Let `job` run to `concluded` in QEMU without following its events."""
    t.monitor.execute("block-job-set-speed", {"device": job, "speed": 0})
    wait_until(lambda: job_status(t.monitor, job) == "concluded", job)


def assert_both_finished(tb: Lab, t: JobTracker, *vda: str) -> None:
    assert [(r.job, r.problems, r.error) for r in t.reports if r.problems or r.error] == []
    assert t.monitor.query_jobs() == {}
    doc = assert_file_sound(tb.status_path)
    assert_chain(doc, *vda)
    vdb = doc.disk("vdb")
    assert vdb is not None and vdb.chain is not None
    assert [image.format_node for image in vdb.chain.images()] == [
        "libvirt-4-format", "libvirt-6-format"]


def test_reenable_and_merge_are_the_steps_recovery_names(tmp_path: Path) -> None:
    """The finish of a live commit is recovery's plan: it names the same steps."""
    steps: list[Step] = []
    with started(tmp_path) as tb, tracker(tb, on_step=steps.append) as t:
        t.start_commit("vda", MID, BASE)
        to_end(t, JOB)
    assert any(isinstance(s, MergeBitmaps) for s in steps)
    assert not any(isinstance(s, Reenable) for s in steps)


def test_recover_reports_the_domain_busy_while_a_tracker_owns_it(tmp_path: Path) -> None:
    with started(tmp_path) as tb, tracker(tb) as t:
        t.start_commit("vda", MID, BASE, speed=CRAWL)
        before = tb.status_path.read_bytes()
        report = recover([tb.status_path], owner_timeout=0.2)
        assert not report.ok
        error = report.domains[0].error or ""
        # Here the tracker is this very thread, which the store says at once.
        assert "domain 'lab1' is already owned by this thread" in error, error
        assert tb.status_path.read_bytes() == before
        t.abort(JOB)
        to_end(t, JOB)


def test_the_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("<!-- section:tracker -->", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md#live-tracking", "exec"), {})
    assert capsys.readouterr().out.strip() == "libvirt-3-format"


def test_an_active_commit_is_not_pivoted_before_ready(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_active_commit("vda", BASE, speed=CRAWL)
            with pytest.raises(RequestError, match="not ready \\(file: running, QEMU: running\\)"):
                t.pivot(ACTIVE_JOB)
            assert state_on_file(tb, ACTIVE_JOB) is JobState.RUNNING  # nothing saved
            t.abort(ACTIVE_JOB)
            to_end(t, ACTIVE_JOB)
        assert_active_aborted(tb)


def test_follow_handles_the_events_that_arrive(tmp_path: Path) -> None:
    with started(tmp_path) as tb, tracker(tb) as t:
        t.start_commit("vda", MID, BASE)
        followed = 0
        for _ in range(600):  # bounded: a broken QEMU must not hang the suite
            if t.doc.job(JOB) is None:
                break
            followed += t.follow(0.1)
        assert t.doc.job(JOB) is None and followed == 1  # concluded; nothing else followed
        assert [r.decision for r in t.reports] == ["finish-completed"]


# Names QEMU takes that the file must give back exactly: XML's specials, non-ASCII, the
# longest QEMU allows (1023 bytes), white space an attribute would normalise.
ODD_NAMES = ["q'\"<&>", "uni-\u00e9\u4e2d", "x" * 1023, "tab\tnl\ncr\r", " lead and trail "]


def add_base_bitmaps(tb: Lab, names: list[str]) -> None:
    with tb.connect() as monitor:
        for name in names:
            monitor.execute("block-dirty-bitmap-add",
                            {"node": BASE, "name": name, "persistent": False})


def test_a_commit_whose_first_save_fails_leaves_the_document_as_the_file(tmp_path: Path) -> None:
    """The document kept the job the file never got: a retry on the disk was refused
    ("already has a block job") and the next save would write a job QEMU never had."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            before = t.doc.dumps()
            with full_disk(t):
                t.start_active_commit("vda", BASE)
            assert t.doc.dumps() == before and t.monitor.query_jobs() == {}
            t.start_active_commit("vda", BASE)
            to_ready(t)
            t.abort(ACTIVE_JOB)
            to_end(t, ACTIVE_JOB)
        assert_active_aborted(tb)


@contextmanager
def late_answer(tb: Lab, monitor: Monitor, command: str) -> Iterator[None]:
    """QEMU stops as `command` is sent and resumes at our next command (or at the end),
    so `command` times out and QEMU then runs it: a late reply, as from a busy QEMU."""
    pid = tb.qemu.pid or 0

    def observe(when: str, sent: str) -> None:
        if when == "before":
            os.kill(pid, signal.SIGSTOP if sent == command else signal.SIGCONT)

    monitor.observer = observe
    try:
        yield
    finally:
        monitor.observer = None
        os.kill(pid, signal.SIGCONT)


def test_a_commit_whose_start_times_out_is_left_to_the_restart(tmp_path: Path) -> None:
    """A `block-commit` that timed out was undone as if QEMU had refused it: base's
    bitmaps re-enabled (and base reopened read-only) under the commit QEMU did start, which
    then dirtied them or failed. An unanswered command undoes nothing: the job stays
    `new` on file and the restart adopts it."""
    with started(tmp_path) as tb:
        with tracker(tb, timeout=0.5) as t:
            with late_answer(tb, t.monitor, "block-commit"), \
                    pytest.raises(MonitorUnavailableError, match="timed out"):
                t.start_commit("vda", MID, BASE)
            # Answered after the late block-commit (QEMU runs a client's commands in order).
            assert JOB in t.monitor.query_jobs()
        assert state_on_file(tb, JOB) is JobState.NEW
        with tracker(tb) as t:
            to_end(t, JOB)
        assert_completed(tb)


def test_an_abort_recorded_over_a_pending_job_is_asked_again_not_finalized(
    tmp_path: Path
) -> None:
    """QEMU cancels a pending job (auto-finalize off): the chain stays. A daemon killed
    between the `aborting` save and `job-cancel` left it pending, and the restart
    finalized it instead: the commit asked to stop completed, mid left the chain."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.monitor.block_commit(JOB, device=TOP, top_node=MID, base_node=BASE,
                                   speed=CRAWL, auto_finalize=False)
            t.add_job(BlockJob(name=JOB, type=JobType.COMMIT, state=JobState.RUNNING,
                               disk="vda", data=CommitData(base=BASE, top=MID, topparent=TOP)))
            t.monitor.execute("block-job-set-speed", {"device": JOB, "speed": 0})
            wait_until(lambda: job_status(t.monitor) == "pending", "the commit pending")
            with pytest.raises(CrashError):
                t.abort(JOB, crash=crash_at(AbortCrashPoint.ABORTING_PERSISTED))
        with tracker(tb) as t:
            assert [(r.job, r.decision) for r in t.reports] == [(JOB, Decision.FAILED)]
            assert t.failed_checks == [] and t.doc.jobs == []
            assert t.monitor.query_jobs() == {}
            assert t.monitor.backing_of() == {TOP: MID, MID: BASE}
        assert_chain(assert_file_sound(tb.status_path), TOP, MID, BASE)


def test_a_finish_whose_save_fails_leaves_the_document_as_the_file(tmp_path: Path) -> None:
    """The concluded commit's outcome, never saved, stayed in the document: the next save
    of anything would have written it, unverified. The document is the file again; the
    job is finished once a save goes through."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_commit("vda", MID, BASE)
            with full_disk(t):
                t.wait_for(gone(JOB), 60)
            assert t.doc.dumps() == tb.status_path.read_bytes()
            job = t.doc.job(JOB)
            assert job is not None and job.newstate is None
            t.reconcile(JOB)
            assert t.doc.job(JOB) is None
        assert_completed(tb)


def test_a_pivot_whose_save_fails_leaves_the_job_ready(tmp_path: Path) -> None:
    """QEMU is asked nothing, and the document keeps what the file says (it said pivoting,
    so an abort was refused as if the pivot had begun)."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)
            with full_disk(t):
                t.pivot(ACTIVE_JOB)
            job = t.doc.job(ACTIVE_JOB)
            assert job is not None and job.state is JobState.READY
            assert job_status(t.monitor, ACTIVE_JOB) == "ready"
            t.abort(ACTIVE_JOB)
            to_end(t, ACTIVE_JOB)
        assert_active_aborted(tb)


def test_odd_bitmap_names_are_reenabled_after_a_daemon_restart(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        add_base_bitmaps(tb, ODD_NAMES)
        with tracker(tb) as t:
            job = t.start_commit("vda", MID, BASE, speed=CRAWL)
        assert set(ODD_NAMES) <= set(job.disabled_base_bitmaps)
        listed = blockjob.load(tb.status_path).job(JOB)
        assert listed is not None and listed.disabled_base_bitmaps == job.disabled_base_bitmaps
        with tb.connect() as monitor:  # the commit ends while no daemon listens
            monitor.execute("block-job-set-speed", {"device": JOB, "speed": 0})
        wait_concluded(tb)
        with tracker(tb) as t:
            assert t.doc.jobs == [] and t.failed_checks == []
            assert [(r.decision, r.problems) for r in t.reports] == [("finish-completed", [])]
        bitmaps = base_bitmaps(tb)
        assert all(bitmaps[name].recording for name in ODD_NAMES)


def test_a_bitmap_name_the_file_cannot_hold_refuses_the_commit(tmp_path: Path) -> None:
    """libvirt drops control characters when it writes: `a\x01b` would be listed as `ab`,
    and a restart would leave `a\x01b` disabled forever. Refused before anything is done."""
    with started(tmp_path) as tb:
        add_base_bitmaps(tb, ["a\x01b"])
        before = tb.status_path.read_bytes()
        with tracker(tb) as t:
            with pytest.raises(CommitError, match=r"bitmap 'a\\x01b' of base .* cannot hold"):
                t.start_commit("vda", MID, BASE)
            assert t.monitor.query_jobs() == {} and t.doc.jobs == []
        assert tb.status_path.read_bytes() == before
        bitmaps = base_bitmaps(tb)
        assert all(bitmaps[name].recording for name in ("a\x01b", "chk0", "chk1"))
        with tb.connect() as monitor:
            assert monitor.query_nodes()[BASE].read_only


def test_abort_of_a_job_being_pivoted_is_refused(tmp_path: Path) -> None:
    """A pivot stopped after the merge (job-complete refused, say) leaves base with the
    committed images' bitmaps; an abort then would keep the chain with those bitmaps.
    libvirt refuses it ("still being ended"), and so does the tracker: nothing saved."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)
            with pytest.raises(CrashError):
                t.pivot(ACTIVE_JOB, crash=crash_at(PivotCrashPoint.BITMAPS_MERGED))
            with pytest.raises(RequestError, match="it is being pivoted"):
                t.abort(ACTIVE_JOB)
            assert state_on_file(tb, ACTIVE_JOB) is JobState.PIVOTING
            assert job_status(t.monitor, ACTIVE_JOB) == "ready"
            t.pivot(ACTIVE_JOB)
            to_end(t, ACTIVE_JOB)
        assert_pivoted(tb)


def export_top_with_chk1(t: JobTracker, directory: Path) -> None:
    """An NBD export of top with its chk1 (a pull backup, say): chk1 is busy meanwhile, so
    QEMU refuses the pivot's merge of it into base."""
    t.monitor.execute("nbd-server-start", {
        "addr": {"type": "unix", "data": {"path": str(directory / "nbd.sock")}}})
    t.monitor.execute("block-export-add", {"type": "nbd", "id": "backup", "node-name": TOP,
                                           "writable": True, "bitmaps": ["chk1"]})


def test_a_pivot_whose_merge_qemu_refuses_leaves_the_job_ready(tmp_path: Path) -> None:
    """Nothing changed in QEMU, so the file says ready again and an abort is allowed (it
    said pivoting, and the job could be neither pivoted nor aborted)."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            export_top_with_chk1(t, tmp_path)
            t.start_active_commit("vda", BASE)
            to_ready(t)
            with pytest.raises(QMPCommandError, match="'chk1' is currently in use"):
                t.pivot(ACTIVE_JOB)
            assert state_on_file(tb, ACTIVE_JOB) is JobState.READY
            t.abort(ACTIVE_JOB)
            to_end(t, ACTIVE_JOB)
            t.monitor.execute("block-export-del", {"id": "backup"})
        assert_active_aborted(tb)


def test_a_job_complete_qemu_refuses_leaves_the_job_ready(tmp_path: Path) -> None:
    """Someone cancelled the ready job (`block-job-cancel`) while the pivot merged: QEMU
    refuses `job-complete` and concludes without pivoting. Left recorded as pivoting,
    the job was finished as completed (no device tells otherwise): the file's chain
    became base alone, with no problem reported, while QEMU still runs top. Recorded as
    it was (ready), it is finished as cancelled and the chain stays."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)

            def cancel(point: PivotCrashPoint) -> None:
                if point is PivotCrashPoint.BITMAPS_MERGED:
                    t.monitor.execute("block-job-cancel", {"device": ACTIVE_JOB})

            with pytest.raises(QMPCommandError, match="job-complete"):
                t.pivot(ACTIVE_JOB, crash=cancel)
            assert state_on_file(tb, ACTIVE_JOB) is JobState.READY
            to_end(t, ACTIVE_JOB)
        assert_chain(assert_file_sound(tb.status_path), TOP, MID, BASE)
        with tb.connect() as monitor:
            assert monitor.query_jobs() == {}
            assert {TOP, MID, BASE} <= set(monitor.query_nodes())


def test_a_pivot_asked_again_at_open_that_qemu_refuses_does_not_fail_the_open(
    tmp_path: Path,
) -> None:
    """The catch-up reports it and the domain stays tracked (the open raised, so no
    tracker could open the domain while the bitmap was busy); asked again later, it ends."""
    with started(tmp_path) as tb:
        with pytest.raises(CrashError), tracker(tb) as t:
            export_top_with_chk1(t, tmp_path)
            t.start_active_commit("vda", BASE)
            to_ready(t)
            t.pivot(ACTIVE_JOB, crash=crash_at(PivotCrashPoint.PIVOTING_PERSISTED))
        with tracker(tb) as t:
            errors = [r.error or "" for r in t.reports if r.error]
            assert len(errors) == 1 and "'chk1' is currently in use" in errors[0], errors
            assert state_on_file(tb, ACTIVE_JOB) is JobState.PIVOTING
            t.monitor.execute("block-export-del", {"id": "backup"})
            t.pivot(ACTIVE_JOB)
            assert t.wait_for(gone(ACTIVE_JOB), 60)
        assert_pivoted(tb)


@pytest.mark.parametrize("wait", [10.0, math.inf], ids=["10s", "endless"])
@pytest.mark.parametrize("how", ["follow", "wait_for"])
def test_qemu_gone_while_following_is_raised(tmp_path: Path, how: str, wait: float) -> None:
    """README `Live tracking`: QEMU gone is raised from `follow` / `wait_for` (before, both
    waited out their timeout and returned as if no event had come). An endless wait is
    one (the socket's own timeout overflowed at 1e300 or inf); NaN ends no wait."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_commit("vda", MID, BASE, speed=CRAWL)
            with pytest.raises(ValueError, match="timeout=nan is not a number of seconds"):
                t.follow(math.nan) if how == "follow" else t.wait_for(gone(JOB), math.nan)
            tb.qemu.kill()
            # EOF or a reset, depending on what QEMU left unread when it died.
            with pytest.raises(MonitorUnavailableError, match="QEMU monitor unavailable"):
                if how == "follow":
                    t.follow(wait)
                else:
                    t.wait_for(gone(JOB), wait)
        assert state_on_file(tb, JOB) is JobState.RUNNING  # what the next daemon finds


@pytest.mark.parametrize(("request_", "recorded", "check"), [
    ("pivot", JobState.PIVOTING, assert_pivoted),
    ("abort", JobState.ABORTING, assert_active_aborted)], ids=["pivot", "abort"])
def test_a_request_is_on_file_before_qemu_is_asked(
    tmp_path: Path, request_: str, recorded: JobState, check: Callable[..., None]
) -> None:
    """At each crash point of pivot and abort: what the file says, what QEMU says."""
    seen: list[tuple[str, JobState | None, str | None]] = []
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)

            def look(point: StrEnum) -> None:
                seen.append((str(point), state_on_file(tb, ACTIVE_JOB),
                             job_status(t.monitor, ACTIVE_JOB)))

            getattr(t, request_)(ACTIVE_JOB, crash=look)
            to_end(t, ACTIVE_JOB)
        check(tb)
    # Saved while QEMU's job is still ready: nothing was asked of it yet.
    assert seen[0][1:] == (recorded, "ready")
    assert [entry[1] for entry in seen] == [recorded] * len(seen)
    if request_ == "pivot":  # merged into base, and still nothing asked of the job
        assert seen[1] == ("bitmaps-merged", recorded, "ready")


def recorded_as_unusable(doc: blockjob.StatusDocument) -> bool:
    job = doc.job(JOB)
    return job is not None and job.commit is not None and job.commit.top == job.commit.base


def test_a_tracker_acknowledges_a_record_of_unusable_bitmaps(tmp_path: Path) -> None:
    """The record blocks new commits on its disk; `recover --acknowledge` would wait for
    the tracker's lock, so the tracker lets go of it itself."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_commit("vda", MID, BASE, speed=CRAWL)
            # A listed bitmap removed meanwhile (QEMU serves the tracker's connection only),
            # while the job still holds base read-write: once it ends, base is read-only
            # and its bitmaps cannot be removed (a full-speed commit often ended first).
            t.monitor.execute("block-dirty-bitmap-remove", {"node": BASE, "name": "chk0"})
            t.monitor.execute("block-job-set-speed", {"device": JOB, "speed": 0})
            assert t.wait_for(recorded_as_unusable, WAIT), "the commit never finished"
            problem = "bitmap 'chk0' is gone from libvirt-3-format; nothing to re-enable"
            assert problem in t.reports[-1].problems
            record = t.doc.job(JOB)
            assert record is not None and record.disabled_base_bitmaps == ("chk0",)
            with pytest.raises(RequestError, match="not a record"):
                t.acknowledge("no-such-job")
            with pytest.raises(CommitError):
                t.start_commit("vda", MID, BASE)  # the record holds the disk
            report = t.acknowledge(JOB)
            assert report.acknowledged == [problem] and report.problems == []
            assert t.doc.job(JOB) is None and blockjob.load(tb.status_path).job(JOB) is None
            assert_chain(assert_file_sound(tb.status_path), TOP, BASE)
        assert recover([tb.status_path]).ok
        assert {n for n, b in base_bitmaps(tb).items() if b.recording} == {"chk1", "chk2"}


def test_only_a_record_of_unusable_bitmaps_is_acknowledged(tmp_path: Path) -> None:
    with started(tmp_path) as tb, tracker(tb) as t:
        job = t.start_commit("vda", MID, BASE, speed=CRAWL)
        before = tb.status_path.read_bytes()
        with pytest.raises(RequestError, match=f"job '{job.name}' is not a record"):
            t.acknowledge(job.name)
        assert tb.status_path.read_bytes() == before and t.doc.job(job.name) == job
