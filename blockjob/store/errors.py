"""Errors of the status store."""

from __future__ import annotations

import errno
import os

from blockjob.errors import BlockJobError


class StoreError(BlockJobError):
    """A status file could not be written or read (I/O), or the store was misused."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        super().__init__(f"{os.fspath(path)}: {message}")
        self.path = os.fspath(path)
        self.message = message


# What the system runs out of (descriptors, memory), not what is wrong with a file.
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


class StoreExhaustedError(StoreError):
    """A file could not be read because the system ran out of descriptors or memory: the
    file may well be fine, so it is neither refused as unusable nor quarantined."""


class DomainNameError(StoreError):
    """The domain name is missing, or cannot be a file name in the store."""


class DomainBusyError(StoreError):
    """Another owner held the domain for longer than the caller was willing to wait."""


class StoreConflictError(StoreError):
    """A save refused because the file changed since its owner read or saved it: another
    writer, which does not take the store's lock (libvirt), saved or removed it."""
