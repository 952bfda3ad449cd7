"""What every subcommand shares: exit codes and how an error is written."""

from __future__ import annotations

import sys

# xmllint's habits: 1 also means "needs attention" for recover.
EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def error(message: str) -> None:
    sys.stderr.write(f"{message}\n")
