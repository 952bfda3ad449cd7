"""Commit start: argument errors are refused before QEMU or the file is touched."""

from __future__ import annotations

import pytest

import blockjob
from blockjob.jobs.commit import CommitError, CrashPoint, start_commit
from blockjob.qemu.monitor import MonitorUnavailableError
from tests.test_recovery_plan import COMMIT, document


class NoSave:
    def save(self, doc: blockjob.StatusDocument) -> object:
        raise AssertionError("nothing may be saved for a refused commit")


@pytest.mark.parametrize(("disk", "top", "base", "message"), [
    ("vdz", "libvirt-2-format", "libvirt-3-format", "no disk 'vdz'"),
    ("vda", "libvirt-9-format", "libvirt-3-format", "top 'libvirt-9-format' is not in"),
    ("vda", "libvirt-2-format", "libvirt-9-format", "base 'libvirt-9-format' is not in"),
    ("vda", "libvirt-3-format", "libvirt-2-format", "must be below top"),
    ("vda", "libvirt-2-format", "libvirt-2-storage", "must be below top"),
])
def test_bad_arguments_are_refused(disk: str, top: str, base: str, message: str) -> None:
    doc = document(None)
    with pytest.raises(CommitError, match=message):
        start_commit(NoSave(), doc, disk, top, base)
    assert doc.jobs == []


def test_a_disk_with_a_job_is_refused() -> None:
    with pytest.raises(CommitError, match="already has a block job"):
        start_commit(NoSave(), document(COMMIT), "vda", "libvirt-1-format", "libvirt-3-format")


def test_unreachable_monitor_is_refused_before_anything_is_saved() -> None:
    doc = document(None)
    with pytest.raises(MonitorUnavailableError):
        start_commit(NoSave(), doc, "vda", "libvirt-2-format", "libvirt-3-format")
    assert doc.jobs == []


def test_crash_points_are_in_flow_order() -> None:
    assert [p.value for p in CrashPoint] == [
        "job-persisted", "base-writable", "bitmaps-disabled", "base-read-only",
        "commit-started", "running-persisted",
    ]
