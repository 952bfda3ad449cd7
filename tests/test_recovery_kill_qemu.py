"""A recovery that dies at any step finishes when it runs again (real QEMU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import blockjob
from blockjob.recovery import recover
from blockjob.recovery.execute import StepHook
from blockjob.recovery.steps import Step
from tests.support.qemu_fixtures import JOB, QEMU_MARKS, commit, job_status, started, wait_concluded
from tests.test_recovery_qemu import assert_completed, assert_restored

pytestmark = QEMU_MARKS
REPO = Path(__file__).resolve().parent.parent


class StepInterruptError(Exception):
    """Stands for recovery dying just before a step."""


def interrupt_at(number: int) -> StepHook:
    seen: list[Step] = []

    def hook(step: Step) -> None:
        seen.append(step)
        if len(seen) == number + 1:
            raise StepInterruptError(step)

    return hook


@pytest.mark.parametrize("number", range(5))
def test_completed_commit_interrupted_at_each_step(tmp_path: Path, number: int) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        with pytest.raises(StepInterruptError):
            recover([tb.status_path], on_step=interrupt_at(number))
        blockjob.load(tb.status_path)  # what was saved so far loads
        assert recover([tb.status_path]).ok
        assert_completed(tb)


@pytest.mark.parametrize("number", range(4))
def test_failed_commit_interrupted_at_each_step(tmp_path: Path, number: int) -> None:
    with started(tmp_path, fail_commit=True) as tb:
        commit(tb)
        wait_concluded(tb)
        with pytest.raises(StepInterruptError):
            recover([tb.status_path], on_step=interrupt_at(number))
        assert recover([tb.status_path]).ok
        assert_restored(tb)


KILLER = """
import os, signal, sys
from blockjob.recovery import recover
from blockjob.recovery.steps import Dismiss

def die(step):
    if isinstance(step, Dismiss):
        os.kill(os.getpid(), signal.SIGKILL)

recover([sys.argv[1]], on_step=die)
"""


def test_sigkilled_recovery_process_is_finished_by_the_next_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        killed = subprocess.run([sys.executable, "-c", KILLER, str(tb.status_path)],
                                env=env, cwd=REPO, check=False, timeout=120)
        assert killed.returncode == -signal.SIGKILL
        # Killed after merging and recording the outcome, before job-dismiss.
        job = blockjob.load(tb.status_path).job(JOB)
        assert job is not None and job.newstate == "completed"
        with tb.connect() as monitor:
            assert job_status(monitor) == "concluded"
        rerun = subprocess.run(
            [sys.executable, "-m", "blockjob", "recover", "--json", str(tb.status_path)],
            env=env, cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        domain = json.loads(rerun.stdout)["domains"][0]
        assert [job["decision"] for job in domain["jobs"]] == ["finish-completed"]
        assert_completed(tb)
