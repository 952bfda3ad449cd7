"""Fault injection at each step of a save: the old file survives and StoreError is raised."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from blockjob.store import atomic
from blockjob.store.status_store import StatusStore, StoreError
from tests.test_store_support import RawDocument, lock_name, scratch_files, status_bytes

OLD = RawDocument("vm1", status_bytes("vm1", "old version"))
NEW = RawDocument("vm1", status_bytes("vm1", "new version " * 4000))

_real_open = os.open
_real_write = os.write
_real_fsync = os.fsync
_real_fstat = os.fstat
_real_close = os.close


def _fail(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _scratch_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: int) -> int:
    if os.fspath(path).endswith(".tmp") and flags & os.O_CREAT:
        raise _fail(errno.ENOSPC)
    return _real_open(path, flags, mode, **kw)


def _disk_full_write(fd: int, data: bytes | memoryview) -> int:
    # The first chunk lands, then the disk is full: a torn scratch file exists.
    if os.fstat(fd).st_size > 0:
        raise _fail(errno.ENOSPC)
    return _real_write(fd, data[: len(data) // 2])


def _io_error_write(fd: int, data: bytes | memoryview) -> int:
    raise _fail(errno.EIO)


def _fsync_failing(directory: bool) -> Callable[[int], None]:
    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode) == directory:
            raise _fail(errno.EIO)
        _real_fsync(fd)

    return fsync


def _rename_fails(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    raise _fail(errno.EXDEV)


def _link_fails(code: int) -> Callable[..., None]:
    def link(src: str | os.PathLike[str], dst: str | os.PathLike[str], **kw: object) -> None:
        raise _fail(code)

    return link


def _fchmod_fails(fd: int, mode: int) -> None:
    raise _fail(errno.EPERM)


def _scratch_close_fails(fd: int) -> None:
    # A close that reports a write-back error (NFS) once the descriptor is gone.
    scratch = os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp")
    _real_close(fd)
    if scratch:
        raise _fail(errno.EIO)


FAULTS: dict[str, tuple[object, str, Callable[..., object], str]] = {
    "create scratch": (os, "open", _scratch_open, "No space left on device"),
    "fchmod": (os, "fchmod", _fchmod_fails, "Operation not permitted"),
    "write, disk full": (os, "write", _disk_full_write, "No space left on device"),
    "write, I/O error": (os, "write", _io_error_write, "Input/output error"),
    "file fsync": (os, "fsync", _fsync_failing(directory=False), "Input/output error"),
    "close the scratch file": (os, "close", _scratch_close_fails, "Input/output error"),
    "keep the old version": (os, "link", _link_fails(errno.EIO), "Input/output error"),
    "rename": (os, "rename", _rename_fails, "Invalid cross-device link"),
    "directory fsync": (os, "fsync", _fsync_failing(directory=True), "Input/output error"),
}


@pytest.mark.parametrize("step", FAULTS)
def test_a_failing_step_leaves_the_old_file_and_no_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    store = StatusStore(tmp_path)
    path = store.save(OLD)
    before = path.stat()
    owner, function, fake, message = FAULTS[step]
    monkeypatch.setattr(owner, function, fake)
    with pytest.raises(StoreError, match=f"vm1.xml: cannot save: {message}"):
        store.save(NEW)
    monkeypatch.undo()

    after = path.stat()
    assert path.read_bytes() == OLD.data
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (
        before.st_ino, before.st_mode, before.st_mtime_ns
    )
    assert scratch_files(tmp_path) == []
    assert store.save(NEW) == path, "the store stays usable after a failed save"
    assert path.read_bytes() == NEW.data


@pytest.mark.parametrize("step", ["write, disk full", "file fsync", "rename", "directory fsync"])
def test_a_failing_first_save_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    owner, function, fake, _ = FAULTS[step]
    monkeypatch.setattr(owner, function, fake)
    with pytest.raises(StoreError):
        StatusStore(tmp_path).save(NEW)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [lock_name("vm1")]  # the lock, no status file


def test_a_real_file_size_limit_fails_the_save_and_keeps_the_old_file(tmp_path: Path) -> None:
    # The kernel, not a fake, refuses the write (EFBIG) in a forked child.
    store = StatusStore(tmp_path)
    path = store.save(OLD)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
            store.save(NEW)
        except StoreError as exc:
            code = 0 if "File too large" in str(exc) else 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_bytes() == OLD.data
    assert scratch_files(tmp_path) == []


def test_without_hard_links_a_save_still_replaces_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "link", _link_fails(errno.EPERM))
    store = StatusStore(tmp_path)
    store.save(OLD)
    path = store.save(NEW)
    assert path.read_bytes() == NEW.data
    assert scratch_files(tmp_path) == []
    monkeypatch.setattr(os, "rename", _rename_fails)
    with pytest.raises(StoreError, match="Invalid cross-device link"):
        store.save(OLD)
    assert path.read_bytes() == NEW.data
    assert scratch_files(tmp_path) == []


def test_without_hard_links_a_failed_directory_fsync_still_fails_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The documented weaker guarantee: the error is raised, the new version stays.
    monkeypatch.setattr(os, "link", _link_fails(errno.EOPNOTSUPP))
    store = StatusStore(tmp_path)
    path = store.save(OLD)
    monkeypatch.setattr(os, "fsync", _fsync_failing(directory=True))
    with pytest.raises(StoreError, match="Input/output error"):
        store.save(NEW)
    assert path.read_bytes() == NEW.data
    assert scratch_files(tmp_path) == []


def test_a_save_never_writes_into_an_existing_file_under_its_scratch_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # O_EXCL: a file already there under the chosen name (planted, or a leftover) is never
    # opened for writing; the save fails and the status file stays as it was.
    store = StatusStore(tmp_path)
    path = store.save(OLD)
    monkeypatch.setattr(atomic, "scratch_token", lambda: "0123456789abcdef")
    planted = tmp_path / f".blockjob-{lock_name('vm1')[10:26]}.0123456789abcdef.tmp"
    planted.write_bytes(b"someone else's file")
    with pytest.raises(StoreError, match="File exists"):
        store.save(NEW)
    assert planted.read_bytes() == b"someone else's file"
    assert path.read_bytes() == OLD.data


def test_a_failed_fsync_of_a_directory_it_made_fails_the_first_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", _fsync_failing(directory=True))
    with pytest.raises(StoreError, match="status: cannot create: Input/output error"):
        StatusStore(tmp_path / "status").save(NEW)
    monkeypatch.undo()
    assert os.listdir(tmp_path / "status") == []


def test_a_directory_made_meanwhile_by_another_process_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mkdir = os.mkdir

    def mkdir_lost_race(path: str, mode: int = 0o777) -> None:
        real_mkdir(path, mode)  # the other process's
        raise _fail(errno.EEXIST)

    monkeypatch.setattr(os, "mkdir", mkdir_lost_race)
    path = StatusStore(tmp_path / "a" / "b").save(NEW)
    assert path.read_bytes() == NEW.data


def test_a_lock_file_that_cannot_be_looked_at_once_locked_fails_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StatusStore(tmp_path)
    path = store.save(OLD)
    real_lstat = os.lstat

    def lstat(name: str | os.PathLike[str], **kw: object) -> os.stat_result:
        if os.fspath(name).endswith(".lock"):
            raise _fail(errno.EIO)
        return real_lstat(name)

    monkeypatch.setattr(os, "lstat", lstat)
    with pytest.raises(StoreError, match=f"{lock_name('vm1')}: cannot look at lock: "
                                         f"Input/output error"):
        store.save(NEW)
    monkeypatch.undo()
    assert path.read_bytes() == OLD.data
    assert store.save(NEW) == path, "the lock was released"


def _is_lock(fd: int) -> bool:
    return os.readlink(f"/proc/self/fd/{fd}").endswith(".lock")


def _lock_fstat_fails(fd: int) -> os.stat_result:
    if _is_lock(fd):
        raise _fail(errno.EIO)
    return _real_fstat(fd)



@pytest.mark.parametrize("waiting", [False, True], ids=["free", "owned by another"])
def test_a_lock_descriptor_that_cannot_be_looked_at_is_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, waiting: bool
) -> None:
    # Was a bare OSError (a traceback from the CLI), unlike the lock file's own lstat.
    store = StatusStore(tmp_path)
    path = store.save(OLD)
    other = os.open(tmp_path / lock_name("vm1"), os.O_RDWR | os.O_CLOEXEC)
    try:
        if waiting:
            fcntl.flock(other, fcntl.LOCK_EX)
        monkeypatch.setattr(os, "fstat", _lock_fstat_fails)
        with pytest.raises(StoreError, match=f"{lock_name('vm1')}: cannot look at lock: "
                                             f"Input/output error"), \
                store.owned("vm1", timeout=0.05) as owner:
            owner.save(NEW)
        monkeypatch.undo()
    finally:
        os.close(other)
    assert path.read_bytes() == OLD.data
    assert store.save(NEW) == path, "the lock was released"


def test_a_lock_descriptor_whose_close_fails_still_ends_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Linux frees the descriptor (and the lock) whatever close says: the save is done, and
    # raised a bare OSError after it.
    store = StatusStore(tmp_path)
    path = store.save(OLD)

    def close(fd: int) -> None:
        lock = _is_lock(fd)
        _real_close(fd)
        if lock:
            raise _fail(errno.EIO)

    monkeypatch.setattr(os, "close", close)
    assert store.save(NEW) == path
    monkeypatch.undo()
    assert path.read_bytes() == NEW.data
    with store.owned("vm1", timeout=0):
        pass  # free again
