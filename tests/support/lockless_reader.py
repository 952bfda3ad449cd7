"""A reader without any lock of ours, polling a status directory in a tight loop.

`python tests/support/lockless_reader.py DIR STOP` reads every `*.xml` of DIR over and over
the ways a reader does (`blockjob.load`, `StatusStore.load_all`, `blockjob show`,
`validate_file`), prints
`reading` once it has read them all once, goes on until the file STOP exists, then prints
one JSON object: how many documents it read, and every
error it met (`FILE: message`). A status file is never removed in these campaigns, so
every read must give a whole document.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import blockjob
from blockjob import cli
from blockjob.store.status_store import StatusStore
from blockjob.validation.check import validate_file


def _round(directory: Path, number: int, errors: list[str]) -> int:
    """One pass over the directory; how many documents it read."""
    read = 0
    for path in sorted(directory.glob("*.xml")):
        try:
            blockjob.load(path)
            read += 1
        except blockjob.BlockJobError as exc:
            errors.append(f"load {path.name}: {exc}")
    if number % 4 == 0:
        report = StatusStore(directory).load_all()
        read += len(report.documents)
        errors += [f"load_all: {failure}" for failure in report.failures]
    if number % 8 == 0:
        read += _show(sorted(directory.glob("*.xml")), errors)
    if number % 64 == 63:
        for path in sorted(directory.glob("*.xml")):
            try:
                verdict = validate_file(path)
            except blockjob.BlockJobError as exc:
                errors.append(f"validate {path.name}: {exc}")
                continue
            read += 1
            errors += [f"validate {path.name}: {problem}" for problem in verdict.problems]
    return read


def _show(paths: list[Path], errors: list[str]) -> int:
    """`blockjob show --json` of `paths`, in this process; how many documents it showed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(["show", "--json", *map(str, paths)])
    if code != 0:
        errors.append(f"show exited {code}: {out.getvalue()[-2000:]}")
        return 0
    return len(paths)


def main(directory: Path, stop: Path) -> int:
    errors: list[str] = []
    reads = _round(directory, 0, errors)
    rounds = 1
    print("reading", flush=True)
    while not os.path.exists(stop):
        reads += _round(directory, rounds, errors)
        rounds += 1
    print(json.dumps({"reads": reads, "rounds": rounds, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
