"""`blockjob` command line: one module per subcommand, one table of exit codes.

Exit codes (`blockjob.cli.common`): 0 ok, 1 a document was read and is invalid or needs
attention, 2 bad usage, an input that cannot be used or an output that cannot be written,
130 interrupted, 141 standard output closed before everything was written.
Errors go to stderr as `FILE:LINE: message`, never as a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import importlib
import os
import sys
from collections.abc import Iterator, Sequence

from blockjob.cli.common import EXIT_INTERRUPTED, EXIT_OUTPUT_CLOSED, EXIT_UNUSABLE, error

# Subcommand -> its one-line help. `blockjob.cli.<name>` defines `configure(parser)` and
# `run(args) -> int`; only the chosen one is imported, so that a command does not pay for
# the imports of the others (the QMP client, the schema engine).
COMMANDS = {
    "roundtrip": "print what saving the loaded status file would write",
    "show": "list the block jobs recorded in status files",
    "validate": "check status XML files against the RelaxNG and XSD schemas",
    "recover": "reconcile recorded block jobs with QEMU after a daemon restart",
    "demo": "commit, daemon gone, recovery: on a real QEMU in a temporary directory",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_UNUSABLE)


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand argparse will pick: the first word that is not an option (the
    top-level parser has no option taking a value)."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    process = argv is None  # the command line of this process: main is its entry
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        # The chosen command's imports (lxml, the schema engine) take a moment of their
        # own: a Ctrl-C then is an interruption too, not a traceback.
        with _collector_off(process):
            args = _parse(argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if sys.stdout is None:  # started with descriptor 1 closed: no way to report anything
        error("<stdout>:0: cannot write: standard output is closed; nothing was done")
        return EXIT_UNUSABLE
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # a reader that went away is found here, not at exit
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _discard_output()
        return EXIT_OUTPUT_CLOSED
    except OSError as exc:
        # Inputs, saves and QMP report their own errors: one without a file name and of
        # these kinds is standard output's (`> /dev/full`, a full disk, a quota).
        if exc.filename is not None or exc.errno not in _OUTPUT_ERRNOS:
            raise
        _discard_output()
        error(f"<stdout>:0: cannot write: {exc.strerror}; the output is incomplete")
        return EXIT_UNUSABLE
    return code


_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


@contextlib.contextmanager
def _collector_off(process: bool) -> Iterator[None]:
    """No cyclic garbage collection while the command is imported, and what was imported
    frozen out of the collector's reach afterwards (`gc.freeze`): importing allocates
    much and frees little, and the modules live until exit, so every collection, the
    one at exit too, would walk them for nothing (about 20 ms of CPU in a `recover`
    process: docs/performance.md). In a process of its own only: a caller's objects
    stay collectable."""
    if not process:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _parse(argv: list[str]) -> argparse.Namespace:
    """The arguments, with the chosen command's `run`."""
    parser = _Parser(prog="blockjob", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    chosen = _chosen(argv)
    for name, text in COMMANDS.items():
        sub = subparsers.add_parser(name, help=text, description=text)
        if name == chosen:
            module = importlib.import_module(f"blockjob.cli.{name}")
            module.configure(sub)
            sub.set_defaults(run=module.run)
    return parser.parse_args(argv)


def _discard_output() -> None:
    """Send what stdout still buffers nowhere: flushed at exit into the closed pipe, it
    would end the process with Python's own message and status 120."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (a caller's StringIO): no exit flush to fail
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
