"""`python -m bench [--quick] [--sizes 100,1000,10000] [--skip-peers] [--dir DIR]`."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
from pathlib import Path

from lxml import etree

from bench import case_file, case_save, case_scale, memory, peers
from bench.inputs import MissingInputError, named_inputs
from bench.table import Row, render
from bench.timing import QUICK, Budget


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a few repeats and tiny directories: checks the harness runs")
    parser.add_argument("--sizes", help="restart-at-scale directory sizes, comma-separated")
    parser.add_argument("--skip-peers", action="store_true", help="leave out xsdata & co.")
    parser.add_argument("--dir", type=Path,
                        help="where scratch status files go (default: the system temp dir; "
                             "use a disk, not tmpfs, for the save case)")
    return parser.parse_args(argv)


def machine() -> str:
    lxml = ".".join(map(str, etree.LXML_VERSION[:3]))
    libxml2 = ".".join(map(str, etree.LIBXML_VERSION))
    return (f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores "
            f"({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
            f"lxml {lxml} (libxml2 {libxml2})")


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    budget = QUICK if args.quick else Budget()
    if args.sizes:
        budget = Budget(budget.repeat, budget.number,
                        tuple(int(n) for n in args.sizes.split(",")), budget.scale_repeat)
    try:
        inputs = named_inputs()
    except MissingInputError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(machine(), flush=True)
    loaders, skipped, workdir = ({}, {"all peers": "--skip-peers"}, None) if args.skip_peers \
        else peers.all_loaders()
    rows: list[Row] = []
    for name, data in inputs.items():
        rows += case_file.load_rows(name, data, loaders, budget)
    for name, data in inputs.items():
        rows += case_file.dump_rows(name, data, budget)
    for name, data in inputs.items():
        rows += case_save.save_rows(name, data, budget, args.dir)
    scale, directories = case_scale.scale_rows(budget, args.dir)
    rows += scale
    try:
        for name, data in inputs.items():
            rows += case_file.validation_rows(name, data, budget)
        rows += memory.memory_rows(directories[max(directories)])
    finally:
        shutil.rmtree(next(iter(directories.values())).parent, ignore_errors=True)
        if workdir is not None:
            workdir.cleanup()
    print(render(rows))
    for peer, reason in skipped.items():
        print(f"skipped {peer}: {reason}")
    misses = [row for row in rows if row.verdict == "MISS"]
    print(f"{len(rows)} figures, {len(misses)} targets missed")
    return 0
