"""`python -m bench [--quick] [--sizes 100,1000,10000] [--skip-peers] [--dir DIR] [--only ...]`."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from lxml import etree

from bench import (
    case_file,
    case_libvirt,
    case_recover,
    case_save,
    case_scale,
    case_start,
    memory,
    peers,
)
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
                        help="leave out the cases that start real QEMUs")
    parser.add_argument("--libvirt-domains", type=int,
                        help="domains per side and round for the libvirtd-restart anchor "
                             "(default 24; needs root and ../shared/libvirt-lab)")
    parser.add_argument("--only", type=_cases, default=CASES, metavar="CASES",
                        help="run only these cases, comma-separated, of: " + ", ".join(CASES)
                             + " (e.g. --only anchor: the libvirtd-restart anchor alone)")
    return parser.parse_args(argv)


# The cases `--only` picks from: the per-file rows (load, dump, save, validate), restart at
# scale with peak memory, whole-process start, recover over real QEMUs, the libvirt anchor.
CASES = ("files", "scale", "start", "recover", "anchor")


def _cases(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in CASES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown case {', '.join(map(repr, unknown)) or repr(text)}; "
            f"choose from {', '.join(CASES)}")
    return chosen


def machine() -> str:
    lxml = ".".join(map(str, etree.LXML_VERSION[:3]))
    libxml2 = ".".join(map(str, etree.LIBXML_VERSION))
    return (f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores "
            f"({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
            f"lxml {lxml} (libxml2 {libxml2})")


def _libvirt_anchor(args: argparse.Namespace, budget: Budget, skipped: dict[str, str]
                    ) -> list[Row]:
    """The libvirtd-restart anchor, unless it cannot run here (or the run is --quick:
    a fresh lab daemon alone takes about 10 s)."""
    reason = "--quick" if args.quick else case_libvirt.skip_reason()
    if reason is not None:
        skipped["libvirtd restart anchor"] = reason
        return []
    return case_libvirt.libvirt_rows(budget, args.jobs)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    budget = QUICK if args.quick else Budget()
    if args.sizes:
        budget = dataclasses.replace(budget, sizes=tuple(int(n) for n in args.sizes.split(",")))
    if args.domains:
        budget = dataclasses.replace(budget, domains=args.domains)
    if args.libvirt_domains:
        budget = dataclasses.replace(budget, libvirt_domains=args.libvirt_domains)
    try:
        inputs = named_inputs()
    except MissingInputError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(machine(), flush=True)
    only = set(args.only)
    loaders: dict[str, peers.Loader]
    skipped: dict[str, str]
    workdir: tempfile.TemporaryDirectory[str] | None
    if "files" not in only:
        loaders, skipped, workdir = {}, {}, None
    elif args.skip_peers:
        loaders, skipped, workdir = {}, {"all peers": "--skip-peers"}, None
    else:
        loaders, skipped, workdir = peers.all_loaders()
    rows: list[Row] = []
    directories: dict[int, Path] = {}
    try:
        if "files" in only:
            for name, data in inputs.items():
                rows += case_file.load_rows(name, data, loaders, budget)
            for name, data in inputs.items():
                rows += case_file.dump_rows(name, data, budget)
            for name, data in inputs.items():
                rows += case_save.save_rows(name, data, budget, args.dir)
        if "scale" in only:
            scale, directories = case_scale.scale_rows(budget, args.dir)
            rows += scale
        if "start" in only:
            rows += case_start.start_rows(REAL, budget)
        rows += _qemu_rows(args, budget, only, skipped)
        if "files" in only:
            for name, data in inputs.items():
                rows += case_file.validation_rows(name, data, budget)
        if directories:
            rows += memory.memory_rows(directories[max(directories)])
    finally:
        if directories:
            shutil.rmtree(next(iter(directories.values())).parent, ignore_errors=True)
        if workdir is not None:
            workdir.cleanup()
    print(render(rows))
    for peer, reason in skipped.items():
        print(f"skipped {peer}: {reason}")
    misses = [row for row in rows if row.verdict == "MISS"]
    print(f"{len(rows)} figures, {len(misses)} targets missed")
    return 0


def _qemu_rows(args: argparse.Namespace, budget: Budget, only: set[str],
               skipped: dict[str, str]) -> list[Row]:
    """The cases that start real QEMUs, unless left out or QEMU is missing."""
    if not only & {"recover", "anchor"}:
        return []
    if args.skip_qemu or not HAVE_QEMU:
        skipped["restart over real QEMUs"] = "--skip-qemu" if args.skip_qemu \
            else "qemu-system-x86_64/qemu-img/qemu-io not installed"
        return []
    rows = case_recover.recover_rows(budget, args.jobs, args.dir) if "recover" in only else []
    return rows + (_libvirt_anchor(args, budget, skipped) if "anchor" in only else [])
