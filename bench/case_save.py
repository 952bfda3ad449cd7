"""Saving one document durably vs the bare atomic write of the same bytes."""

from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path

from bench.table import Row
from bench.timing import Budget, Timed, in_turns
from blockjob import StatusStore, loads


def _bare_atomic_write(directory: Path, target: Path, data: bytes) -> None:
    """The floor: write + fsync + rename + directory fsync, nothing else."""
    scratch = directory / "bare.tmp"
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(scratch, target)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_rows(name: str, data: bytes, budget: Budget, where: Path | None = None) -> list[Row]:
    """`StatusStore.save` (serialize, lock, scratch file, fsyncs, rename) on a real disk.

    `where` should be on the file system status files live on: fsync costs differ by orders
    of magnitude between tmpfs and a disk.
    """
    doc = loads(data)
    with tempfile.TemporaryDirectory(prefix="blockjob-save-", dir=where) as tmp:
        directory = Path(tmp)
        store = StatusStore(directory)
        store.save(doc)
        payload = doc.dumps()
        bare = directory / "bare.xml"
        floor, ours = in_turns(
            [Timed(partial(_bare_atomic_write, directory, bare, payload)),
             Timed(partial(store.save, doc))],
            budget,
        )
    return [Row("save (fsync)", name, ours, "write+fsync+rename+dir fsync", floor, "<= 1.1")]
