"""`blockjob recover` that SIGKILLs itself at a chosen point of its run.

`python tests/support/recover_killer.py POINT ARG...` runs the command line
`blockjob recover ARG...`, counting the points recovery passes (before and after each QMP
command and each save, in every worker thread: `blockjob.recovery.execute.Probe`), and
sends itself SIGKILL when it reaches point number POINT (from 0): no cleanup runs, the
kernel drops its locks and QMP connections. A run that ends first exits as the command
does.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from blockjob.cli import main
from blockjob.recovery import run
from blockjob.recovery.report import DomainReport

_recover_file = run.recover_file


def _install(point: int) -> None:
    lock = threading.Lock()
    seen = [0]

    def probe(_when: str, _what: str) -> None:
        with lock:
            seen[0] += 1
            if seen[0] > point:
                os.kill(os.getpid(), signal.SIGKILL)

    def recover_file(path: Path, **options: Any) -> DomainReport:
        return _recover_file(path, **{**options, "probe": probe})

    run.recover_file = recover_file


if __name__ == "__main__":
    _install(int(sys.argv[1]))
    sys.exit(main(["recover", *sys.argv[2:]]))
