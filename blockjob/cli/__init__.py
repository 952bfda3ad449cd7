"""`blockjob` command line: one module per subcommand, one table of exit codes.

Exit codes (`blockjob.cli.common`): 0 ok, 1 a document was read and is invalid or needs
attention, 2 bad usage or an input that cannot be used, 130 interrupted.
Errors go to stderr as `FILE:LINE: message`, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from blockjob.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_UNUSABLE

# Each module defines `NAME`, `HELP`, `configure(parser)` and `run(args) -> int`.
COMMANDS = ("roundtrip", "show", "validate", "recover", "demo")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_UNUSABLE)


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
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    return code
