"""What a directory scan does besides loading: leftovers removed, bad files quarantined.

Both run under the lock of the status file concerned (`blockjob.store.lock`), so they never
race with an owner saving that domain.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections import defaultdict
from pathlib import Path

from blockjob.store.atomic import scratch_key
from blockjob.store.errors import DomainBusyError
from blockjob.store.lock import held, lock_file

QUARANTINE = "quarantine"


def remove_leftovers(directory: Path, names: list[str]) -> list[Path]:
    """Delete the scratch files among `names` that no live writer is using.

    A leftover's key names its lock; a writer holds that lock while its scratch file exists,
    so a leftover whose lock is free now was left by a writer that died. A busy key is
    skipped: its owner is alive, and a later scan removes what it may leave.
    """
    by_key: defaultdict[str, list[Path]] = defaultdict(list)
    for name in names:
        key = scratch_key(name)
        if key is not None and _is_regular(directory / name):
            by_key[key].append(directory / name)
    removed: list[Path] = []
    for key, paths in sorted(by_key.items()):
        with contextlib.suppress(DomainBusyError), held(lock_file(directory, key), 0, "it"):
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(path)
    return sorted(removed)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def quarantine(path: Path) -> Path:
    """Move `path` to `<directory>/quarantine/<name>.<UTC time>[.N]`, keeping its bytes."""
    folder = path.parent / QUARANTINE
    folder.mkdir(mode=0o700, exist_ok=True)
    # The `time` module, not `datetime`: every `recover` imports this module.
    now = time.time_ns()
    seconds = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9))
    stamp = f"{seconds}.{now // 1000 % 10**6:06d}Z"
    target = folder / f"{path.name}.{stamp}"
    serial = 0
    while os.path.lexists(target):  # same microsecond: another file of this name
        serial += 1
        target = folder / f"{path.name}.{stamp}.{serial}"
    os.rename(path, target)
    return target
