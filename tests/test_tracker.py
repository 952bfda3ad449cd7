"""Without QEMU: the tracker's refusals, crash point order, the mirror libvirt writes."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import blockjob
from blockjob.jobs.abort import AbortCrashPoint
from blockjob.jobs.pivot import PivotCrashPoint
from blockjob.model import JobState
from blockjob.qemu.monitor import MonitorUnavailableError
from blockjob.statusxml.sources import disk_mirror_node
from blockjob.store.status_store import DomainBusyError, StatusStore
from blockjob.tracker import JobTracker
from tests.support import docs
from tests.support.corpus import REAL


def _store(tmp_path: Path, data: bytes) -> StatusStore:
    (tmp_path / "unit.xml").write_bytes(data)
    return StatusStore(tmp_path)


def test_a_domain_owned_elsewhere_is_refused_as_busy(tmp_path: Path) -> None:
    store = _store(tmp_path, docs.jobs())
    with store.owned("unit"), pytest.raises(DomainBusyError, match="unit"):
        JobTracker(store, "unit", lock_timeout=0.05).__enter__()


@pytest.mark.parametrize(("keyword", "value", "message"), [
    ("timeout", 1e300, "seconds is more than a day (86400)"),
    ("timeout", -1.0, "is not a positive, finite number of seconds"),
    ("connect_timeout", math.nan, "is not a positive, finite number of seconds"),
])
def test_timeouts_are_bounded_as_recoverys(
    tmp_path: Path, keyword: str, value: float, message: str
) -> None:
    # Taken unchecked, 1e300 stopped the tracker with an OverflowError from the socket,
    # NaN with a ValueError of its own, and -1 said 'timed out after -1 s'.
    store = _store(tmp_path, docs.jobs())
    wait: dict[str, Any] = {keyword: value}
    with pytest.raises(ValueError, match=re.escape(f"{keyword}={value!r} {message}")):
        JobTracker(store, "unit", **wait)


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


def test_a_failed_open_releases_the_domain_for_a_retry(tmp_path: Path) -> None:
    """`open()` called directly (a daemon retrying until QEMU's monitor is up) kept the
    lock after a failure: every retry, and `blockjob recover`, then found the domain busy."""
    store = _store(tmp_path, docs.jobs())
    tracker = JobTracker(store, "unit", connect_timeout=0.1)
    for _ in range(2):
        with pytest.raises(MonitorUnavailableError):
            tracker.open()
    with store.owned("unit", timeout=0.05):
        pass  # released


def test_crash_points_are_in_flow_order() -> None:
    assert [p.value for p in PivotCrashPoint] == [
        "pivoting-persisted", "bitmaps-merged", "complete-sent"]
    assert [p.value for p in AbortCrashPoint] == ["aborting-persisted", "cancel-sent"]


def _real(name: str) -> bytes:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path.read_bytes()


def test_the_active_commit_mirror_is_written_as_libvirt_90_writes_it() -> None:
    """What start_active_commit adds (`<mirror job='active-commit'>` naming base) and what
    ready adds (`ready='yes'`, state and newstate ready) give libvirt 9.0's exact bytes."""
    running = _real("activecommit-running.xml")
    doc = blockjob.loads(running)
    disk = doc.disk("vda")
    assert disk is not None and disk.chain is not None
    base = disk.chain.images()[-1]
    doc.set_disk_chain("vda", drop_mirror=True)
    assert doc.dumps() != running
    doc.set_disk_chain("vda", mirror=disk_mirror_node(base, "active-commit", ready=False))
    assert doc.dumps() == running
    job = doc.jobs[0]
    doc.replace_job(replace(job, state=JobState.READY, newstate=JobState.READY))
    doc.set_disk_chain("vda", mirror_ready=True)
    assert doc.dumps() == _real("activecommit-ready.xml")
