"""A scratch directory on a real disk file system (fsync and rename behave as on a host)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_IN_MEMORY = frozenset({"tmpfs", "ramfs", "devtmpfs"})


def filesystem_type(path: Path) -> str:
    """The type of the mount `path` lives on, from /proc/self/mountinfo (longest prefix)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            fs = fields[fields.index("-") + 1]
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fs
    return kind


@contextmanager
def disk_directory(tmp_path: Path) -> Iterator[Path]:
    """`tmp_path` if it is on a disk, else a fresh directory under /var/tmp (removed after)."""
    if filesystem_type(tmp_path) not in _IN_MEMORY:
        yield tmp_path
        return
    if filesystem_type(Path("/var/tmp")) in _IN_MEMORY:
        pytest.skip("no disk file system: /tmp and /var/tmp are both in memory")
    directory = Path(tempfile.mkdtemp(prefix="blockjob-disk-", dir="/var/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
