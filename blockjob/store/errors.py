"""Errors of the status store."""

from __future__ import annotations

import os

from blockjob.errors import BlockJobError


class StoreError(BlockJobError):
    """A status file could not be written or read (I/O), or the store was misused."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        super().__init__(f"{os.fspath(path)}: {message}")
        self.path = os.fspath(path)
        self.message = message


class DomainNameError(StoreError):
    """The domain name is missing, or cannot be a file name in the store."""


class DomainBusyError(StoreError):
    """Another owner held the domain for longer than the caller was willing to wait."""
