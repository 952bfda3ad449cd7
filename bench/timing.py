"""Medians of repeated timings, and how many repeats a run affords."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How hard to measure: `repeat` samples of `number` calls each (scaled per case)."""

    repeat: int = 15
    number: int = 200
    # Restart-at-scale directory sizes, and how often each is loaded.
    sizes: tuple[int, ...] = (100, 1_000, 10_000)
    scale_repeat: int = 5
    # Real-QEMU restart: domains per fleet, and rounds of (one at a time, J at a time, one).
    domains: int = 100
    fleet_rounds: int = 3
    # Whole processes (start-up): runs of each command, in turns.
    process_runs: int = 15

    def calls(self, cost_hint: float) -> int:
        """Calls per sample for an action of about `cost_hint` seconds: ~20 ms a sample."""
        return max(1, min(self.number, int(0.02 / cost_hint)))


QUICK = Budget(repeat=3, number=3, sizes=(5, 10), scale_repeat=1, domains=3, fleet_rounds=1,
               process_runs=3)


@dataclass(frozen=True)
class Timed:
    """An action to time; `setup` runs (untimed) before each sample of `number` calls."""

    action: Callable[[], object]
    setup: Callable[[], object] | None = None
    number: int | None = None


def in_turns(timed: Sequence[Timed], budget: Budget) -> list[float]:
    """Median seconds per call of each action, sampled in turns, round after round.

    Taking one sample of each action per round means a burst of load from elsewhere on the
    machine hits an action and its baseline alike, which keeps their ratio honest. Garbage
    collection runs as in a real process (a daemon does not disable it); a collection is
    forced before each sample so one sample does not pay for another's garbage.
    """
    calls = []
    for item in timed:
        if item.setup is not None:
            item.setup()
        item.action()  # warm caches: schemas, compiled patterns, lazily done imports
        calls.append(item.number if item.number is not None
                     else budget.calls(_once(item.action)))
    samples: list[list[float]] = [[] for _ in timed]
    for _ in range(budget.repeat):
        for item, count, taken in zip(timed, calls, samples, strict=True):
            if item.setup is not None:
                item.setup()
            gc.collect()
            start = time.perf_counter()
            for _ in range(count):
                item.action()
            taken.append((time.perf_counter() - start) / count)
    return [statistics.median(taken) for taken in samples]


def _once(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return max(time.perf_counter() - start, 1e-7)
