"""Concurrency on real QEMU: writers that take no lock of ours (libvirt) beside a tracker
and a recovery, two `blockjob recover` processes over the same domains with one of them
SIGKILLed anywhere, a tracker killed while a recovery and a restarted tracker wait for its
domain, lock files changed under a tracker, and lock-less readers polling all along."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from blockjob.cli import main
from blockjob.recovery import recover
from blockjob.recovery.execute import Probe
from blockjob.store.lock import lock_file_of
from blockjob.store.status_store import StoreConflictError
from tests.support.campaign import FUZZ_ONLY, fuzz_only
from tests.support.concurrent_lab import (
    ENV,
    FLOWS,
    REPO,
    domains,
    end_state,
    libvirt_saves,
    lockless_readers,
)
from tests.support.qemu_fixtures import (
    BASE,
    CRAWL,
    JOB,
    MID,
    QEMU_MARKS,
    commit,
    started,
    wait_concluded,
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
from tests.test_recovery_qemu import assert_completed, assert_restored
from tests.test_tracker_crash_qemu import CHECKS, finish_after_restart

pytestmark = QEMU_MARKS
# Only keeps a broken implementation from hanging the suite; nothing here is timed.
LIMIT = 120.0


@pytest.mark.parametrize("request_", ["pivot", "abort"])
def test_a_request_refused_over_a_file_libvirt_rewrote_can_be_asked_again(
    tmp_path: Path, request_: str
) -> None:
    # Was refused for ever: the tracker kept the document it had, whose version the file
    # no longer was, and only a new tracker could ask again.
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)
            theirs = libvirt_saves(tb.status_path, "saved while the job was ready")
            with pytest.raises(StoreConflictError, match="not saved: the file was replaced"):
                getattr(t, request_)(ACTIVE_JOB)
            assert tb.status_path.read_bytes() == theirs  # libvirt's file is never lost
            assert t.doc.dumps() == theirs  # the document is the file again
            getattr(t, request_)(ACTIVE_JOB)
            to_end(t, ACTIVE_JOB)
        (assert_pivoted if request_ == "pivot" else assert_active_aborted)(tb)
        assert b"<!-- libvirt: saved while the job was ready -->" in tb.status_path.read_bytes()


def test_a_tracker_whose_catch_up_meets_libvirts_save_holds_the_file(tmp_path: Path) -> None:
    # Was: the catch-up at open went on after the refused save, so the tracker held a
    # document whose job had ended (dropped) while the file, libvirt's, still recorded it.
    with started(tmp_path) as tb:
        commit(tb)  # started by a daemon that then went away
        wait_concluded(tb)
        written: list[bytes] = []

        def on_save(_doc: object) -> None:  # libvirt saves right after the first save
            if not written:
                written.append(libvirt_saves(tb.status_path, "saved during the catch-up"))

        with tracker(tb, on_save=on_save) as t:
            assert any("not saved: the file was replaced" in check
                       for check in t.failed_checks), t.failed_checks
            assert tb.status_path.read_bytes() == written[0]
            assert t.doc.dumps() == written[0] and t.doc.job(JOB) is not None
            t.reconcile(JOB)  # what the daemon does for a job it still holds
            assert t.doc.job(JOB) is None
        assert_completed(tb)
        assert b"<!-- libvirt: saved during the catch-up -->" in tb.status_path.read_bytes()


# --- two `blockjob recover` processes over the same domains, one SIGKILLed -----------

KILLER = REPO / "tests" / "support" / "recover_killer.py"
# Flow -> its end state after one uninterrupted `recover`, and the points (before and after
# each QMP command and save) that run passed.
_REFERENCE: dict[str, tuple[dict[str, object], int]] = {}


def _appender(points: list[tuple[str, str]]) -> Probe:
    return lambda when, what: points.append((when, what))


def _reference(tmp_path: Path, flows: list[str]) -> tuple[dict[str, dict[str, object]], int]:
    """Each flow's end state after one uninterrupted `recover` of its domain, and the
    points of such runs of all of `flows`."""
    for flow in flows:
        if flow not in _REFERENCE:
            place = tmp_path / f"r{FLOWS.index(flow)}"
            with domains(place, [flow], place / "status") as (tb,):
                points: list[tuple[str, str]] = []
                assert recover([tb.status_path], probe=_appender(points)).ok
                _REFERENCE[flow] = end_state(tb), len(points)
    return ({flow: _REFERENCE[flow][0] for flow in flows},
            sum(_REFERENCE[flow][1] for flow in flows))


@contextmanager
def _reaped(procs: list[subprocess.Popen[str]]) -> Iterator[list[subprocess.Popen[str]]]:
    """`procs`, each killed on exit if it still runs (a test that failed early)."""
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _recover(*args: str) -> list[str]:
    return [sys.executable, "-m", "blockjob", "recover", "--json", *args]


def two_recoveries_one_killed(tmp_path: Path, flows: list[str], seed: int) -> None:
    """`recover DIR` and `recover FILE...` (in another order, each with its own --jobs) at
    once over the domains of `flows`, one of them SIGKILLed at a random point, lock-less
    readers polling: the other exits 0 having reconciled every domain, a rerun too, and
    every domain ends as one uninterrupted run leaves it; one more run changes nothing."""
    rng = random.Random(seed)
    expected, points = _reference(tmp_path, flows)
    status = tmp_path / "status"
    with domains(tmp_path / "run", flows, status) as labs, lockless_readers(status) as read:
        files = [str(tb.status_path) for tb in labs]
        rng.shuffle(files)
        commands = [_recover("--jobs", str(rng.randint(1, 4)), str(status)),
                    _recover("--jobs", str(rng.randint(1, 4)), *files)]
        # The victim passes fewer points than a whole run (the other takes some domains).
        victim, point = rng.randrange(2), rng.randrange(points)
        commands[victim][1:4] = [str(KILLER), str(point)]
        with _reaped([subprocess.Popen(command, env=ENV, cwd=REPO, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
                      for command in commands]) as procs:
            outputs = [proc.communicate(timeout=LIMIT) for proc in procs]
        where = f"seed {seed}: process {victim} killed at point {point}"
        assert procs[victim].returncode in (0, -signal.SIGKILL), (where, outputs[victim])
        survivor = procs[1 - victim]
        assert survivor.returncode == 0, (where, outputs[1 - victim])
        statuses = [d["status"] for d in json.loads(outputs[1 - victim][0])["domains"]]
        assert statuses == ["reconciled"] * len(flows), where
        assert main(["recover", str(status)]) == 0, where
        for flow, tb in zip(flows, labs, strict=True):
            assert end_state(tb) == expected[flow], f"{where}: {flow} ({tb.name})"
        before = [tb.status_path.read_bytes() for tb in labs]
        assert main(["recover", str(status)]) == 0, where
        assert [tb.status_path.read_bytes() for tb in labs] == before, where
        assert read() == [], where


# `make test`: a commit and a pull backup (seed 8: the `recover DIR` process killed at point
# 12 of the 62 a whole run passes).
QUICK_FLOWS = ["completed", "backup-pull"]


def test_two_recoveries_at_once_one_killed_end_as_one_run(tmp_path: Path) -> None:
    two_recoveries_one_killed(tmp_path, QUICK_FLOWS, seed=8)


@fuzz_only
def test_two_recoveries_at_once_one_killed_campaign(tmp_path: Path) -> None:
    for seed in range(int(os.environ.get("BLOCKJOB_CONCURRENT_RUNS", "20"))):
        two_recoveries_one_killed(tmp_path / str(seed), list(FLOWS), seed)
        shutil.rmtree(tmp_path / str(seed))


# --- a tracker SIGKILLed while a recovery and a restarted daemon wait for its domain -----


def tracker_killed_while_others_wait(tmp_path: Path, flow: str, seed: int) -> None:
    """A daemon (`tests/support/tracker_kill.py`) runs an active commit to its pivot or
    abort; once its tracker is open, `blockjob recover` and a second tracker (the daemon
    restarted) wait for the domain, and the daemon is SIGKILLed at a random instant.
    Whichever gets the domain first, recover exits 0 with the domain reconciled, the second
    tracker ends the flow as the daemon wanted, and lock-less readers read whole files."""
    with started(tmp_path) as tb, lockless_readers(tb.directory) as read:
        waiting: list[subprocess.Popen[str]] = []
        failures: list[BaseException] = []

        def restarted_daemon() -> None:
            try:
                with tracker(tb, lock_timeout=LIMIT) as t:
                    finish_after_restart(t, flow)
            except BaseException as exc:  # reported by the test's thread
                failures.append(exc)

        second = threading.Thread(target=restarted_daemon)

        def others() -> None:
            waiting.append(subprocess.Popen(_recover(str(tb.status_path)), env=ENV, cwd=REPO,
                                            stdout=subprocess.PIPE, text=True))
            second.start()

        with _reaped(waiting):
            try:
                killed_after_open(str(tb.status_path), flow,
                                  random.Random(seed).uniform(0.0, 0.06), meanwhile=others)
            finally:
                if second.ident is not None:  # started
                    second.join(LIMIT)
            out = waiting[0].communicate(timeout=LIMIT)[0]
        assert failures == []
        assert waiting[0].returncode == 0, out
        assert [d["status"] for d in json.loads(out)["domains"]] == ["reconciled"]
        CHECKS[flow](tb)
        assert read() == []


def test_a_tracker_killed_while_recover_and_a_new_tracker_wait(tmp_path: Path) -> None:
    tracker_killed_while_others_wait(tmp_path, "pivot", 1)  # the abort: make fuzz


@fuzz_only
@pytest.mark.parametrize("flow", ["pivot", "abort"])
def test_a_tracker_killed_while_others_wait_campaign(tmp_path: Path, flow: str) -> None:
    for seed in range(int(os.environ.get("BLOCKJOB_CONCURRENT_RUNS", "20"))):
        tracker_killed_while_others_wait(tmp_path / str(seed), flow, seed)
        shutil.rmtree(tmp_path / str(seed))


# --- lock-file games while a tracker owns the domain ----------------------------------


def _remove(lock: Path) -> None:
    lock.unlink()


def _replace(lock: Path) -> None:
    lock.unlink()
    lock.write_bytes(b"")


def _directory(lock: Path) -> None:
    lock.unlink()
    lock.mkdir()


LOCK_GAMES = {"removed": _remove, "replaced": _replace, "a directory": _directory}
# A removed lock file and a replaced one play alike: `make test` runs one of them.
QUICK_GAMES = ["removed", "a directory"]

@pytest.mark.parametrize("game", [game if game in QUICK_GAMES else pytest.param(
    game, marks=FUZZ_ONLY) for game in LOCK_GAMES])
def test_a_lock_file_changed_under_a_tracker_never_lets_recover_act(
    tmp_path: Path, game: str
) -> None:
    """README: lock files must not be deleted or replaced while in use. Should it happen,
    a recovery that then owns the new lock file meets the tracker's QMP connection (QEMU
    serves one client) and touches nothing; a lock that is a directory is named as such.
    Either way exit 1, the file as the tracker saved it, and the tracker ends its job."""
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_commit("vda", MID, BASE, speed=CRAWL)
            lock = lock_file_of(tb.status_path)
            before = tb.status_path.read_bytes()
            LOCK_GAMES[game](lock)
            done = subprocess.run(_recover("--connect-timeout", "0.5", str(tb.status_path)),
                                  env=ENV, cwd=REPO, capture_output=True, text=True,
                                  timeout=LIMIT, check=False)
            assert done.returncode == 1, done.stdout + done.stderr
            error = json.loads(done.stdout)["domains"][0]["error"]
            assert ("cannot open lock: Is a directory" if game == "a directory"
                    else "busy: held by another client") in error
            assert tb.status_path.read_bytes() == before
            t.abort(JOB)
            to_end(t, JOB)
        assert_restored(tb)


# --- libvirt saving the file (its own rename, no lock of ours) during a recovery -------


def libvirt_saves_during_recover(tmp_path: Path, flow: str, point: int) -> None:
    """libvirt saves the domain's file at `point` of a recovery (before or after a QMP
    command or a save). The recovery never saves over it: it needs attention, saying the
    file changed behind it (unless it had saved for the last time), and libvirt's file is
    what is on disk. A rerun then ends as one uninterrupted run, keeping libvirt's part."""
    expected, _ = _reference(tmp_path, [flow])
    with domains(tmp_path / "run", [flow], tmp_path / "status") as (tb,):
        seen: list[tuple[str, str]] = []
        written: list[bytes] = []

        def probe(when: str, what: str) -> None:
            seen.append((when, what))
            if len(seen) == point + 1:
                written.append(libvirt_saves(tb.status_path, f"saved at point {point}"))

        report = recover([tb.status_path], probe=probe)
        where = f"{flow}: libvirt saved at point {point} ({seen[point]})"
        assert tb.status_path.read_bytes() == written[0], where
        saved_after = ("before", "save") in seen[point:]  # a save after libvirt's
        assert report.ok is not saved_after, where
        if saved_after:
            assert "not saved: the file was replaced or rewritten since this owner read or " \
                   "saved it, by a writer that does not take the store's lock (libvirt?)" \
                   in "\n".join(report.domains[0].lines()), where
        assert recover([tb.status_path]).ok, where
        assert f"<!-- libvirt: saved at point {point} -->" in tb.status_path.read_text()
        libvirt_saves(tb.status_path, "")  # its part taken out again, for the comparison
        state = end_state(tb)
        assert state["file"] == str(expected[flow]["file"]).replace(
            "</domstatus>", "<!-- libvirt:  -->\n</domstatus>"), where
        assert {**state, "file": ""} == {**expected[flow], "file": ""}, where


@pytest.mark.parametrize(("flow", "point"), [("completed", 0), ("backup-pull", 9)])
def test_libvirt_saving_during_a_recovery_is_never_overwritten(
    tmp_path: Path, flow: str, point: int
) -> None:
    libvirt_saves_during_recover(tmp_path, flow, point)


@fuzz_only
@pytest.mark.parametrize("flow", FLOWS)
def test_libvirt_saving_at_every_point_of_a_recovery(tmp_path: Path, flow: str) -> None:
    _, points = _reference(tmp_path, [flow])
    for point in range(points):
        libvirt_saves_during_recover(tmp_path / str(point), flow, point)
        shutil.rmtree(tmp_path / str(point))


# --- libvirt saving the file under a live tracker ---------------------------------------


def libvirt_saves_under_a_tracker(tmp_path: Path, flow: str, after: int) -> None:
    """libvirt saves the file right after the tracker's save number `after` (from 0) of an
    active commit run to its pivot or abort. The daemon meets StoreConflictError once, and
    asks again what it refused (a request) or has the job looked at again (an event): the
    flow ends as it does without libvirt, libvirt's part of the file kept."""
    with started(tmp_path) as tb:
        saves: list[bytes] = []

        def on_save(_doc: object) -> None:
            saves.append(b"")
            if len(saves) == after + 1:
                libvirt_saves(tb.status_path, f"saved after save {after}")

        with tracker(tb, on_save=on_save) as t:
            def again(action: Callable[[], object], *, looked_at: bool = False) -> None:
                try:
                    action()
                except StoreConflictError:
                    if looked_at and t.doc.job(ACTIVE_JOB) is not None:
                        t.reconcile(ACTIVE_JOB)  # the event that was refused, caught up
                    action()

            def start() -> None:
                if t.doc.job(ACTIVE_JOB) is None:
                    t.start_active_commit("vda", BASE)
                else:  # QEMU had the job before the save that was refused
                    t.reconcile(ACTIVE_JOB)

            again(start)
            again(lambda: to_ready(t), looked_at=True)
            again(lambda: getattr(t, flow)(ACTIVE_JOB))
            again(lambda: to_end(t, ACTIVE_JOB), looked_at=True)
        assert len(saves) > after, f"the flow has {len(saves)} saves"
        CHECKS[flow](tb)
        assert f"<!-- libvirt: saved after save {after} -->" in tb.status_path.read_text()


@pytest.mark.parametrize(("flow", "after"), [("pivot", 1), ("abort", 4)])
def test_libvirt_saving_under_a_tracker_is_never_overwritten(
    tmp_path: Path, flow: str, after: int
) -> None:
    libvirt_saves_under_a_tracker(tmp_path, flow, after)


@fuzz_only
@pytest.mark.parametrize("flow", ["pivot", "abort"])
@pytest.mark.parametrize("after", range(6))  # each save of the flow
def test_libvirt_saving_after_each_save_of_a_tracker(
    tmp_path: Path, flow: str, after: int
) -> None:
    libvirt_saves_under_a_tracker(tmp_path, flow, after)
