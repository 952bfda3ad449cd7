"""`blockjob` command line: one module per subcommand, xmllint-style exit codes.

Exit codes: 0 ok, 1 a document was rejected (or needs attention), 2 usage or I/O error.
Errors go to stderr as `FILE:LINE: message`, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from blockjob.cli.common import EXIT_OK, EXIT_USAGE

# Each module defines `NAME`, `HELP`, `configure(parser)` and `run(args) -> int`.
COMMANDS = ("roundtrip", "show", "validate", "recover", "demo")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"blockjob.cli.{name}") for name in COMMANDS]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="blockjob", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in _modules():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    return code
