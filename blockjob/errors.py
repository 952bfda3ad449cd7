"""Typed errors: a bad document is an outcome callers act on, not a crash."""

from __future__ import annotations


class BlockJobError(Exception):
    """Base class of every error this package raises on purpose."""


class StatusXMLError(BlockJobError):
    """A document that cannot be loaded at all (libvirt would lose the domain).

    `line` is 1-based, or None when the problem has no place in the file.
    """

    def __init__(self, file: str, line: int | None, message: str) -> None:
        super().__init__(f"{file}:{line if line is not None else 0}: {message}")
        self.file = file
        self.line = line
        self.message = message


class UnsafeXMLError(StatusXMLError):
    """The document uses a DTD, entities or another construct we refuse to parse."""


class InputError(BlockJobError):
    """A path that cannot be read as a status document: missing, unreadable, not a regular
    file or larger than the size limit (see `blockjob.inputs`). `errno`: the system's error
    number when the system refused (None for a refusal of ours, e.g. the size limit)."""

    def __init__(self, path: str, message: str, *, errno: int | None = None) -> None:
        super().__init__(f"{path}:0: {message}")
        self.path = path
        self.message = message
        self.errno = errno
