"""`blockjob recover`: reconcile status files with their running QEMUs."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from blockjob.cli.common import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from blockjob.qemu.monitor import GREETING_WAIT
from blockjob.recovery import DomainReport, recover
from blockjob.recovery.parallel import DEFAULT_JOBS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="status files, or directories of <domain>.xml files")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan; change nothing in QEMU or on disk")
    parser.add_argument("--json", action="store_true", help="print per-domain actions as JSON")
    parser.add_argument("--timeout", type=_seconds, default=30.0, metavar="SECONDS",
                        help="bound on each QMP command (default 30)")
    parser.add_argument("--connect-timeout", type=_seconds, default=GREETING_WAIT,
                        metavar="SECONDS",
                        help="how long to wait for a monitor another client holds "
                             f"(default {GREETING_WAIT:g})")
    parser.add_argument("--acknowledge", action="store_true",
                        help="let go of listed bitmaps that can never be re-enabled "
                             "(reported once more, then no longer recorded)")
    parser.add_argument("--jobs", type=_jobs, default=DEFAULT_JOBS, metavar="N",
                        help=f"domains recovered at once (default {DEFAULT_JOBS})")


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (argparse reports anything else, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive, finite number of seconds")
    return value


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return jobs


def _progress(domain: DomainReport) -> None:
    sys.stderr.write(f"recover: {domain.domain or domain.file}: {domain.status}\n")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    missing = [path for path in args.paths if not Path(path).exists()]
    for path in missing:
        sys.stderr.write(f"{path}:0: no such file or directory\n")
    if missing:
        return EXIT_USAGE
    report = recover(
        args.paths, dry_run=args.dry_run, timeout=args.timeout, jobs=args.jobs,
        connect_timeout=args.connect_timeout, acknowledge=args.acknowledge,
        progress=_progress if sys.stderr.isatty() else None,
    )
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for domain in report.domains:
            sys.stdout.write("\n".join(domain.lines()) + "\n")
    return EXIT_OK if report.ok else EXIT_REJECTED
