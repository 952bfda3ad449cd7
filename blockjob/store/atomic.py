"""Replace a file so that a crash or an error leaves the old version or the new one, never a mix.

Every save writes a fresh scratch file in the same directory (created with O_EXCL, never named
`*.xml`, so a loader scanning for status files cannot pick it up), fsyncs it, renames it over
the target and fsyncs the directory. An inode that was ever the target is never written
again, so a reader that opened the target without a lock reads one whole version, however
many saves happen while it keeps the file open.

Before the rename, the old version gets a second, hidden name (a hard link). If the directory
fsync fails, the new name may not be durable: renaming the hidden name back over the target
puts the old version back, so the save fails as a whole. After a successful fsync the hidden
name is removed. Where the file system has no hard links, the save goes on without that
name: it is just as crash-safe, but a failed directory fsync then leaves the new version in
place (the error is still raised).

Scratch and hidden names carry a hash of the target's name, not the name itself (a long
name cannot push them over NAME_MAX), so the store can tell whose lock covers a leftover.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import hashlib
import os
import re
import secrets

_PREFIX = ".blockjob-"
# `.blockjob-<key>.<token>.tmp` (scratch), `.blockjob-<key>.<token>.old.tmp` (the old version
# kept until the directory fsync), `.blockjob-<key>.tmp` (left by versions before 0.2).
_SCRATCH = re.compile(r"\.blockjob-([0-9a-f]{16})(?:\.[0-9a-f]{16}(?:\.old)?)?\.tmp\Z")
# O_EXCL: never reuse an inode, not even one a crashed writer left. O_NONBLOCK: never hang.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# link() failures that mean "this file system has no hard links here", not an I/O error.
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})


@functools.lru_cache(maxsize=4096)
def key_of(name: str) -> str:
    """The 16 hex digits that stand for file name `name` in its scratch and lock names."""
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:16]


def scratch_key(name: str) -> str | None:
    """The key of a scratch file a crashed writer may have left behind, else None."""
    found = _SCRATCH.match(name)
    return found.group(1) if found else None


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_directories(directory: str | os.PathLike[str], mode: int) -> None:
    """`mkdir -p` with `mode` for `directory` itself, durably: the parent of every directory
    made here is fsynced, so a crash cannot lose the new entry (and all saved beneath it).
    `directory` itself is fsynced by each save into it."""
    path = os.fspath(directory)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip(os.sep))  # "a/b/.." makes "a/b", as mkdir -p does
    if parent:
        make_directories(parent, 0o777)  # the umask applies, as for `mkdir -p`
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if os.path.isdir(path):
            return  # made meanwhile by someone else
        raise
    fsync_directory(parent or ".")


def _write_new(scratch: str, data: bytes, mode: int) -> None:
    fd = os.open(scratch, _CREATE, mode)  # raises before anything of ours exists
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits off `mode`
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:  # a failed close too: the data may not have reached the disk
        _unlink_quietly(scratch)
        raise


class _Old(enum.Enum):
    KEPT = "the old version has the hidden name too"
    ABSENT = "there is no old version"
    UNKEPT = "the file system cannot give it a second name"


def _keep_old(path: str, kept: str) -> _Old:
    """Give the current version of `path` the hidden name `kept` as well."""
    try:
        os.link(path, kept, follow_symlinks=False)
    except FileNotFoundError:
        return _Old.ABSENT
    except OSError as exc:
        if exc.errno in _NO_LINKS:
            return _Old.UNKEPT
        raise
    return _Old.KEPT


def replace_file(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Make `path` hold exactly `data` with permissions `mode`, atomically and durably.

    The caller serializes writers of `path`. Raises OSError with `path` naming the old
    version (same inode, same bytes; see the module docstring for file systems without
    hard links) and no scratch file left.
    """
    # Plain strings, not Path objects: a save is a few syscalls, and pathlib would cost
    # as much CPU as all of them together.
    target = os.fspath(path)
    directory, name = os.path.split(target)
    token = os.path.join(directory, f"{_PREFIX}{key_of(name)}.{secrets.token_hex(8)}")
    scratch, kept = f"{token}.tmp", f"{token}.old.tmp"
    _write_new(scratch, data, mode)
    old = _Old.ABSENT
    try:
        old = _keep_old(target, kept)
        os.rename(scratch, target)
        try:
            fsync_directory(directory or ".")
        except BaseException:
            # The new name may not be durable: put the old version back, so the caller's
            # view ("the save failed") matches the file.
            if old is _Old.KEPT:
                os.rename(kept, target)
                old = _Old.ABSENT
            elif old is _Old.ABSENT:
                _unlink_quietly(target)
            raise
    except BaseException:
        _unlink_quietly(scratch)  # the unfinished new version, if not renamed
        raise
    finally:
        if old is _Old.KEPT:
            _unlink_quietly(kept)


def _unlink_quietly(path: str) -> None:
    # A leftover that cannot be removed now is removed by the next load's clean-up.
    with contextlib.suppress(OSError):
        os.unlink(path)
