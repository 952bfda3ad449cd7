"""Two recoveries of one domain, a monitor held by another client, foreign job types,
a concluded stream job, and SIGKILLed recovery processes (real QEMU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from blockjob.recovery import Decision, recover
from tests.support.qemu_fixtures import (
    BASE,
    CRAWL,
    JOB,
    QEMU_MARKS,
    TOP,
    commit,
    job_status,
    started,
    wait_concluded,
)
from tests.test_recovery_qemu import assert_completed

pytestmark = QEMU_MARKS
REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blockjob", "recover", "--json", *args],
                          env=ENV, cwd=REPO, check=False, capture_output=True, text=True,
                          timeout=120)


def test_two_simultaneous_recoveries_end_right(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        runs = [subprocess.Popen(
            [sys.executable, "-m", "blockjob", "recover", "--json", str(tb.status_path)],
            env=ENV, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        decisions = sorted(d["decision"] for o in outputs for d in o["domains"][0]["jobs"])
        assert decisions == ["finish-completed"]  # the second found the work done
        assert_completed(tb)


def test_held_monitor_is_reported_busy_and_the_file_untouched(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        before = tb.status_path.read_bytes()
        with tb.connect():  # another client holds QEMU's only monitor connection
            done = _cli("--connect-timeout", "0.5", str(tb.status_path))
        assert done.returncode == 1
        error = json.loads(done.stdout)["domains"][0]["error"]
        assert "busy: held by another client" in error and "0.5 s" in error
        assert tb.status_path.read_bytes() == before


def test_two_recoveries_waiting_for_a_held_monitor_end_right(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        holder = tb.connect()
        results: list[bool] = []
        threads = [threading.Thread(
            target=lambda: results.append(recover([tb.status_path], connect_timeout=20).ok))
            for _ in range(2)]
        for thread in threads:
            thread.start()
        wait_for_file_lock = threading.Event()
        wait_for_file_lock.wait(0.5)  # both are waiting: one for the monitor, one for the lock
        holder.close()
        for thread in threads:
            thread.join(120)
        assert results == [True, True]
        assert_completed(tb)


def test_foreign_job_type_changes_nothing(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb, speed=CRAWL)
        with tb.connect() as monitor:
            monitor.job_cancel(JOB)
        wait_concluded(tb)
        with tb.connect() as monitor:
            monitor.job_dismiss(JOB)
            # Under the recorded commit's id, QEMU now runs a stream job.
            monitor.execute("block-stream", {"job-id": JOB, "device": TOP, "base-node": BASE,
                                             "speed": CRAWL, "auto-dismiss": False})
        before = tb.status_path.read_bytes()
        for dry_run in (True, False):
            report = recover([tb.status_path], dry_run=dry_run)
            job = report.domains[0].jobs[0]
            assert not report.ok and job.decision == Decision.FOREIGN and job.steps == []
            assert "stream" in job.problems[0]
        assert tb.status_path.read_bytes() == before
        with tb.connect() as monitor:
            assert job_status(monitor) == "running"
            assert {b.name for b in monitor.query_nodes()[BASE].bitmaps if b.recording} == set()


KILLER = """
import os, signal, sys
from blockjob.recovery import recover
seen = []
def die(when, what):
    seen.append((when, what))
    if len(seen) == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
recover([sys.argv[1]], probe=die)
"""


def test_sigkilled_recovery_processes_are_finished_by_the_next_run(tmp_path: Path) -> None:
    # Inside the read-write window of base (after its reopen), and between two blockdev-del;
    # test_recovery_kill_qemu.py SIGKILLs before job-dismiss.
    for number, point in enumerate((16, 30)):
        with started(tmp_path / str(number)) as tb:
            commit(tb)
            wait_concluded(tb)
            killed = subprocess.run([sys.executable, "-c", KILLER, str(tb.status_path),
                                     str(point)], env=ENV, cwd=REPO, check=False, timeout=120)
            assert killed.returncode == -signal.SIGKILL
            rerun = _cli(str(tb.status_path))
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
            assert_completed(tb)
            assert _cli(str(tb.status_path)).returncode == 0
