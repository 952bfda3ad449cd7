"""Replace a file so that a crash or an error leaves the old version or the new one, never a mix.

The new bytes go to a scratch file in the same directory (never named `*.xml`, so a loader
scanning for status files cannot pick it up), are fsynced, put in place of the target in one
atomic step, and the directory is fsynced so that step survives a power cut.

The atomic step swaps the two names (renameat2 RENAME_EXCHANGE) instead of renaming over the
target: the old version then stays reachable under the scratch name until the directory fsync
has succeeded, so a failed fsync can swap back and the save fails as a whole. A hard link kept
as a backup would do the same but costs about 5% more per save. Where the file system cannot
swap, a plain rename is used; it is just as crash-safe, but a failed directory fsync then
leaves the new version in place (the error is still raised).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import os
import re
import secrets
from pathlib import Path

# Scratch names carry no domain name so that a long name cannot push them over NAME_MAX.
_SCRATCH = re.compile(r"\.blockjob-[0-9a-f]{16}\.tmp\Z")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_CANNOT_SWAP = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM})


def _find_renameat2() -> ctypes._CFunctionType | None:
    libc = ctypes.CDLL(None, use_errno=True)
    function = getattr(libc, "renameat2", None)  # glibc >= 2.28
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                             ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


_renameat2 = _find_renameat2()


class Swap(enum.Enum):
    DONE = "the names were swapped"
    NO_TARGET = "the target does not exist"
    UNSUPPORTED = "the file system cannot swap names"


def swap_names(first: Path, second: Path) -> Swap:
    """Atomically exchange what the two names point to."""
    if _renameat2 is None:
        return Swap.UNSUPPORTED
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                  _RENAME_EXCHANGE) == 0:
        return Swap.DONE
    code = ctypes.get_errno()
    if code == errno.ENOENT and os.path.lexists(first):
        return Swap.NO_TARGET
    if code in _CANNOT_SWAP:
        return Swap.UNSUPPORTED
    raise OSError(code, os.strerror(code), os.fspath(second))


def scratch_path(directory: Path) -> Path:
    return directory / f".blockjob-{secrets.token_hex(8)}.tmp"


def is_scratch(name: str) -> bool:
    """Whether `name` is a scratch file a crashed writer may have left behind."""
    return _SCRATCH.match(name) is not None


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Make `path` hold exactly `data` with permissions `mode`, atomically and durably.

    Raises OSError with `path` left as it was (same inode, same bytes; see the module
    docstring for file systems that cannot swap names) and no scratch file.
    """
    directory = path.parent
    scratch = scratch_path(directory)
    fd = os.open(scratch, _CREATE, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits off `mode`
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        swap = swap_names(scratch, path)  # if DONE, `scratch` now names the old version
        if swap is not Swap.DONE:
            os.replace(scratch, path)
        try:
            fsync_directory(directory)
        except BaseException:
            # The new name may not be durable: put the old version back so the caller's
            # view ("the save failed") matches the file.
            if swap is Swap.DONE:
                swap_names(scratch, path)
            elif swap is Swap.NO_TARGET:
                os.unlink(path)
            raise
    finally:
        # The unfinished new version, or the replaced old one.
        _unlink_quietly(scratch)


def _unlink_quietly(path: Path) -> None:
    # A scratch file that cannot be removed now is removed by the next load's clean-up.
    with contextlib.suppress(OSError):
        os.unlink(path)


def remove_scratch_files(directory: Path) -> list[Path]:
    """Delete scratch files left by crashed writers; the caller must hold the writers' lock."""
    removed = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if is_scratch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return sorted(removed)
