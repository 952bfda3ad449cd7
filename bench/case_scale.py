"""Restart at scale: load every status file of a directory and plan recovery (dry run, no QEMU)."""

from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path

from lxml import etree

from bench import corpus
from bench.table import Row
from bench.timing import Budget, median_seconds
from blockjob import StatusStore
from blockjob.recovery import plan_job


def restart(directory: Path) -> int:
    """What a daemon does first: `load_all`, then a plan for every job (QEMU knows none)."""
    report = StatusStore(directory).load_all()
    assert not report.failures, report.failures[:3]
    planned = 0
    for doc in report.documents.values():
        for job in doc.jobs:
            plan_job(doc, job, None)
            planned += 1
    return planned


def lxml_floor(directory: Path) -> None:
    """Reading and parsing the same files with lxml, and nothing else."""
    with os.scandir(directory) as entries:
        paths = sorted(e.path for e in entries if e.name.endswith(".xml"))
    for path in paths:
        with open(path, "rb") as file:
            etree.fromstring(file.read())


def scale_rows(budget: Budget, where: Path | None = None) -> tuple[list[Row], dict[int, Path]]:
    """Per-file cost at each size; the directories are kept (for the memory case) until exit."""
    sources = corpus.templates()
    rows: list[Row] = []
    per_file: dict[int, float] = {}
    keep = tempfile.mkdtemp(prefix="blockjob-scale-", dir=where)
    directories: dict[int, Path] = {}
    for count in budget.sizes:
        directory = Path(keep) / str(count)
        corpus.build(directory, count, sources)
        directories[count] = directory
        scaled = Budget(repeat=budget.scale_repeat)
        ours = median_seconds(partial(restart, directory), scaled, number=1) / count
        floor = median_seconds(partial(lxml_floor, directory), scaled, number=1) / count
        per_file[count] = ours
        rows.append(Row("restart, per file", f"N={count:,}", ours, "lxml read+parse", floor))
    first, last = budget.sizes[0], budget.sizes[-1]
    rows.append(Row("restart, per file growth", f"N={first:,} -> {last:,}", per_file[last],
                    f"per file at N={first:,}", per_file[first], "<= 1.2"))
    return rows, directories
