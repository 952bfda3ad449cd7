"""The tracker's refusals that need no QEMU: a busy domain, a file without a monitor."""

from __future__ import annotations

from pathlib import Path

import pytest

from blockjob.jobs.abort import AbortCrashPoint
from blockjob.jobs.pivot import PivotCrashPoint
from blockjob.qemu.monitor import MonitorUnavailableError
from blockjob.store.status_store import DomainBusyError, StatusStore
from blockjob.tracker import JobTracker
from tests.support import docs


def _store(tmp_path: Path, data: bytes) -> StatusStore:
    (tmp_path / "unit.xml").write_bytes(data)
    return StatusStore(tmp_path)


def test_a_domain_owned_elsewhere_is_refused_as_busy(tmp_path: Path) -> None:
    store = _store(tmp_path, docs.jobs())
    with store.owned("unit"), pytest.raises(DomainBusyError, match="unit"):
        JobTracker(store, "unit", lock_timeout=0.05).__enter__()


def test_a_file_without_a_monitor_is_refused_and_the_domain_released(tmp_path: Path) -> None:
    data = docs.jobs().replace(b"  <monitor path='/run/test/monitor.sock' type='unix'/>\n", b"")
    store = _store(tmp_path, data)
    with pytest.raises(MonitorUnavailableError, match="names no <monitor>"), \
            JobTracker(store, "unit"):
        pass
    with store.owned("unit", timeout=0.05):
        pass  # released


def test_an_unreachable_monitor_is_refused_and_the_file_untouched(tmp_path: Path) -> None:
    store = _store(tmp_path, docs.jobs())
    with pytest.raises(MonitorUnavailableError), JobTracker(store, "unit", connect_timeout=0.1):
        pass
    assert (tmp_path / "unit.xml").read_bytes() == docs.jobs()


def test_crash_points_are_in_flow_order() -> None:
    assert [p.value for p in PivotCrashPoint] == [
        "pivoting-persisted", "bitmaps-merged", "complete-sent"]
    assert [p.value for p in AbortCrashPoint] == ["aborting-persisted", "cancel-sent"]
