"""The per-domain owner lock: an exclusive `flock` of a hidden file next to the status file.

Each holder opens its own descriptor, so threads of one process exclude each other as
processes do (flock locks per open file description). Waiting is always bounded: the lock
is polled until a deadline, then DomainBusyError. A child forked while the lock is held
shares the parent's open file description; it never unlocks it (only the process that took
the lock does, explicitly, so a child that lives on cannot keep the domain locked either).
Lock files are never deleted: removing one while another process waits on it would let two
owners lock two different files of the same name. A thread that asks again for a lock it
holds gets an error at once instead of waiting for itself until the timeout.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from blockjob.store.atomic import key_of
from blockjob.store.errors import DomainBusyError, StoreError

_OPEN = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_POLL = 0.005


class _HeldHere(threading.local):
    """The lock files this thread holds (a forked child starts with none: pid differs)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.names: set[str] = set()

    def current(self) -> set[str]:
        if self.pid != os.getpid():
            self.pid, self.names = os.getpid(), set()
        return self.names


_HELD_HERE = _HeldHere()


def lock_file(directory: Path, key: str) -> Path:
    """The lock file of the status files whose scratch names carry `key`."""
    return directory / f".blockjob-{key}.lock"


def lock_file_of(path: Path) -> Path:
    return lock_file(path.parent, key_of(path.name))


class held:  # noqa: N801 - used as a function: `with held(lock, timeout, what):`
    """Hold `lock` exclusively, waiting at most `timeout` seconds (0: one try).

    A class, not a generator: a one-off save takes and releases the lock each time, and
    the generator machinery cost more than the syscalls."""

    __slots__ = ("_fd", "_lock", "_locker", "_name", "_names", "_timeout", "_what")

    def __init__(self, lock: Path, timeout: float, what: str) -> None:
        self._lock, self._timeout, self._what = lock, timeout, what

    def __enter__(self) -> None:
        lock = self._lock
        names = self._names = _HELD_HERE.current()
        name = self._name = os.path.abspath(lock)
        if name in names:
            raise DomainBusyError(lock, f"{self._what} is already owned by this thread (an "
                                        f"owner block inside another of the same domain)")
        try:
            fd = self._fd = os.open(lock, _OPEN, 0o600)
        except OSError as exc:
            raise StoreError(lock, f"cannot open lock: {exc.strerror or exc}") from None
        try:
            _lock_within(fd, self._timeout, lock, self._what)
        except BaseException:
            os.close(fd)
            raise
        self._locker = _HELD_HERE.pid  # this process's: `current()` just checked it
        names.add(name)

    def __exit__(self, *_exc: object) -> None:
        self._names.discard(self._name)
        try:
            if os.getpid() == self._locker:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)


def _lock_within(fd: int, timeout: float, lock: Path, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise DomainBusyError(
                    lock, f"{what} is owned by another process or thread "
                          f"(waited {timeout:g} s)") from None
            time.sleep(_POLL)
        except OSError as exc:
            raise StoreError(lock, f"cannot lock: {exc.strerror or exc}") from None
