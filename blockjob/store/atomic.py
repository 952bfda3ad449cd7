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

A domain's owner (`owned`) has the target looked at just before the hidden name is made: if
another writer (libvirt takes no lock of ours) replaced, rewrote or removed it since the
version the owner read or wrote (`expected`), FileChangedError, and nothing is replaced.
Its new version gets the old one's owner, so root saving a file of a session daemon's
leaves it readable to that daemon.

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
import stat

_PREFIX = ".blockjob-"
# `.blockjob-<key>.<token>.tmp` (scratch), `.blockjob-<key>.<token>.old.tmp` (the old version
# kept until the directory fsync), `.blockjob-<key>.tmp` (left by versions before 0.2).
_SCRATCH = re.compile(r"\.blockjob-([0-9a-f]{16})(?:\.[0-9a-f]{16}(?:\.old)?)?\.tmp\Z")
# O_EXCL: never reuse an inode, not even one a crashed writer left. O_NONBLOCK: never hang.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# link() failures that mean "this file system has no hard links here", not an I/O error.
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})

# One version of a file: (st_dev, st_ino, st_size, st_mtime_ns). A save makes a new inode,
# and so does libvirt's (a `.new` file renamed over); a rewrite in place changes the time.
Version = tuple[int, int, int, int]


class FileChangedError(Exception):
    """The file is no longer the version the caller read or wrote last: it was `how`."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


@functools.lru_cache(maxsize=4096)
def key_of(name: str) -> str:
    """The 16 hex digits that stand for file name `name` in its scratch and lock names."""
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:16]


def scratch_token() -> str:
    """The random part of a save's scratch names: 16 hex digits from `os.urandom` (what
    `secrets.token_hex` returns, without that module's imports: hmac, base64, random)."""
    return os.urandom(8).hex()


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


def version_of(info: os.stat_result) -> Version:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def _write_new(scratch: str, data: bytes, mode: int, target: str, *, owned: bool,
               expected: Version | None) -> Version | None:
    """Write `scratch` durably as the next version of `target`; with `owned`, take `target`
    over (`_take_over`) and return the version written."""
    fd = os.open(scratch, _CREATE, mode)  # raises before anything of ours exists
    try:
        try:
            if not owned:  # (an owned save reads the mode in the fstat it makes anyway)
                os.fchmod(fd, mode)  # the umask may have taken bits off `mode`
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            version = _take_over(fd, mode, target, expected) if owned else None
        finally:
            os.close(fd)
    except BaseException:  # a failed close too: the data may not have reached the disk
        _unlink_quietly(scratch)
        raise
    return version


def _take_over(fd: int, mode: int, target: str, expected: Version | None) -> Version:
    """Check that `target` is still the version `expected` (unless None), as late as can
    be before it is replaced; give the new version `fd` its mode and the old one's owner;
    the new version. (Each stat costs a save about 1.5%: one of each, and no fchmod.)"""
    new = os.fstat(fd)
    try:
        old: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        old = None
    if expected is not None and (old is None or version_of(old) != expected):
        raise FileChangedError("removed" if old is None else "replaced or rewritten")
    if stat.S_IMODE(new.st_mode) != mode or (
            old is not None and (old.st_uid != new.st_uid or old.st_gid != new.st_gid)):
        _set_mode_and_owner(fd, mode, new, old)
    return version_of(new)


def _set_mode_and_owner(fd: int, mode: int, new: os.stat_result,
                        old: os.stat_result | None) -> None:
    """`mode` (the umask took bits off it), and the owner of the old version if it is a
    regular file (root saving a user's file; a setgid directory), durably."""
    os.fchmod(fd, mode)
    if old is not None and stat.S_ISREG(old.st_mode) and (
            old.st_uid != new.st_uid or old.st_gid != new.st_gid):
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot keep its owner (uid {old.st_uid}, gid "
                                     f"{old.st_gid}): {exc.strerror}") from None
    os.fsync(fd)


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


def replace_file(path: str | os.PathLike[str], data: bytes, mode: int = 0o600, *,
                 owned: bool = False, expected: Version | None = None) -> Version | None:
    """Make `path` hold exactly `data` with permissions `mode`, atomically and durably.

    The caller serializes writers of `path`. With `owned` (a caller that keeps track of the
    file's versions: a domain's owner) the new version keeps the old one's owner (user and
    group), the version written is returned (else None), and with `expected` (what
    `version_of` said of the file the caller read or last wrote) a file replaced, rewritten
    or removed since by a writer that does not take the caller's lock (libvirt) raises
    FileChangedError and is left as it is. Raises OSError with `path` naming the old
    version (same inode, same bytes; see the module docstring for file systems without
    hard links) and no scratch file left.
    """
    # Plain strings, not Path objects: a save is a few syscalls, and pathlib would cost
    # as much CPU as all of them together.
    target = os.fspath(path)
    directory, name = os.path.split(target)
    token = os.path.join(directory, f"{_PREFIX}{key_of(name)}.{scratch_token()}")
    scratch, kept = f"{token}.tmp", f"{token}.old.tmp"
    version = _write_new(scratch, data, mode, target, owned=owned, expected=expected)
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
    return version


def _unlink_quietly(path: str) -> None:
    # A leftover that cannot be removed now is removed by the next load's clean-up.
    with contextlib.suppress(OSError):
        os.unlink(path)
