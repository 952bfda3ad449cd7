"""A daemon killed at every named crash point of an active commit's start, pivot and
abort: after a restart (a new tracker: recovery's state machine, then the recorded
request asked again) the end state is the uninterrupted flow's (real QEMU).

The daemon of the active commit is a separate process (`tests/support/tracker_kill.py`)
that SIGKILLs itself at the crash point, so nothing of it runs after: no `finally`, no
`close`; the kernel drops its lock and QMP connection. The plain-commit abort and the
`recover`-alone tests stop the flow with an exception inside this process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import pytest

import blockjob
from blockjob.demo.lab import Lab
from blockjob.jobs.abort import AbortCrashPoint
from blockjob.jobs.commit import CrashPoint
from blockjob.jobs.pivot import PivotCrashPoint
from blockjob.model import JobState
from blockjob.recovery import Decision, recover
from blockjob.tracker import JobTracker
from tests.support.campaign import fuzz_only
from tests.support.finish_lab import backup_job, exports, record_pull, start_pull
from tests.support.qemu_fixtures import (
    BASE,
    CRAWL,
    JOB,
    MID,
    QEMU_MARKS,
    CrashError,
    crash_at,
    started,
)
from tests.support.tracker_kill import killed_after_open
from tests.support.tracking import (
    ACTIVE_JOB,
    assert_active_aborted,
    assert_pivoted,
    to_end,
    to_ready,
    tracker,
)
from tests.test_recovery_qemu import assert_restored

KILL_SCRIPT = Path(__file__).resolve().parent / "support" / "tracker_kill.py"

pytestmark = QEMU_MARKS


def pivot_after_restart(t: JobTracker) -> None:
    """What the daemon does after a restart: its commit (started again if recovery found
    it never reached QEMU) runs to ready and is pivoted."""
    if t.doc.job(ACTIVE_JOB) is None:
        t.start_active_commit("vda", BASE)
    to_ready(t)
    t.pivot(ACTIVE_JOB)
    to_end(t, ACTIVE_JOB)


def test_the_uninterrupted_flow_is_the_reference(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            pivot_after_restart(t)
        assert_pivoted(tb)


@pytest.mark.parametrize("point", list(AbortCrashPoint), ids=str)
def test_killed_while_aborting_a_plain_commit(tmp_path: Path, point: AbortCrashPoint) -> None:
    with started(tmp_path) as tb:
        with pytest.raises(CrashError), tracker(tb) as t:
            t.start_commit("vda", MID, BASE, speed=CRAWL)
            t.abort(JOB, crash=crash_at(point))
        with tracker(tb) as t:
            to_end(t, JOB)
        assert_restored(tb)


def sigkilled(tb: Lab, flow: str, point: StrEnum) -> None:
    """Run the daemon process of `flow` on the lab; it must die by SIGKILL at `point`."""
    done = subprocess.run([sys.executable, str(KILL_SCRIPT), str(tb.status_path), flow,
                           str(point)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr)


KILLS = [
    *[("start", point, assert_pivoted) for point in CrashPoint],
    *[("pivot", point, assert_pivoted) for point in PivotCrashPoint],
    *[("abort", point, assert_active_aborted) for point in AbortCrashPoint],
]
RECORDED = {"start": {JobState.NEW, JobState.RUNNING}, "pivot": {JobState.PIVOTING},
            "abort": {JobState.ABORTING}}


@pytest.mark.parametrize(("flow", "point", "check"), KILLS, ids=[f"{k[0]}-{k[1]}" for k in KILLS])
def test_sigkill_of_the_daemon_process_then_a_new_tracker_finishes(
    tmp_path: Path, flow: str, point: StrEnum, check: Callable[..., None],
) -> None:
    with started(tmp_path) as tb:
        sigkilled(tb, flow, point)
        job = blockjob.load(tb.status_path).job(ACTIVE_JOB)
        assert job is not None and job.state in RECORDED[flow]
        with tracker(tb, lock_timeout=1.0) as t:  # the dead process holds no lock
            if flow == "start":
                pivot_after_restart(t)
            else:
                to_end(t, ACTIVE_JOB)
        check(tb)


# Recorded and never sent, or sent (bitmaps-merged is pivoting-persisted's path again).
RECORDED_REQUESTS = [
    ("pivot", PivotCrashPoint.PIVOTING_PERSISTED, assert_pivoted),
    ("pivot", PivotCrashPoint.COMPLETE_SENT, assert_pivoted),
    *[("abort", point, assert_active_aborted) for point in AbortCrashPoint],
]


@pytest.mark.parametrize(("flow", "point", "check"), RECORDED_REQUESTS,
                         ids=[f"{k[0]}-{k[1]}" for k in RECORDED_REQUESTS])
def test_blockjob_recover_alone_finishes_a_recorded_request(
    tmp_path: Path, flow: str, point: StrEnum, check: Callable[..., None]
) -> None:
    """`blockjob recover` needs no daemon once QEMU has the job-complete or job-cancel,
    nor before: a pivot or abort recorded but never sent was adopted as it was, and
    libvirt 9.0, which never asks it again and refuses both on a job `pivoting` or
    `aborting` ("still being ended"), then kept the job forever. recover asks it."""
    with started(tmp_path) as tb:
        sigkilled(tb, flow, point)
        done = subprocess.run([sys.executable, "-m", "blockjob", "recover",
                               str(tb.status_path)], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        check(tb)


def test_a_recorded_pivot_of_a_job_qemu_holds_paused_is_attention_until_resumed(
    tmp_path: Path,
) -> None:
    """A pivot recorded but never sent, of a job someone paused since (`standby`): QEMU
    takes no job-complete then, and libvirt 9.0 refuses to pivot or abort a `pivoting`
    job until QEMU says ready. recover adopted it and said ok; now it changes nothing and
    says why (exit 1), and once the job is resumed it asks the pivot again."""
    with started(tmp_path) as tb:
        sigkilled(tb, "pivot", PivotCrashPoint.PIVOTING_PERSISTED)
        with tb.connect() as monitor:
            monitor.execute("job-pause", {"id": ACTIVE_JOB})
            assert monitor.query_jobs()[ACTIVE_JOB].status == "standby"
        before = tb.status_path.read_bytes()
        report = recover([tb.status_path])
        assert [(job.decision, job.qemu_status) for domain in report.domains
                for job in domain.jobs] == [(Decision.HELD, "standby")]
        assert not report.ok and tb.status_path.read_bytes() == before
        with tb.connect() as monitor:
            monitor.execute("job-resume", {"id": ACTIVE_JOB})
        assert recover([tb.status_path]).ok
        assert_pivoted(tb)


def killed_at_random(tb: Lab, flow: str, delay: float) -> None:
    """Run the daemon process of `flow` (start, ready, request, follow to the end) and
    SIGKILL it `delay` seconds after its tracker is open: anywhere, not at a named point."""
    killed_after_open(str(tb.status_path), flow, delay)


def finish_after_restart(t: JobTracker, flow: str) -> None:
    """A restarted daemon that still wants `flow`: a commit recovery dropped (or that never
    started) is started again unless the disk already runs on base, then the request is
    asked unless the file records it, and the job is followed to its end."""
    disk = t.doc.disk("vda")
    if t.doc.job(ACTIVE_JOB) is None and disk is not None and disk.chain is not None \
            and disk.chain.format_node != BASE:
        t.start_active_commit("vda", BASE)
    job = t.doc.job(ACTIVE_JOB)
    if job is not None and job.state not in (JobState.PIVOTING, JobState.ABORTING):
        to_ready(t)
        (t.pivot if flow == "pivot" else t.abort)(ACTIVE_JOB)
    to_end(t, ACTIVE_JOB)


# The flows take 30-50 ms on the dev VM once the tracker is open; the instants cover
# them and a little after. Seeds make each instant reproducible (the test id has it).
RANDOM_KILLS = int(os.environ.get("BLOCKJOB_TRACKER_KILLS", "40"))
CHECKS = {"pivot": assert_pivoted, "abort": assert_active_aborted}


def kill_anywhere_then_restart(tmp_path: Path, flow: str, seed: int) -> None:
    if flow == "backup":
        kill_anywhere_in_a_backup_then_restart(tmp_path, seed)
        return
    with started(tmp_path) as tb:
        killed_at_random(tb, flow, random.Random(seed).uniform(0.0, 0.06))
        with tracker(tb, lock_timeout=5.0) as t:
            finish_after_restart(t, flow)
        CHECKS[flow](tb)


def kill_anywhere_in_a_backup_then_restart(tmp_path: Path, seed: int) -> None:
    """A pull backup of two disks, one job cancelled under the tracker: wherever the daemon
    dies, the restarted one (cancelling vda's job again if it never reached QEMU) ends the
    whole backup, vdb's job cancelled too, as libvirt 9.0 does."""
    with started(tmp_path, second_disk=True) as tb:
        with tb.connect() as monitor:
            vda = start_pull(monitor, tb, "vda", 1, 9)
            vdb = start_pull(monitor, tb, "vdb", 4, 10)
        record_pull(tb, [("vda", 1, vda, 9), ("vdb", 4, vdb, 10)])
        killed_at_random(tb, "backup", random.Random(seed).uniform(0.0, 0.06))
        with tracker(tb, lock_timeout=5.0) as t:
            first = backup_job("vda", 1)
            qjob = t.monitor.query_jobs().get(first)
            if qjob is not None and qjob.status == "running":
                t.monitor.job_cancel(first)
            assert t.wait_for(lambda doc: not doc.jobs, 60), t.reports
        with tb.connect() as monitor:  # a fresh look
            assert monitor.query_jobs() == {} and exports(monitor) == {}
        text = tb.status_path.read_bytes()
        assert b"<backups>" not in text and b"async='backup'" not in text


@pytest.mark.parametrize(("flow", "seed"), [("pivot", 1), ("abort", 2), ("backup", 3)])
def test_sigkill_at_a_random_instant_then_a_new_tracker_finishes(
    tmp_path: Path, flow: str, seed: int
) -> None:
    kill_anywhere_then_restart(tmp_path, flow, seed)


@fuzz_only
@pytest.mark.parametrize("flow", ["pivot", "abort", "backup"])
@pytest.mark.parametrize("seed", range(RANDOM_KILLS))
def test_sigkill_at_many_random_instants(tmp_path: Path, flow: str, seed: int) -> None:
    kill_anywhere_then_restart(tmp_path, flow, seed)
