"""Restart at scale: load every status file of a directory and plan recovery (dry run, no QEMU)."""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

from lxml import etree

from bench import corpus
from bench.table import Row
from bench.timing import Budget
from blockjob import StatusStore
from blockjob.recovery import plan_job


def restart(directory: Path) -> tuple[float, float]:
    """What a daemon does first: `load_all`, then a plan for every job (QEMU knows none).

    Returns the seconds each of the two phases took.
    """
    start = time.perf_counter()
    report = StatusStore(directory).load_all()
    loaded = time.perf_counter()
    assert not report.failures, report.failures[:3]
    for doc in report.documents.values():
        for job in doc.jobs:
            plan_job(doc, job, None)
    return loaded - start, time.perf_counter() - loaded


def lxml_floor(directory: Path) -> float:
    """Reading and parsing the same files with lxml, and nothing else."""
    start = time.perf_counter()
    with os.scandir(directory) as entries:
        paths = sorted(e.path for e in entries if e.name.endswith(".xml"))
    for path in paths:
        with open(path, "rb") as file:
            etree.fromstring(file.read())
    return time.perf_counter() - start


def scale_rows(budget: Budget, where: Path | None = None) -> tuple[list[Row], dict[int, Path]]:
    """Per-file cost at each size; the directories are left for the memory case to reuse.

    Sizes and the floor are measured in turns, round after round, so that a burst of load
    from elsewhere on the machine hits all of them alike rather than one size.
    """
    sources = corpus.templates()
    keep = Path(tempfile.mkdtemp(prefix="blockjob-scale-", dir=where))
    directories = {count: keep / str(count) for count in budget.sizes}
    for count, directory in directories.items():
        corpus.build(directory, count, sources)
    loads: dict[int, list[float]] = {count: [] for count in budget.sizes}
    totals: dict[int, list[float]] = {count: [] for count in budget.sizes}
    floors: dict[int, list[float]] = {count: [] for count in budget.sizes}
    for _ in range(budget.scale_repeat):
        for count, directory in directories.items():
            gc.collect()
            load, plan = restart(directory)
            loads[count].append(load / count)
            totals[count].append((load + plan) / count)
            gc.collect()
            floors[count].append(lxml_floor(directory) / count)
    rows = []
    for count in budget.sizes:
        note = f"load_all alone {statistics.median(loads[count]) * 1e6:.0f} us"
        rows.append(Row("restart (load_all + plan), per file", f"N={count:,}",
                        statistics.median(totals[count]), "lxml read+parse",
                        statistics.median(floors[count]), "<= 1.5", note=note))
    first, last = budget.sizes[0], budget.sizes[-1]
    rows.append(Row("restart, per-file growth", f"N={first:,} -> {last:,}",
                    statistics.median(totals[last]), f"per file at N={first:,}",
                    statistics.median(totals[first]), "<= 1.2"))
    return rows, directories
