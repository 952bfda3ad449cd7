"""Medians of repeated timings, and how many repeats a run affords."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How hard to measure: `repeat` samples of `number` calls each (scaled per case)."""

    repeat: int = 15
    number: int = 200
    # Restart-at-scale directory sizes, and how often each is loaded.
    sizes: tuple[int, ...] = (100, 1_000, 10_000)
    scale_repeat: int = 5

    def calls(self, cost_hint: float) -> int:
        """Calls per sample for an action of about `cost_hint` seconds: ~20 ms a sample."""
        return max(1, min(self.number, int(0.02 / cost_hint)))


QUICK = Budget(repeat=3, number=3, sizes=(5, 10), scale_repeat=1)


def median_seconds(action: Callable[[], object], budget: Budget, *, number: int | None = None,
                   setup: Callable[[], object] | None = None) -> float:
    """Median time of one call of `action`, over `budget.repeat` samples.

    Garbage collection runs as in a real process (a daemon does not disable it); a
    collection is forced between samples so one sample does not pay for another's garbage.
    """
    if setup is not None:
        setup()
    action()  # warm caches: schemas, compiled patterns, imports done lazily
    calls = number if number is not None else budget.calls(_once(action))
    samples = []
    for _ in range(budget.repeat):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            action()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def _once(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return max(time.perf_counter() - start, 1e-7)
