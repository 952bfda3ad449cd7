"""What a directory scan does besides loading: leftovers removed, bad files quarantined.

Both run under the lock of the status file concerned (`blockjob.store.lock`), so they never
race with an owner saving that domain. A file that cannot be moved or removed is left in place
and reported (`LoadFailure`); the scan goes on with the other files.
"""

from __future__ import annotations

import os
import stat
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from blockjob.store.atomic import scratch_key
from blockjob.store.errors import DomainBusyError, StoreError
from blockjob.store.lock import held, lock_file

QUARANTINE = "quarantine"


@dataclass(frozen=True)
class LoadFailure:
    """A file a scan could not load (or, a scratch file, not remove), and where it went."""

    path: Path
    reason: str
    line: int | None = None
    quarantined: Path | None = None  # None if it was left in place (the reason says why)
    # Unread because the system ran out of descriptors or memory: the file may be fine.
    exhausted: bool = False

    def __str__(self) -> str:
        return f"{self.path}:{self.line or 0}: {self.reason}"


def remove_leftovers(directory: Path, names: list[str]) -> tuple[list[Path], list[LoadFailure]]:
    """Delete the scratch files among `names` that no live writer is using: those removed,
    and a failure for each one that could not be looked at, locked or removed (left in place).

    A leftover's key names its lock; a writer holds that lock while its scratch file exists,
    so a leftover whose lock is free now was left by a writer that died. A busy key is
    skipped: its owner is alive, and a later scan removes what it may leave.
    """
    by_key, kept = _leftovers(directory, names)
    removed: list[Path] = []
    for key, paths in sorted(by_key.items()):
        try:
            with held(lock_file(directory, key), 0, "it"):
                _remove(paths, removed, kept)
        except DomainBusyError:
            continue
        except StoreError as exc:  # its lock cannot be opened or taken: the error says which
            kept += [_left_in_place(path, str(exc)) for path in paths]
    return sorted(removed), sorted(kept, key=lambda failure: failure.path)


def remove_own_leftovers(
    directory: Path, key: str, names: Iterable[str]
) -> tuple[list[Path], list[LoadFailure]]:
    """`remove_leftovers` for the status file whose scratch names carry `key`, whose lock
    the caller holds: no writer of that file lives, so every scratch file of it among
    `names` is a crashed save's (`names` may be listed before the lock was taken: a live
    writer's scratch file is gone once the lock is free, and a new one has a new name)."""
    by_key, kept = _leftovers(directory, names, key)
    removed: list[Path] = []
    _remove(by_key.get(key, []), removed, kept)
    return sorted(removed), sorted(kept, key=lambda failure: failure.path)


def _leftovers(directory: Path, names: Iterable[str], only: str | None = None) -> tuple[
        dict[str, list[Path]], list[LoadFailure]]:
    """The regular files among `names` that are scratch files (of key `only`, if given),
    by key; a failure for each scratch name that cannot be looked at."""
    by_key: defaultdict[str, list[Path]] = defaultdict(list)
    failures: list[LoadFailure] = []
    for name in names:
        key = scratch_key(name)
        if key is None or only not in (None, key):
            continue
        path = directory / name
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                by_key[key].append(path)
        except FileNotFoundError:
            pass  # removed meanwhile
        except OSError as exc:
            failures.append(_left_in_place(path, f"cannot look at it: {exc.strerror or exc}"))
    return by_key, failures


def _remove(paths: list[Path], removed: list[Path], kept: list[LoadFailure]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue  # removed meanwhile
        except OSError as exc:
            kept.append(_left_in_place(path, f"cannot remove: {exc.strerror or exc}"))
            continue
        removed.append(path)


def _left_in_place(path: Path, why: str) -> LoadFailure:
    return LoadFailure(path, f"scratch file left in place: {why}")


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
