"""`python -m bench [--quick] [--sizes 100,1000,10000] [--skip-peers] [--dir DIR]`."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import sys
from pathlib import Path

from lxml import etree

from bench import case_file, case_recover, case_save, case_scale, case_start, memory, peers
from bench.fleet import HAVE_QEMU
from bench.inputs import REAL, MissingInputError, named_inputs
from bench.table import Row, render
from bench.timing import QUICK, Budget
from blockjob.recovery.parallel import DEFAULT_JOBS


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a few repeats and tiny directories: checks the harness runs")
    parser.add_argument("--sizes", help="restart-at-scale directory sizes, comma-separated")
    parser.add_argument("--skip-peers", action="store_true", help="leave out xsdata & co.")
    parser.add_argument("--dir", type=Path,
                        help="where scratch status files go (default: the system temp dir; "
                             "use a disk, not tmpfs, for the save case)")
    parser.add_argument("--domains", type=int,
                        help="real QEMU domains for the restart-over-QEMUs case (default 100)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                        help=f"domains recovered at once in that case (default {DEFAULT_JOBS})")
    parser.add_argument("--skip-qemu", action="store_true",
                        help="leave out the case that starts real QEMUs")
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
        budget = dataclasses.replace(budget, sizes=tuple(int(n) for n in args.sizes.split(",")))
    if args.domains:
        budget = dataclasses.replace(budget, domains=args.domains)
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
    rows += case_start.start_rows(REAL, budget)
    if args.skip_qemu or not HAVE_QEMU:
        skipped["restart over real QEMUs"] = "--skip-qemu" if args.skip_qemu \
            else "qemu-system-x86_64/qemu-img/qemu-io not installed"
    else:
        rows += case_recover.recover_rows(budget, args.jobs, args.dir)
        skipped["libvirtd restart anchor"] = case_recover.LIBVIRT_SKIPPED
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
