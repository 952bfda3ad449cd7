"""`run_ordered`: a bounded number in flight, results and `done` calls in the order given."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import pytest

from blockjob.cli import main
from blockjob.recovery.parallel import (
    DEFAULT_JOBS,
    FDS_PER_DOMAIN,
    affordable,
    file_key,
    run_ordered,
)

# Only keeps a broken implementation from hanging the suite; nothing here is timed.
LIMIT = 30.0


class Tracker:
    """Counts calls in flight; `gate` holds each call until the test lets it go."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: dict[int, str] = {}

    def enter(self, item: int) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads[item] = threading.current_thread().name

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


def test_results_and_done_keep_the_order_of_the_items_whatever_finishes_first() -> None:
    # Item 0 waits until every other item has finished: the last to finish, reported first.
    others_done = threading.Event()
    finished: list[int] = []
    lock = threading.Lock()

    def work(item: int) -> str:
        if item == 0:
            assert others_done.wait(LIMIT), "the other items never finished"
        with lock:
            finished.append(item)
            if len(finished) == 5:
                others_done.set()
        return f"r{item}"

    reported: list[str] = []
    results = run_ordered(list(range(6)), work, jobs=3, key=lambda item: item,
                          done=reported.append)
    assert finished[-1] == 0
    assert results == reported == [f"r{item}" for item in range(6)]


def test_at_most_jobs_run_at_once_and_that_many_do() -> None:
    tracker = Tracker()
    barrier = threading.Barrier(3, timeout=LIMIT)  # breaks unless 3 calls overlap

    def work(item: int) -> int:
        tracker.enter(item)
        try:
            if item < 3:
                barrier.wait()
            return item * 2
        finally:
            tracker.leave()

    assert run_ordered(list(range(10)), work, jobs=3, key=lambda item: item) == [
        item * 2 for item in range(10)]
    assert tracker.most == 3


def test_items_with_one_key_run_in_order_in_one_thread() -> None:
    tracker = Tracker()
    seen: list[int] = []

    def work(item: int) -> int:
        tracker.enter(item)
        if item % 2 == 0:
            seen.append(item)
        tracker.leave()
        return item

    items = list(range(8))
    assert run_ordered(items, work, jobs=4, key=lambda item: item % 2) == items
    assert seen == [0, 2, 4, 6]
    assert len({tracker.threads[item] for item in (0, 2, 4, 6)}) == 1


def test_one_job_runs_in_the_calling_thread() -> None:
    names: list[str] = []

    def work(item: int) -> int:
        names.append(threading.current_thread().name)
        return item

    assert run_ordered([1, 2, 3], work, jobs=1, key=lambda item: item) == [1, 2, 3]
    assert names == [threading.current_thread().name] * 3


def test_an_exception_stops_the_run_and_is_raised() -> None:
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        if item == 0:
            raise RuntimeError("boom")
        return item

    with pytest.raises(RuntimeError, match="boom"):
        run_ordered(list(range(100)), work, jobs=2, key=lambda item: item)
    assert len(started) < 100, "items not started when it failed were dropped"


def test_an_interrupt_in_the_caller_lets_the_items_in_flight_finish_and_starts_none() -> None:
    # Ctrl-C arrives in the calling thread, which reports the results (here: in `done`).
    lock = threading.Lock()
    started: list[int] = []
    finished: list[int] = []
    interrupted = threading.Event()

    def work(item: int) -> int:
        with lock:
            started.append(item)
        if item >= 2:  # in flight when the interrupt comes
            assert interrupted.wait(LIMIT)
        with lock:
            finished.append(item)
        return item

    def done(result: int) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ordered(list(range(50)), work, jobs=2, key=lambda item: item, done=done)
    assert sorted(finished) == sorted(started), "every item started was let finish"
    assert len(started) < 50, "items not started when it stopped were dropped"


def _threads_refused_after(allowed: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Let `allowed` worker threads start, then refuse the others as a process at its
    RLIMIT_NPROC does; the names of the threads started."""
    started: list[str] = []
    start = threading.Thread.start

    def refusing(thread: threading.Thread) -> None:
        if thread.name.startswith("recover_"):
            if len(started) >= allowed:
                raise RuntimeError("can't start new thread")
            started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", refusing)
    return started


@pytest.mark.parametrize("allowed", [0, 1, 2])
def test_threads_the_system_refuses_leave_the_work_to_those_started(
    allowed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A refused thread once ended the run with a traceback (joining a thread never
    # started), dropping every domain not yet started.
    started = _threads_refused_after(allowed, monkeypatch)
    lock = threading.Lock()
    ran_in: set[str] = set()

    def work(item: int) -> int:
        with lock:
            ran_in.add(threading.current_thread().name)
        return item * 2

    reported: list[int] = []
    assert run_ordered(list(range(20)), work, jobs=8, key=lambda item: item,
                       done=reported.append) == reported == [item * 2 for item in range(20)]
    assert len(started) == allowed
    assert ran_in <= (set(started) or {threading.current_thread().name})


def test_jobs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run_ordered([1], lambda item: item, jobs=0, key=lambda item: item)


@pytest.mark.parametrize(("spare", "jobs", "expected"), [
    (None, 1000, 1000),  # no limit
    (FDS_PER_DOMAIN * 5 + 2, 16, 5), (FDS_PER_DOMAIN * 5, 3, 3), (1, 16, 1), (0, 16, 1),
])
def test_jobs_are_as_many_as_the_descriptor_limit_can_serve(
    spare: int | None, jobs: int, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_use = len(os.listdir("/proc/self/fd")) - 1
    soft = resource.RLIM_INFINITY if spare is None else in_use + spare
    monkeypatch.setattr(resource, "getrlimit", lambda _: (soft, resource.RLIM_INFINITY))
    assert affordable(jobs) == expected


def test_without_proc_the_standard_streams_are_taken_as_the_descriptors_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_proc(path: str) -> list[str]:
        raise FileNotFoundError(2, "No such file or directory", path)

    monkeypatch.setattr(resource, "getrlimit", lambda _: (3 + FDS_PER_DOMAIN * 2 + 1, 4096))
    monkeypatch.setattr(os, "listdir", no_proc)
    assert affordable(16) == 2


def test_file_key_is_one_for_every_name_of_a_file(tmp_path: Path) -> None:
    real = tmp_path / "a.xml"
    real.write_text("x")
    (tmp_path / "link.xml").symlink_to(real)
    (tmp_path / "hard.xml").hardlink_to(real)
    other = tmp_path / "b.xml"
    other.write_text("x")
    keys = {file_key(path) for path in (real, tmp_path / "link.xml", tmp_path / "hard.xml")}
    assert len(keys) == 1
    assert file_key(other) not in keys
    missing = tmp_path / "missing.xml"
    assert file_key(missing) == file_key(tmp_path / "." / "missing.xml")


@pytest.mark.parametrize("value", ["0", "-2", "x", "1.5", ""])
def test_recover_jobs_must_be_a_positive_integer(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["recover", "--jobs", value, str(tmp_path)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --jobs: expected a positive integer, got {value!r}" in err
    assert "Traceback" not in err


def test_recover_jobs_default_is_the_documented_bound(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["recover", "--help"])
    assert f"(default {DEFAULT_JOBS})" in " ".join(capsys.readouterr().out.split())
