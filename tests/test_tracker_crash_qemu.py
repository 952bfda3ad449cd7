"""A daemon killed at every named crash point of an active commit's start, pivot and
abort: after a restart (a new tracker: recovery's state machine, then the recorded
request asked again) the end state is the uninterrupted flow's (real QEMU)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import pytest

import blockjob
from blockjob.jobs.abort import AbortCrashPoint
from blockjob.jobs.commit import CrashPoint
from blockjob.jobs.pivot import PivotCrashPoint
from blockjob.model import JobState
from blockjob.recovery import recover
from blockjob.tracker import JobTracker
from tests.support.qemu_fixtures import BASE, CRAWL, JOB, MID, QEMU_MARKS, CrashError, started
from tests.support.tracking import (
    ACTIVE_JOB,
    assert_active_aborted,
    assert_pivoted,
    to_end,
    to_ready,
    tracker,
)
from tests.test_recovery_qemu import assert_restored

pytestmark = QEMU_MARKS


def crash_at(point: StrEnum) -> Callable[[StrEnum], None]:
    def hook(reached: StrEnum) -> None:
        if reached is point:
            raise CrashError(point)
    return hook


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


@pytest.mark.parametrize("point", list(CrashPoint), ids=str)
def test_killed_while_starting(tmp_path: Path, point: CrashPoint) -> None:
    with started(tmp_path) as tb:
        with pytest.raises(CrashError), tracker(tb) as t:
            t.start_active_commit("vda", BASE, crash=crash_at(point))
        blockjob.load(tb.status_path)  # what was saved so far loads
        with tracker(tb) as t:
            pivot_after_restart(t)
        assert_pivoted(tb)


REQUESTS = [
    *[("pivot", point, JobState.PIVOTING, assert_pivoted) for point in PivotCrashPoint],
    *[("abort", point, JobState.ABORTING, assert_active_aborted) for point in AbortCrashPoint],
]


@pytest.mark.parametrize(("request_", "point", "recorded", "check"), REQUESTS,
                         ids=[str(r[1]) for r in REQUESTS])
def test_killed_while_pivoting_or_aborting(
    tmp_path: Path, request_: str, point: StrEnum, recorded: JobState,
    check: Callable[..., None],
) -> None:
    with started(tmp_path) as tb:
        with pytest.raises(CrashError), tracker(tb) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)
            getattr(t, request_)(ACTIVE_JOB, crash=crash_at(point))
        job = blockjob.load(tb.status_path).job(ACTIVE_JOB)
        assert job is not None and job.state is recorded
        with tracker(tb) as t:
            to_end(t, ACTIVE_JOB)
        check(tb)


@pytest.mark.parametrize("point", list(AbortCrashPoint), ids=str)
def test_killed_while_aborting_a_plain_commit(tmp_path: Path, point: AbortCrashPoint) -> None:
    with started(tmp_path) as tb:
        with pytest.raises(CrashError), tracker(tb) as t:
            t.start_commit("vda", MID, BASE, speed=CRAWL)
            t.abort(JOB, crash=crash_at(point))
        with tracker(tb) as t:
            to_end(t, JOB)
        assert_restored(tb)


@pytest.mark.parametrize(("request_", "check"), [
    ("pivot", assert_pivoted), ("abort", assert_active_aborted)], ids=["pivot", "abort"])
def test_recover_alone_finishes_a_request_qemu_accepted(
    tmp_path: Path, request_: str, check: Callable[..., None]
) -> None:
    """Once QEMU has the job-complete or job-cancel, `blockjob recover` needs no daemon."""
    last = PivotCrashPoint.COMPLETE_SENT if request_ == "pivot" else AbortCrashPoint.CANCEL_SENT
    with started(tmp_path) as tb:
        with pytest.raises(CrashError), tracker(tb) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)
            getattr(t, request_)(ACTIVE_JOB, crash=crash_at(last))
        report = recover([tb.status_path])
        assert report.ok, [line for d in report.domains for line in d.lines()]
        check(tb)
