"""Restart over many real QEMUs: `recover` with `--jobs J` against one at a time and one domain.

Every round sets up fresh domains (a commit that concluded while no daemon listened), and
measures, in turns: all of them one at a time, all of them J at a time, a single domain.
The benchmark checks the outcome itself: every report ok, every domain reconciled (the
expected bitmaps in base), and the same end state, field for field, in every mode.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import seconds_between, thread_times
from bench.fleet import Templates, end_state, fleet, reconciled
from bench.table import Row
from bench.timing import Budget
from blockjob.recovery import recover


class EndStateError(RuntimeError):
    """Recovery left a domain wrong, or differently in one mode than in another."""


@dataclass
class Sample:
    wall: float  # seconds of the `recover` call
    cpu: float   # CPU seconds of this process (all threads) during it
    qemu: float  # CPU seconds of all the QEMUs during it


def _measure(root: Path, count: int, jobs: int, templates: Templates) -> tuple[Sample, set[str]]:
    """Recover `count` fresh domains `jobs` at a time; the time and the end states."""
    with fleet(root, count, templates) as labs:
        pids = [lab.qemu.pid for lab in labs if lab.qemu.pid is not None]
        qemu, cpu = thread_times(pids), time.process_time()
        start = time.perf_counter()
        report = recover([lab.status_path for lab in labs], jobs=jobs)
        wall = time.perf_counter() - start
        sample = Sample(wall, time.process_time() - cpu,
                        seconds_between(qemu, thread_times(pids)))
        wrong = [domain.file for domain, lab in zip(report.domains, labs, strict=True)
                 if domain.needs_attention or not reconciled(lab)]
        if wrong:
            raise EndStateError(f"--jobs {jobs}: not reconciled: {', '.join(wrong[:3])}")
        states = {end_state(lab, domain.lines())
                  for domain, lab in zip(report.domains, labs, strict=True)}
    return sample, states


def recover_rows(budget: Budget, jobs: int, where: Path | None = None) -> list[Row]:
    count = budget.domains
    with tempfile.TemporaryDirectory(prefix="blockjob-fleet-", dir=where) as scratch:
        root = Path(scratch)
        templates = Templates(root / "templates")
        modes = {"one at a time": (count, 1), f"{jobs} at a time": (count, jobs),
                 "one domain": (1, 1)}
        samples: dict[str, list[Sample]] = {mode: [] for mode in modes}
        states: set[str] = set()
        for round_number in range(budget.fleet_rounds):
            for mode, (domains, in_flight) in modes.items():
                sample, found = _measure(root / f"r{round_number}", domains, in_flight,
                                         templates)
                samples[mode].append(sample)
                states |= found
        if len(states) != 1:
            raise EndStateError(f"{len(states)} different end states across the modes")
    one, many, single = (samples[mode] for mode in modes)
    return [
        Row(f"recover {count} real QEMUs, --jobs {jobs}", "concluded commit each",
            _median(many, "wall"), "--jobs 1", _median(one, "wall"), ">= 3",
            note=f"end states identical; per domain: --jobs 1 {_where(one, count)}; "
                 f"--jobs {jobs} {_where(many, count)}"),
        Row("recover one domain", "concluded commit", _median(single, "wall"),
            f"per domain, --jobs 1 over {count}", _median(one, "wall") / count,
            note=_where(single, 1)),
    ]


def _median(samples: Sequence[Sample], field: str) -> float:
    return float(statistics.median(getattr(sample, field) for sample in samples))


def _where(samples: Sequence[Sample], count: int) -> str:
    """Where a mode's time went, per domain: wall, our CPU, QEMU's CPU."""
    per = {field: _median(samples, field) / count * 1e3 for field in ("wall", "cpu", "qemu")}
    return (f"{per['wall']:.1f} ms wall = {per['cpu']:.1f} ms our CPU + "
            f"{per['qemu']:.1f} ms QEMU CPU + waiting")
