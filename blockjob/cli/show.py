"""`blockjob show [--json] FILE...`: the jobs of status files, as a table or as JSON.

`--json` prints one object, `{"documents": [...]}`, with one entry per FILE in order, whatever
their number: `file`, `error` (None, or `{"line", "message"}` when the file could not be
loaded), `domain`, `active` and `jobs` (empty, and domain and active None, for a file that
could not be loaded).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from blockjob.cli.common import EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, add_max_size, error
from blockjob.cli.documents import LoadError, try_load
from blockjob.errors import StatusXMLError
from blockjob.inputs import display_name
from blockjob.statusxml.document import StatusDocument
from blockjob.statusxml.mapping import ROWS
from blockjob.statusxml.mirrors import mirror_problems
from blockjob.statusxml.summary import document_summary


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="libvirt status XML files (`-`: standard input)")
    add_max_size(parser)


# Shown as columns, or left out of the one-line view (every job has flags).
COLUMNS = frozenset({"name", "type", "state", "disk", "jobflags"})
# The keys of the mapping's rows, in libvirt's order: a new row shows up here by itself.
DETAIL_KEYS = tuple(row.key for row in ROWS if row.key and row.key not in COLUMNS)


def _cell(text: str) -> str:
    """`text` as is, or quoted when it holds a newline or another character that does not
    print: a name read from `&#10;` would otherwise start a row of its own."""
    return text if text.isprintable() else repr(text)


def _value(text: str) -> str:
    """A detail value, quoted where it could be read as more than one."""
    return repr(text) if not text.isprintable() or any(c in text for c in " ,'\"\\") else text


def details(job: dict[str, Any]) -> str:
    parts = []
    for key in DETAIL_KEYS:
        value = job[key]
        if value is True:
            parts.append(key.replace("_", "-"))
        elif isinstance(value, list) and value:
            parts.append(f"{key.replace('_', '-')}=" + ",".join(map(_value, value)))
        elif isinstance(value, str) and value:
            parts.append(f"{key.replace('_', '-')}={_value(value)}")
    return " ".join(parts)


def _table(summary: dict[str, Any]) -> str:
    header = ("NAME", "TYPE", "STATE", "DISK", "DETAILS")
    rows = [header]
    for job in summary["jobs"]:
        disk = _cell(job["disk"] or "-") + (" (mirror)" if job["mirror"] else "")
        state = _cell(job["state"]) + (" INVALID" if job["invalid"] else "")
        rows.append((_cell(job["name"]), _cell(job["type"]), state, disk, details(job)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        f"{_cell(summary['file'])}: domain {_cell(summary['domain'] or '?')}, "
        f"{len(summary['jobs'])} job(s), active={'yes' if summary['active'] else 'no'}"
    ]
    for row in rows if summary["jobs"] else ():
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())
    for job in summary["jobs"]:
        lines.extend(f"  ! {_cell(job['name'])}: {_cell(problem)}" for problem in job["problems"])
    return "\n".join(lines)


def _entry(path: str, loaded: StatusDocument | LoadError) -> dict[str, Any]:
    if isinstance(loaded, StatusDocument):
        summary = document_summary(loaded)
        return {"file": summary["file"], "error": None, **summary}
    line = loaded.line if isinstance(loaded, StatusXMLError) else None
    return {"file": display_name(path), "error": {"line": line, "message": loaded.message},
            "domain": None, "active": None, "jobs": []}


def run(args: argparse.Namespace) -> int:
    loaded = [(path, try_load(path, args.max_size)) for path in args.files]
    code = EXIT_OK if all(isinstance(doc, StatusDocument) for _, doc in loaded) else EXIT_UNUSABLE
    for path, doc in loaded:
        if not isinstance(doc, StatusDocument):
            continue
        for problem in mirror_problems(doc.disks, display_name(path)):
            error(problem)  # a <mirror> libvirt 9.0 cannot load: the domain would be lost
            code = max(code, EXIT_REJECTED)
    if args.json:
        entries = [_entry(path, doc) for path, doc in loaded]
        json.dump({"documents": entries}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("".join(_table(document_summary(doc)) + "\n"
                                 for _, doc in loaded if isinstance(doc, StatusDocument)))
    return code
