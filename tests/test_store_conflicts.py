"""Writers that do not take the store's lock (libvirt), and the owner of the file on disk."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from blockjob.store import StatusStore, StoreConflictError, StoreError
from tests.test_store_support import RawDocument, scratch_files, status_bytes

OURS = RawDocument("vm1", status_bytes("vm1", "ours"))
EDITED = RawDocument("vm1", status_bytes("vm1", "ours, edited"))
LIBVIRTS = status_bytes("vm1", "libvirt's newer version")


def _libvirt_saves(path: Path) -> None:
    # virFileRewrite: `<file>.new` written, then renamed over the file (a new inode).
    path.with_name(path.name + ".new").write_bytes(LIBVIRTS)
    os.rename(path.with_name(path.name + ".new"), path)


def _rewritten_in_place(path: Path) -> None:
    with open(path, "r+b") as file:  # same inode: only the size and the time tell
        file.write(LIBVIRTS)


def _libvirt_removes(path: Path) -> None:
    path.unlink()  # libvirt removes a domain's status file once the domain stops


CHANGES: dict[str, Callable[[Path], None]] = {
    "replaced": _libvirt_saves,
    "rewritten in place": _rewritten_in_place,
    "removed": _libvirt_removes,
}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("known", ["loaded", "saved"])
def test_an_owner_never_overwrites_a_file_changed_behind_its_back(
    tmp_path: Path, change: str, known: str
) -> None:
    # Was overwritten in silence: libvirt's newer file (or its removal) was lost.
    store = StatusStore(tmp_path)
    path = store.save(OURS)
    with store.owned("vm1") as owner:
        if known == "loaded":
            owner.load()
        else:
            owner.save(OURS)
        CHANGES[change](path)
        after = path.read_bytes() if path.exists() else None
        how = "removed" if change == "removed" else "replaced or rewritten"
        with pytest.raises(StoreConflictError, match=f"vm1.xml: not saved: the file was "
                                                     f"{how} since this owner read or saved"):
            owner.save(EDITED)
        assert (path.read_bytes() if path.exists() else None) == after
        assert scratch_files(tmp_path) == []
        with pytest.raises(StoreConflictError):
            owner.save(EDITED)  # refused until the owner has read the file again
        if change != "removed":
            assert owner.load().dumps() == after
            owner.save(EDITED)
            assert path.read_bytes() == EDITED.data


def test_an_owners_own_saves_and_a_blind_save_are_not_conflicts(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    path = store.save(OURS)
    with store.owned("vm1") as owner:
        owner.load()
        for doc in (EDITED, OURS, EDITED):
            owner.save(doc)
    _libvirt_saves(path)
    store.save(OURS)  # a blind save reads nothing, so it overwrites by design
    assert path.read_bytes() == OURS.data


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_an_owners_save_keeps_the_files_owner(tmp_path: Path) -> None:
    # Was root:root after any save by root: a session daemon's file became unreadable to it.
    store = StatusStore(tmp_path)
    path = store.save(OURS)
    os.chown(path, 4321, 4322)
    with store.owned("vm1") as owner:
        owner.save(EDITED)  # (a first save knows no version: it checks nothing)
        owner.load()
        owner.save(OURS)
    info = path.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (4321, 4322, 0o600)
    assert path.read_bytes() == OURS.data
    store.save(EDITED)  # a blind save writes the file as the saver's, as libvirt does
    assert (path.stat().st_uid, path.stat().st_gid) == (os.geteuid(), os.getegid())


def test_an_owners_save_is_0600_under_a_restrictive_umask(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    old = os.umask(0o277)
    try:
        with store.owned("vm1") as owner:
            path = owner.save(OURS)
            owner.save(EDITED)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o7777 == 0o600
    assert path.read_bytes() == EDITED.data


def test_an_owner_that_cannot_be_kept_fails_the_save_and_keeps_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StatusStore(tmp_path)
    path = store.save(OURS)
    before = path.stat()
    real_lstat = os.lstat

    def lstat(name: str | os.PathLike[str], **kw: bool) -> os.stat_result:
        info = real_lstat(name, **kw)
        if os.fspath(name) != os.fspath(path):
            return info
        fields = list(info)
        fields[4:6] = [4321, 4322]  # st_uid, st_gid: as an unprivileged saver sees it
        return os.stat_result(fields)

    def fchown(fd: int, uid: int, gid: int) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "lstat", lstat)
    monkeypatch.setattr(os, "fchown", fchown)
    with pytest.raises(StoreError, match=r"vm1.xml: cannot save: cannot keep its owner "
                                         r"\(uid 4321, gid 4322\): Operation not permitted"), \
            store.owned("vm1") as owner:
        owner.save(EDITED)
    monkeypatch.undo()
    assert path.read_bytes() == OURS.data
    assert path.stat().st_ino == before.st_ino
    assert scratch_files(tmp_path) == []
