"""CPU time of other processes' threads, to the nanosecond.

`/proc/PID/stat` counts CPU time in clock ticks (10 ms here), more than one QEMU spends on a
domain's whole recovery, so a single domain read as 0.0 ms. Each thread's
`/proc/PID/task/TID/schedstat` starts with its time on a CPU in nanoseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# (pid, tid) -> nanoseconds on a CPU so far
Threads = dict[tuple[int, int], int]


def thread_times(pids: Iterable[int]) -> Threads:
    """The CPU time of every thread of `pids` now."""
    times: Threads = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                times[pid, int(task.name)] = int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended between the listing and the read
    return times


def seconds_between(before: Threads, after: Threads) -> float:
    """CPU seconds the threads alive at `after` used since `before`; a thread started in
    between counts whole. One that ended in between is left out: QEMU's thread-pool workers
    end after seconds idle, and counting them against `before` would go negative."""
    return sum(now - before.get(thread, 0) for thread, now in after.items()) / 1e9
