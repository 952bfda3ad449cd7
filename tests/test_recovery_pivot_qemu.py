"""The pivot window: QEMU finished a ready active commit and forgot it while the daemon
was away; the device says whether it pivoted (real QEMU with a virtio device)."""

from __future__ import annotations

from pathlib import Path

import blockjob
from blockjob.demo.lab import Lab
from blockjob.jobs.commit import start_commit
from blockjob.qemu.bitmaps import TMP_ACTIVEWRITE
from blockjob.recovery import recover
from blockjob.store.status_store import StatusStore
from tests.support import scenario
from tests.support.qemu_fixtures import (
    BASE,
    MID,
    QEMU_MARKS,
    TOP,
    assert_chain,
    assert_file_sound,
    base_bitmaps,
    counts,
    job_status,
    started,
    wait_until,
)
from tests.test_recovery_qemu import recover_ok

pytestmark = QEMU_MARKS
ACTIVE = "commit-vda-libvirt-1-format"


def _start(tb: Lab) -> None:
    doc = blockjob.load(tb.status_path)
    start_commit(StatusStore(tb.directory), doc, "vda", TOP, BASE)
    with tb.connect() as monitor:
        wait_until(lambda: job_status(monitor, ACTIVE) == "ready", "ready")
    assert recover_ok(tb) == ["adopt"]  # the daemon saw it ready


def _roots(tb: Lab) -> tuple[str, ...]:
    with tb.connect() as monitor:
        return monitor.device_roots()


def test_pivoted_while_away_is_finished_as_completed(tmp_path: Path) -> None:
    with started(tmp_path, devices=True) as tb:
        _start(tb)
        assert _roots(tb) == (TOP,)
        with tb.connect() as monitor:  # libvirt 9.0's pivot, then the daemon dies
            monitor.transaction([{"type": "block-dirty-bitmap-add", "data": {
                "node": BASE, "name": TMP_ACTIVEWRITE, "persistent": False}}])
            monitor.job_complete(ACTIVE)
            wait_until(lambda: job_status(monitor, ACTIVE) == "concluded", "concluded")
            monitor.job_dismiss(ACTIVE)
        assert _roots(tb) == (BASE,)
        assert recover_ok(tb) == ["pivot-window-completed"]
        assert_chain(assert_file_sound(tb.status_path), BASE)
        with tb.connect() as monitor:
            nodes = monitor.query_nodes()
        assert TOP not in nodes and MID not in nodes and not nodes[BASE].read_only
        bitmaps = base_bitmaps(tb)
        assert TMP_ACTIVEWRITE not in bitmaps
        assert counts(bitmaps) == {"chk0": 2 << 20, "chk1": 5 << 20, "chk2": 2 << 20, "bm-off": 0}
        assert {n for n, b in bitmaps.items() if b.recording} == {"chk0", "chk1", "chk2"}
        before = tb.status_path.read_bytes()
        assert recover_ok(tb) == []  # one more run changes nothing
        assert tb.status_path.read_bytes() == before


def test_cancelled_while_away_is_finished_as_cancelled(tmp_path: Path) -> None:
    with started(tmp_path, devices=True) as tb:
        _start(tb)
        with tb.connect() as monitor:
            monitor.job_cancel(ACTIVE)
            wait_until(lambda: job_status(monitor, ACTIVE) == "concluded", "concluded")
            monitor.job_dismiss(ACTIVE)
        assert _roots(tb) == (TOP,)
        assert recover_ok(tb) == ["pivot-window-cancelled"]
        assert_chain(assert_file_sound(tb.status_path), TOP, MID, BASE)
        with tb.connect() as monitor:
            assert monitor.query_nodes()[BASE].read_only
        bitmaps = base_bitmaps(tb)
        assert counts(bitmaps) == scenario.EXPECTED_UNCHANGED
        assert {n for n, b in bitmaps.items() if b.recording} == {"chk0", "chk1"}
        assert recover_ok(tb) == []


def test_without_a_device_nothing_is_guessed(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        _start(tb)
        with tb.connect() as monitor:
            monitor.job_complete(ACTIVE)
            wait_until(lambda: job_status(monitor, ACTIVE) == "concluded", "concluded")
            monitor.job_dismiss(ACTIVE)
        before = tb.status_path.read_bytes()
        report = recover([tb.status_path])
        job = report.domains[0].jobs[0]
        assert not report.ok and job.decision == "undecidable" and job.steps == []
        assert tb.status_path.read_bytes() == before
