"""Start-up: `blockjob show FILE` as a whole process against `python -c 'import lxml.etree'`.

Both run in turns, with the same interpreter and environment. Bytecode is cached (under
`PYTHONPYCACHEPREFIX`, in a scratch directory) as it is for an installed package, even if
this process runs with PYTHONDONTWRITEBYTECODE; the first run of each fills the cache.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.table import Row
from bench.timing import Budget


def _run(argv: Sequence[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def start_rows(path: Path, budget: Budget) -> list[Row]:
    show = [sys.executable, "-m", "blockjob", "show", str(path)]
    floor = [sys.executable, "-c", "import lxml.etree"]
    with tempfile.TemporaryDirectory(prefix="blockjob-pyc-") as cache:
        env = {key: value for key, value in os.environ.items()
               if key != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for argv in (show, floor):
            _run(argv, env)  # fills the bytecode cache
        ours: list[float] = []
        base: list[float] = []
        for _ in range(budget.process_runs):
            ours.append(_run(show, env))
            base.append(_run(floor, env))
    size = path.stat().st_size / 1000
    return [Row("blockjob show FILE, whole process", f"{path.name} ({size:.0f} KB)",
                statistics.median(ours), "python -c 'import lxml.etree'",
                statistics.median(base), "<= 2.0",
                note=f"median of {budget.process_runs}, in turns")]
