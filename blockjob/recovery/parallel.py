"""Many domains at once: a bounded number in flight, results in the order the domains were given.

Recovering a domain is mostly waiting for its QEMU (each QMP command, each reopen of an
image), so domains overlap well in threads. Each domain runs whole in one thread: its own
steps stay in order, and its `Monitor` (with its own event loop) is created, used and closed
in that thread. Items with the same key (the same status file named twice) run one after
the other in one thread, as a sequential run would take them.

Results come back, and `done` is called, in the order of `items`, whatever order the
threads finish in, so a report does not depend on timing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

# A domain's recovery is mostly waiting (for QEMU's reopen and flush, for fsync), so a few
# domains in flight per core keep both sides busy. Measured over 100 real QEMUs on 2 cores
# (the `bench/fleet.py` domains, one round each): 8 in flight 1.5 s, 16 1.05 s, 32 1.3 s,
# 64 1.5 s; one at a time 5-9 s.
# Each domain in flight also holds a thread, a QMP socket and an event loop.
DEFAULT_JOBS = 16


def file_key(path: Path) -> Hashable:
    """One key for every name of a file (a second name, a symlink), so that one file is
    never recovered by two threads at once."""
    try:
        found = path.stat()
    except OSError:
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

    With one job, or one key, everything runs in the calling thread. An exception from
    `work` (or a KeyboardInterrupt) stops the run: domains not started are dropped, the
    ones in flight are let finish (a thread cannot be stopped halfway through a step), and
    the exception is raised.
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

    def run_group(indexes: list[int]) -> list[_Result]:
        return [work(items[index]) for index in indexes]

    results: dict[int, _Result] = {}
    reported = 0
    pool = ThreadPoolExecutor(max_workers=min(jobs, len(groups)), thread_name_prefix="recover")
    try:
        pending: dict[Future[list[_Result]], list[int]] = {
            pool.submit(run_group, indexes): indexes for indexes in groups.values()
        }
        while pending:
            ready, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in ready:
                results.update(zip(pending.pop(future), future.result(), strict=True))
            while reported in results:
                if done is not None:
                    done(results[reported])
                reported += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[index] for index in range(len(items))]
