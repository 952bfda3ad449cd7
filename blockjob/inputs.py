"""The input policy: what every command and the API accept as a status document to read.

- At most `max_bytes` bytes (`MAX_INPUT_BYTES`, 64 MiB, unless the caller says otherwise):
  status files are tens of kilobytes, and an unbounded read of a hostile file costs
  gigabytes of memory before the parser even starts.
- Regular files only. A FIFO, socket, device or directory is refused at once: the file is
  opened non-blocking, so opening a FIFO without a writer does not wait.
- `-` means standard input, on the command line only (`read_input`); the API reads paths.
- Every failure is an `InputError` naming the path, never a bare `OSError`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable
from typing import BinaryIO

from blockjob.errors import InputError

MAX_INPUT_BYTES = 64 * 1024 * 1024
STDIN = "-"
STDIN_NAME = "<stdin>"
_CHUNK = 1 << 20
# A file's reads ask for its size and one byte more, so one read brings it all and the
# next sees the end: a 1 MiB buffer per read, trimmed to the bytes read, cost a restart
# about 2% a file (the allocation, and fresh pages for it after the heap was trimmed).
# Not below this, for files whose size says nothing (`/proc`) or that grow meanwhile.
_MIN_CHUNK = 1 << 14

PathLike = str | os.PathLike[str]
_Reader = Callable[[int], bytes]


def display_name(name: PathLike) -> str:
    """How messages name an input: standard input as `<stdin>`, files by their path."""
    text = os.fspath(name)
    return STDIN_NAME if text == STDIN else text


def read_input(name: PathLike, *, max_bytes: int = MAX_INPUT_BYTES,
               stdin: BinaryIO | None = None) -> bytes:
    """`read_file(name)`, or all of standard input when `name` is `-`."""
    if os.fspath(name) != STDIN:
        return read_file(name, max_bytes=max_bytes)
    if stdin is None and sys.stdin is None:  # started with descriptor 0 closed
        raise InputError(STDIN_NAME, "cannot read: standard input is closed")
    stream = stdin if stdin is not None else sys.stdin.buffer
    try:
        return _read_bounded(stream.read, STDIN_NAME, max_bytes)
    except OSError as exc:
        raise InputError(STDIN_NAME, f"cannot read: {_reason(exc)}") from None


def read_file(path: PathLike, *, max_bytes: int = MAX_INPUT_BYTES,
              follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file `path`, or InputError saying why not."""
    return read_file_and_stat(path, max_bytes=max_bytes, follow_symlinks=follow_symlinks)[0]


def read_file_and_stat(path: PathLike, *, max_bytes: int = MAX_INPUT_BYTES,
                       follow_symlinks: bool = True) -> tuple[bytes, os.stat_result]:
    """`read_file`, with the file's status as it was opened (which version was read)."""
    name = os.fspath(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(name, flags)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise InputError(name, f"cannot open: {_reason(exc)}", errno=_errno(exc)) from None
    try:
        info = os.fstat(fd)
        _check_kind(name, info.st_mode)
        if info.st_size > max_bytes:
            raise InputError(name, _too_large(info.st_size, max_bytes))
        chunk = min(_CHUNK, max(info.st_size + 1, _MIN_CHUNK))
        return _read_bounded(lambda size: os.read(fd, size), name, max_bytes, chunk), info
    except OSError as exc:
        raise InputError(name, f"cannot read: {_reason(exc)}", errno=exc.errno) from None
    finally:
        # Nothing was written through it, and Linux frees it whatever close says.
        with contextlib.suppress(OSError):
            os.close(fd)


def is_directory(path: PathLike) -> bool:
    """Whether `path` is a directory; InputError when it cannot be looked at at all."""
    name = os.fspath(path)
    if name == STDIN:
        return False
    try:
        return stat.S_ISDIR(os.stat(name).st_mode)
    except (OSError, ValueError) as exc:
        raise InputError(name, f"cannot open: {_reason(exc)}") from None


def check_regular(path: PathLike) -> None:
    """InputError unless `path` is (a link to) a regular file: what a caller that must do
    something before reading (take a lock) checks first, so a device is refused as such."""
    name = os.fspath(path)
    try:
        mode = os.stat(name).st_mode
    except (OSError, ValueError) as exc:
        raise InputError(name, f"cannot open: {_reason(exc)}") from None
    _check_kind(name, mode)


def _reason(exc: OSError | ValueError) -> str:
    """What went wrong, without the path the message names already."""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def _errno(exc: OSError | ValueError) -> int | None:
    return exc.errno if isinstance(exc, OSError) else None


def _check_kind(name: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device")
    raise InputError(name, f"not a regular file ({kind})")


def _read_bounded(read: _Reader, name: str, max_bytes: int, size: int = _CHUNK) -> bytes:
    """Read to the end, `size` bytes at most a read, refusing input that grows past
    `max_bytes` while it is read."""
    chunks: list[bytes] = []
    total = 0
    while chunk := read(min(size, max_bytes - total + 1)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise InputError(name, _too_large(None, max_bytes))
    return b"".join(chunks)


def _too_large(size: int | None, max_bytes: int) -> str:
    what = f"{size} bytes" if size is not None else "more bytes than that"
    return f"{what}, larger than {max_bytes}, the size limit"
