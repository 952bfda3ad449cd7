"""`blockjob recover`: reconcile status files with their running QEMUs."""

from __future__ import annotations

import argparse
import json
import sys

from blockjob.cli.common import EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, add_max_size, error
from blockjob.errors import InputError
from blockjob.inputs import STDIN, display_name
from blockjob.recovery import DomainReport, recover

NAME = "recover"
HELP = "reconcile recorded block jobs with QEMU after a daemon restart"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="status files, or directories of <domain>.xml files")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan; change nothing in QEMU or on disk")
    parser.add_argument("--json", action="store_true", help="print per-domain actions as JSON")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="bound on each QMP command (default 30)")
    add_max_size(parser)


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
            progress=_progress if sys.stderr.isatty() else None,
        )
    except InputError as exc:  # a named path or directory that cannot be looked at
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
