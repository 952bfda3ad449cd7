"""Replace a file so that a crash or an error leaves the old version or the new one, never a mix.

The new bytes go to a scratch file in the same directory (never named `*.xml`, so a loader
scanning for status files cannot pick it up), are fsynced, renamed over the target, and the
directory is fsynced so the rename itself survives a power cut. If anything fails the target
is left as it was: before the rename the scratch file is simply dropped; after it, a hard
link to the old version taken just before the rename is renamed back.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

# Scratch names carry no domain name so that a long name cannot push them over NAME_MAX.
_SCRATCH = re.compile(r"\.blockjob-[0-9a-f]{16}\.tmp\Z")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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


def _link_old_version(path: Path) -> Path | None:
    """Hard-link the current version of `path` under a scratch name; None if there is none."""
    backup = scratch_path(path.parent)
    try:
        os.link(path, backup, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return backup


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Make `path` hold exactly `data` with permissions `mode`, atomically and durably.

    Raises OSError with `path` left as it was (same inode, same bytes) and no scratch file.
    """
    directory = path.parent
    scratch = scratch_path(directory)
    renamed = False
    backup: Path | None = None
    fd = os.open(scratch, _CREATE, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits off `mode`
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        backup = _link_old_version(path)
        os.replace(scratch, path)
        renamed = True
        try:
            fsync_directory(directory)
        except BaseException:
            # The new name may not be durable: put the old version back so the caller's
            # view ("the save failed") matches the file.
            if backup is None:
                os.unlink(path)
            else:
                os.replace(backup, path)
                backup = None
            raise
    finally:
        if not renamed:
            _unlink_quietly(scratch)
        if backup is not None:
            _unlink_quietly(backup)


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
