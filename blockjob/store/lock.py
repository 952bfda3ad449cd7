"""An exclusive advisory lock (flock) on one file, for processes and for threads.

The lock file is opened once per process and kept open: opening it on every save cost about
3% of a save. Threads of one process share that descriptor, so a mutex orders them first
(flock alone would let them all in: it locks per open file description). A forked child
must not use its parent's descriptor, which shares the parent's lock, so after a fork each
lock forgets the inherited descriptor and mutex and opens its own on next use.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._fd = -1
        self._closer: weakref.finalize[[int], FileLock] | None = None
        _LOCKS.add(self)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock; OSError (e.g. FileNotFoundError) if the lock file cannot be opened."""
        with self._mutex:
            if self._fd < 0:
                self._fd = os.open(self.path, _FLAGS, 0o600)
                self._closer = weakref.finalize(self, os.close, self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._mutex:
            self._forget()

    def _forget(self) -> None:
        # Closing our copy of a descriptor never releases a lock another process holds on it.
        if self._closer is not None:
            self._closer()
            self._closer = None
        self._fd = -1

    def _after_fork(self) -> None:
        self._mutex = threading.Lock()  # another parent thread may have held the old one
        self._forget()


_LOCKS: weakref.WeakSet[FileLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
