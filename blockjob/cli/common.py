"""What every subcommand shares: the exit codes, the input options, how an error is written.

Kept light (no XML, no QMP): every command imports it before it knows what it needs.
"""

from __future__ import annotations

import argparse
import sys

from blockjob.inputs import MAX_INPUT_BYTES

# The exit codes of every command (the README has them as a table). The worst outcome of
# all inputs wins.
EXIT_OK = 0
# A document was read, and it is invalid (`validate`) or its domain needs attention (`recover`).
EXIT_REJECTED = 1
# Bad usage, or an input that cannot be used: missing, unreadable, not a regular file, over
# the size limit, not well-formed XML, refused for safety (DOCTYPE, entities), or refused by
# the loader (e.g. two jobs with one name).
EXIT_UNUSABLE = 2
EXIT_INTERRUPTED = 130
# Standard output was closed before everything was written (`| head`): the output is
# incomplete and later inputs may not have been looked at. 128 + SIGPIPE, the status a
# shell reports for a program that SIGPIPE stopped.
EXIT_OUTPUT_CLOSED = 141

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def error(message: str) -> None:
    sys.stderr.write(f"{message}\n")


def size(text: str) -> int:
    """A byte count such as `65536`, `512K`, `64M` or `1G` (argparse type)."""
    digits = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = digits[-1:] if digits[-1:] in _UNITS else ""
    try:
        value = int(digits[: len(digits) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 65536, 512K, 64M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive size: {text!r}")
    return value


def add_max_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-size", type=size, default=MAX_INPUT_BYTES, metavar="BYTES",
        help=f"refuse input larger than this (default {MAX_INPUT_BYTES >> 20}M)",
    )
