"""Commit start: argument errors are refused before QEMU or the file is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

import blockjob
from blockjob.jobs.commit import CommitError, CrashPoint, start_commit
from blockjob.qemu.monitor import MonitorUnavailableError
from blockjob.store import StatusStore, StoreError
from tests.test_recovery_plan import COMMIT, document


def _saved(tmp_path: Path, doc: blockjob.StatusDocument) -> tuple[StatusStore, bytes]:
    store = StatusStore(tmp_path)
    return store, store.save(doc).read_bytes()


@pytest.mark.parametrize(("disk", "top", "base", "message"), [
    ("vdz", "libvirt-2-format", "libvirt-3-format", "no disk 'vdz'"),
    ("vda", "libvirt-9-format", "libvirt-3-format", "top 'libvirt-9-format' is not in"),
    ("vda", "libvirt-2-format", "libvirt-9-format", "base 'libvirt-9-format' is not in"),
    ("vda", "libvirt-3-format", "libvirt-2-format", "must be below top"),
    ("vda", "libvirt-2-format", "libvirt-2-storage", "must be below top"),
])
def test_bad_arguments_are_refused(
    tmp_path: Path, disk: str, top: str, base: str, message: str
) -> None:
    store, before = _saved(tmp_path, document(None))
    with store.owned("lab1") as owner, pytest.raises(CommitError, match=message):
        start_commit(owner, disk, top, base)
    assert (tmp_path / "lab1.xml").read_bytes() == before


def test_a_disk_with_a_job_is_refused(tmp_path: Path) -> None:
    store, before = _saved(tmp_path, document(COMMIT))
    with store.owned("lab1") as owner, pytest.raises(CommitError, match="already has a block"):
        start_commit(owner, "vda", "libvirt-1-format", "libvirt-3-format")
    assert (tmp_path / "lab1.xml").read_bytes() == before


def test_unreachable_monitor_is_refused_before_anything_is_saved(tmp_path: Path) -> None:
    store, before = _saved(tmp_path, document(None))
    with store.owned("lab1") as owner, pytest.raises(MonitorUnavailableError):
        start_commit(owner, "vda", "libvirt-2-format", "libvirt-3-format")
    assert (tmp_path / "lab1.xml").read_bytes() == before


def test_a_domain_without_a_file_is_a_store_error(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    with store.owned("lab1") as owner, pytest.raises(StoreError, match=r"lab1\.xml: cannot"):
        start_commit(owner, "vda", "libvirt-2-format", "libvirt-3-format")


def test_crash_points_are_in_flow_order() -> None:
    assert [p.value for p in CrashPoint] == [
        "job-persisted", "base-writable", "bitmaps-disabled", "base-read-only",
        "commit-started", "running-persisted",
    ]


def test_a_document_not_read_through_the_owner_is_refused(tmp_path: Path) -> None:
    store, before = _saved(tmp_path, document(None))
    stale = store.load("lab1")  # read before owning: another process may change the file
    with store.owned("lab1") as owner:
        with pytest.raises(CommitError, match="not read through the domain's owner"):
            start_commit(owner, "vda", "libvirt-2-format", "libvirt-3-format", doc=stale)
        held = owner.load()  # read under the lock: accepted (and refused here for its args)
        with pytest.raises(CommitError, match="must be below top"):
            start_commit(owner, "vda", "libvirt-3-format", "libvirt-2-format", doc=held)
    assert (tmp_path / "lab1.xml").read_bytes() == before
