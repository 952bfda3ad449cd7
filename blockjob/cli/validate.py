"""`blockjob validate [--schema rng|xsd|both] [--json] FILE...`: check status XML against
the project's schemas.

Exit 0 when every file is valid, 1 when any is invalid, 2 when any cannot be used: not
readable under the input policy, not well-formed, refused for safety (DOCTYPE, entities), or
refused by the loader as by every other command (two jobs with one name, two jobs on one
disk: rules no schema states). Problems go to stderr as `FILE:LINE: PATH: message`, a
verdict per file to stdout; with --json stdout gets one JSON object per file and nothing
else is printed.
"""

from __future__ import annotations

import argparse
import json
import sys

from blockjob.cli.common import EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, add_max_size
from blockjob.errors import InputError, StatusXMLError
from blockjob.inputs import display_name, read_input
from blockjob.statusxml.document import loads
from blockjob.statusxml.parse import parse
from blockjob.validation.check import validate_tree

_ENGINES = {"rng": ("rng",), "xsd": ("xsd",), "both": ("rng", "xsd")}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="status XML file (`-`: standard input)")
    parser.add_argument(
        "--schema", choices=sorted(_ENGINES), default="both",
        help="which schema language to check (default: both, which must agree)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    add_max_size(parser)


def run(args: argparse.Namespace) -> int:
    engines = _ENGINES[args.schema]
    worst = EXIT_OK
    for filename in args.files:
        worst = max(worst, _one(filename, engines, args.max_size, as_json=args.json))
    return worst


def _one(filename: str, engines: tuple[str, ...], max_bytes: int, *, as_json: bool) -> int:
    name = display_name(filename)
    try:
        data = read_input(filename, max_bytes=max_bytes)
        root = parse(data, name)
        if root.tag == "domstatus":  # what the loader reads; a <blockjobs> part it never does
            loads(data, name)
        report = validate_tree(root, name, engines, data=data)
    except (InputError, StatusXMLError) as exc:
        if as_json:
            _emit({"file": name, "valid": None, "error": str(exc)})
        else:
            print(exc, file=sys.stderr)
        return EXIT_UNUSABLE
    if as_json:
        _emit(report.as_json())
    else:
        for problem in report.problems:
            print(problem.format(report.filename), file=sys.stderr)
        verdicts = ", ".join(f"{name} {_word(ok)}" for name, ok in report.verdicts.items())
        print(f"{report.filename}: {_word(report.valid)} ({verdicts})")
    return EXIT_OK if report.valid else EXIT_REJECTED


def _word(valid: bool) -> str:
    return "valid" if valid else "invalid"


def _emit(obj: object) -> None:
    print(json.dumps(obj, sort_keys=True))
