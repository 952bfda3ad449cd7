"""`blockjob show [--json] FILE...`: the jobs of status files, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from blockjob.cli.common import EXIT_OK, EXIT_REJECTED, error
from blockjob.cli.documents import load_document
from blockjob.statusxml.mirrors import mirror_problems
from blockjob.statusxml.summary import document_summary


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("files", nargs="+", metavar="FILE", help="libvirt status XML files")


def _details(job: dict[str, Any]) -> str:
    parts = [f"{key}={job[key]}" for key in ("base", "top", "topparent", "bitmap") if job[key]]
    if job["disabled_base_bitmaps"]:
        parts.append("disabled-base-bitmaps=" + ",".join(job["disabled_base_bitmaps"]))
    if job["newstate"]:
        parts.append(f"newstate={job['newstate']}")
    if job["errmsg"]:
        parts.append(f"errmsg={job['errmsg']!r}")
    return " ".join(parts)


def _table(summary: dict[str, Any]) -> str:
    header = ("NAME", "TYPE", "STATE", "DISK", "DETAILS")
    rows = [header]
    for job in summary["jobs"]:
        disk = (job["disk"] or "-") + (" (mirror)" if job["mirror"] else "")
        state = job["state"] + (" INVALID" if job["invalid"] else "")
        rows.append((job["name"], job["type"], state, disk, _details(job)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        f"{summary['file']}: domain {summary['domain'] or '?'}, "
        f"{len(summary['jobs'])} job(s), active={'yes' if summary['active'] else 'no'}"
    ]
    for row in rows if summary["jobs"] else ():
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())
    for job in summary["jobs"]:
        lines.extend(f"  ! {job['name']}: {problem}" for problem in job["problems"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    code = EXIT_OK
    summaries = []
    for path in args.files:
        doc = load_document(path)
        if isinstance(doc, int):
            code = max(code, doc)
            continue
        for problem in mirror_problems(doc.disks, path):
            error(problem)
            code = max(code, EXIT_REJECTED)
        summaries.append(document_summary(doc))
    if args.json:
        out: Any = summaries[0] if len(args.files) == 1 and summaries else {"documents": summaries}
        if summaries or len(args.files) > 1:
            json.dump(out, sys.stdout, indent=2)
            sys.stdout.write("\n")
    else:
        sys.stdout.write("".join(_table(summary) + "\n" for summary in summaries))
    return code
