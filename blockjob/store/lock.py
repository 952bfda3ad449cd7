"""The per-domain owner lock: an exclusive `flock` of a hidden file next to the status file.

Each holder opens its own descriptor, so threads of one process exclude each other as
processes do (flock locks per open file description). Waiting is always bounded: the lock
is polled until a deadline, then DomainBusyError. A child forked while a lock is held
closes its copy of the descriptor at the fork (an `os.register_at_fork` hook), so the lock
stays the parent's alone: a child that lives on can neither keep the domain locked after
its parent has died nor unlock it while its parent holds it.
Lock files are never deleted: removing one while another process waits on it would let two
owners lock two different files of the same name. Should one be deleted or replaced anyway,
a waiter that then gets the old file's lock sees that the lock's name gives another file
(device and inode compared) and locks that one instead, so it never owns the domain beside
a newcomer. An owner that held the old file already is invisible to a newcomer, though.
A thread that asks again for a lock it holds, by whatever path (the file's device and inode
are compared), gets an error at once instead of waiting for itself until the timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path

from blockjob.store.atomic import key_of
from blockjob.store.errors import DomainBusyError, StoreError

_OPEN = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_POLL = 0.005

_Identity = tuple[int, int]  # (st_dev, st_ino) of a lock file


class _HeldHere(threading.local):
    """The lock files this thread holds, by (device, inode)."""

    def __init__(self) -> None:
        self.files: set[_Identity] = set()


_HELD_HERE = _HeldHere()

# Every lock descriptor open in this process, whichever thread holds it: a forked child
# closes them all. Opening one and listing it, or unlisting and closing it, is a single step
# as a fork sees it (`_LISTING` is held across the fork), so no child keeps a descriptor:
# the parent's close is what unlocks. Reentrant: a signal handler that forks while its
# thread lists a descriptor must not hang.
_OPEN_LOCKS: set[held] = set()
_LISTING = threading.RLock()


def _close_inherited_locks() -> None:
    """In a forked child (one thread): close the copies, so the parent's locks stay held
    by the parent alone; the child holds none (nor does its thread)."""
    for lock in _OPEN_LOCKS:
        with contextlib.suppress(OSError):
            os.close(lock._fd)
        lock._fd = -1
    _OPEN_LOCKS.clear()
    _HELD_HERE.files = set()
    _LISTING.release()


os.register_at_fork(before=_LISTING.acquire, after_in_parent=_LISTING.release,
                    after_in_child=_close_inherited_locks)


def lock_file(directory: Path, key: str) -> Path:
    """The lock file of the status files whose scratch names carry `key`."""
    return directory / f".blockjob-{key}.lock"


def lock_file_of(path: Path) -> Path:
    return lock_file(path.parent, key_of(path.name))


class held:  # noqa: N801 - used as a function: `with held(lock, timeout, what):`
    """Hold `lock` exclusively, waiting at most `timeout` seconds (0: one try).

    A class, not a generator: a one-off save takes and releases the lock each time, and
    the generator machinery cost more than the syscalls."""

    __slots__ = ("_fd", "_file", "_files", "_lock", "_timeout", "_what")

    def __init__(self, lock: str | Path, timeout: float, what: str) -> None:
        self._lock, self._timeout, self._what = lock, timeout, what
        self._fd = -1

    def __enter__(self) -> None:
        files = self._files = _HELD_HERE.files
        deadline = time.monotonic() + self._timeout
        while True:
            self._open()
            try:
                self._lock_within(deadline)
                locked = self._locked_file()
            except BaseException:
                self._close()
                raise
            if locked is not None:
                break
            self._close()  # the name gives another file now: lock that one
        self._file = locked
        files.add(locked)

    def __exit__(self, *_exc: object) -> None:
        self._files.discard(self._file)
        if self._fd >= 0:  # else this is a forked child: its copy was closed at the fork
            self._close()

    def _open(self) -> None:
        with _LISTING:
            try:
                self._fd = os.open(self._lock, _OPEN, 0o600)
            except OSError as exc:
                raise StoreError(self._lock,
                                 f"cannot open lock: {exc.strerror or exc}") from None
            _OPEN_LOCKS.add(self)

    def _close(self) -> None:
        # Closing unlocks: no forked child has a copy (or it would keep the lock), as the
        # descriptor leaves the list in the same step.
        with _LISTING:
            _OPEN_LOCKS.discard(self)
            # Linux frees the descriptor, and so the lock, even when close reports an error.
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def _lock_within(self, deadline: float) -> None:
        """Lock the open descriptor, polling until `deadline`."""
        fd, lock = self._fd, self._lock
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if not waited:  # first refusal: is the holder this very thread?
                    self._refuse_reentry()
                    waited = True
                if time.monotonic() >= deadline:
                    raise DomainBusyError(
                        lock, f"{self._what} is owned by another process or thread "
                              f"(waited {self._timeout:g} s)") from None
                time.sleep(_POLL)
            except OSError as exc:
                raise StoreError(lock, f"cannot lock: {exc.strerror or exc}") from None

    def _locked_file(self) -> _Identity | None:
        """The (device, inode) of the file locked, or None if the lock's name gives another
        file now (it was deleted or replaced while this descriptor waited)."""
        try:
            locked = os.fstat(self._fd)
            named = os.lstat(self._lock)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unseen(exc) from None
        if named.st_ino != locked.st_ino or named.st_dev != locked.st_dev:
            return None
        return locked.st_dev, locked.st_ino

    def _unseen(self, exc: OSError) -> StoreError:
        return StoreError(self._lock, f"cannot look at lock: {exc.strerror or exc}")

    def _refuse_reentry(self) -> None:
        try:
            file = os.fstat(self._fd)
        except OSError as exc:
            raise self._unseen(exc) from None
        if (file.st_dev, file.st_ino) in self._files:
            raise DomainBusyError(self._lock, f"{self._what} is already owned by this thread "
                                              f"(an owner block inside another of the same "
                                              f"domain)")
