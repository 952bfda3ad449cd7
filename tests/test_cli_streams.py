"""The command line with its standard streams closed or gone: a clear message and an exit
code from the README's table, never a traceback nor Python's own status 120."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from blockjob.cli.common import EXIT_OUTPUT_CLOSED, EXIT_UNUSABLE

REPO = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
GOOD = str(DATA / "every-type-in.xml")
# A guard against a hang, not a speed claim.
CHILD_TIMEOUT = 60
# Buffered output, as on a user's terminal: the last flush happens at exit.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}


def _cli(argv: list[str], stdout: int,
         preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "blockjob", *argv], stdout=stdout, stderr=subprocess.PIPE,
        preexec_fn=preexec, env=ENV, cwd=REPO, timeout=CHILD_TIMEOUT, check=False,
    )


@pytest.mark.parametrize("argv", [
    ["show", GOOD], ["show", "--json", GOOD], ["roundtrip", GOOD], ["validate", GOOD],
    ["validate", "--json", GOOD], ["recover", "--dry-run", GOOD],
], ids=lambda argv: " ".join(word for word in argv if word != GOOD))
def test_a_reader_gone_before_the_output_is_status_141(argv: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -c0`: every write fails with EPIPE
    try:
        result = _cli(argv, stdout=write_end)
    finally:
        os.close(write_end)
    assert result.stderr.decode().count("Exception ignored") == 0, result.stderr
    assert b"Traceback" not in result.stderr
    assert result.returncode == EXIT_OUTPUT_CLOSED


def test_closed_standard_output_is_said_and_nothing_is_done() -> None:
    result = _cli(["show", GOOD], stdout=subprocess.DEVNULL, preexec=lambda: os.close(1))
    assert result.returncode == EXIT_UNUSABLE
    # Said as its siblings are (`<stdin>:0: ...`, `<stdout>:0: cannot write: ...`).
    assert result.stderr.decode() == (
        "<stdout>:0: cannot write: standard output is closed; nothing was done\n")


@pytest.mark.parametrize("command", ["show", "roundtrip", "validate"])
def test_dash_with_standard_input_closed_is_an_input_error(command: str) -> None:
    result = _cli([command, "-"], stdout=subprocess.PIPE, preexec=lambda: os.close(0))
    assert result.returncode == EXIT_UNUSABLE
    assert result.stderr.decode() == "<stdin>:0: cannot read: standard input is closed\n"


@pytest.mark.parametrize("argv", [["show", GOOD], ["roundtrip", GOOD], ["validate", GOOD]],
                         ids=lambda argv: argv[0])
def test_standard_output_that_cannot_be_written_is_said(argv: list[str]) -> None:
    # A full disk gave a traceback and exit 1, the code of an invalid document.
    with open("/dev/full", "wb") as full:
        result = _cli(argv, stdout=full.fileno())
    assert result.returncode == EXIT_UNUSABLE
    assert result.stderr.decode() == (
        "<stdout>:0: cannot write: No space left on device; the output is incomplete\n")
