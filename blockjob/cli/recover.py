"""`blockjob recover`: reconcile status files with their running QEMUs."""

from __future__ import annotations

import argparse
import json
import math
import sys

from blockjob.cli.common import EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, add_max_size, error
from blockjob.errors import InputError
from blockjob.inputs import STDIN, display_name
from blockjob.qemu.monitor import GREETING_WAIT, check_seconds
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
    add_max_size(parser)


def _seconds(text: str) -> float:
    """A positive, finite number of seconds up to a day (argparse reports anything else,
    exit 2)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan  # not a number: refused with the message any bad value gets
    try:
        return check_seconds(value, repr(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    if STDIN in args.paths:  # recovery saves what it changes back to the file
        error(f"{display_name(STDIN)}:0: recover needs status files, not standard input")
        return EXIT_UNUSABLE
    try:
        report = recover(
            args.paths, dry_run=args.dry_run, timeout=args.timeout, max_bytes=args.max_size,
            jobs=args.jobs, connect_timeout=args.connect_timeout, acknowledge=args.acknowledge,
            progress=_progress if sys.stderr.isatty() else None,
        )
    except InputError as exc:  # a named directory that cannot be listed
        error(str(exc))
        return EXIT_UNUSABLE
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for domain in report.domains:
            sys.stdout.write("\n".join(domain.lines()) + "\n")
    for domain in report.domains:
        if domain.unusable:
            error(str(domain.error))
    if report.unusable_input:
        return EXIT_UNUSABLE
    return EXIT_OK if report.ok else EXIT_REJECTED
