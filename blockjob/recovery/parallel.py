"""Many domains at once: a bounded number in flight, results in the order the domains were given.

Recovering a domain is mostly waiting for its QEMU (each QMP command, each reopen of an
image), so domains overlap well in threads. Each domain runs whole in one thread: its own
steps stay in order, and its `Monitor` (one blocking QMP connection) is created, used and
closed in that thread. Items with the same key (the same status file named twice) run one
after the other in one thread, as a sequential run would take them.

Results come back, and `done` is called, in the order of `items`, whatever order the
threads finish in, so a report does not depend on timing.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

# A domain's recovery is mostly waiting (for QEMU's reopen and flush, for fsync), so a few
# domains in flight per core keep both sides busy. Measured over 100 real QEMUs on 2 cores
# (the `bench/fleet.py` domains, one round each): 8 in flight 1.5 s, 16 1.05 s, 32 1.3 s,
# 64 1.5 s; one at a time 5-9 s.
# Each domain in flight also holds a thread and a QMP socket.
DEFAULT_JOBS = 16
# Descriptors a domain in flight holds at once, at most: its lock, its QMP socket, and the
# status file being read or its scratch file or directory during a save.
FDS_PER_DOMAIN = 3


def affordable(jobs: int) -> int:
    """`jobs`, or fewer (at least 1) when the descriptors RLIMIT_NOFILE leaves cannot serve
    that many domains at once: a domain short of a descriptor fails and needs a rerun, where
    waiting for its turn it is recovered."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return jobs
    try:
        in_use = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
    except OSError:  # no /proc: assume the standard streams only
        in_use = 3
    return min(jobs, max(1, (soft - in_use) // FDS_PER_DOMAIN))


def file_key(path: Path) -> Hashable:
    """One key for every name of a file (a second name, a symlink), so that one file is
    never recovered by two threads at once."""
    try:
        found = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return os.path.abspath(path)  # fails again, and is reported, when it is loaded
    return found.st_dev, found.st_ino


def run_ordered(
    items: Sequence[_Item],
    work: Callable[[_Item], _Result],
    *,
    jobs: int,
    key: Callable[[_Item], Hashable],
    done: Callable[[_Result], None] | None = None,
) -> list[_Result]:
    """`[work(item) for item in items]`, with at most `jobs` calls running at once.

    With one job, or one key, everything runs in the calling thread; so it does when the
    system refuses every thread (with some refused, the ones started share the work). An
    exception from `work` (or a KeyboardInterrupt) stops the run: domains not started are
    dropped, the ones in flight are let finish (a thread cannot be stopped halfway through
    a step), and the exception is raised; a second KeyboardInterrupt while they finish is
    raised at once.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    groups: dict[Hashable, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(key(item), []).append(index)
    if min(jobs, len(groups)) <= 1:
        inline = []
        for item in items:
            inline.append(work(item))
            if done is not None:
                done(inline[-1])
        return inline
    return _Pool(items, work, list(groups.values())).run(min(jobs, len(groups)), done)


class _Pool(Generic[_Item, _Result]):
    """Worker threads that take the groups of items in order, and a caller that reports
    the results in order. Plain threads: `concurrent.futures` would cost every `recover`
    process about 10 ms of imports (logging among them) for no gain here."""

    def __init__(self, items: Sequence[_Item], work: Callable[[_Item], _Result],
                 groups: list[list[int]]) -> None:
        self.items, self.work, self.groups = items, work, groups
        self.changed = threading.Condition()
        self.results: dict[int, _Result] = {}
        self.failures: list[BaseException] = []
        self.taken = 0  # groups handed to a worker
        self.stopped = False

    def run(self, workers: int, done: Callable[[_Result], None] | None) -> list[_Result]:
        threads: list[threading.Thread] = []
        reported = 0
        try:
            self._start(workers, threads)
            while reported < len(self.items):
                with self.changed:
                    while reported not in self.results and not self.failures:
                        self.changed.wait()
                    if self.failures:
                        raise self.failures[0]
                    ready = []
                    while reported in self.results:
                        ready.append(self.results[reported])
                        reported += 1
                if done is not None:
                    for result in ready:
                        done(result)
        finally:
            with self.changed:
                self.stopped = True  # no new group starts; the ones in flight finish
            for thread in threads:
                thread.join()
        return [self.results[index] for index in range(len(self.items))]

    def _start(self, workers: int, threads: list[threading.Thread]) -> None:
        """Start up to `workers` threads into `threads`. When the system refuses a thread
        (RLIMIT_NPROC, memory), the ones started share the work; with none, this thread
        does it all, as one job would."""
        for number in range(workers):
            # Daemons: after a second Ctrl-C stops the wait for the domains in flight, a
            # thread stuck on a silent QEMU must not keep the process alive until its
            # timeout. Left then, a domain is as after a kill: the next run finishes it.
            thread = threading.Thread(target=self._worker, name=f"recover_{number}",
                                      daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't start new thread"
                break
            threads.append(thread)
        if not threads:
            self._worker()

    def _worker(self) -> None:
        while True:
            with self.changed:
                if self.stopped or self.failures or self.taken == len(self.groups):
                    return
                indexes = self.groups[self.taken]
                self.taken += 1
            try:
                for index in indexes:
                    result = self.work(self.items[index])
                    with self.changed:
                        self.results[index] = result
                        self.changed.notify()
            except BaseException as exc:  # raised in the caller's thread
                with self.changed:
                    self.failures.append(exc)
                    self.changed.notify()
                return
