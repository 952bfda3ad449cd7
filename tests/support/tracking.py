"""Live-tracking helpers for the real-QEMU tests: a tracker on a lab, end states."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import blockjob
from blockjob.demo.lab import Lab
from blockjob.model import JobState
from blockjob.statusxml.document import StatusDocument
from blockjob.store.status_store import StatusStore
from blockjob.tracker import JobTracker
from tests.support import scenario
from tests.support.qemu_fixtures import (
    BASE,
    MID,
    TOP,
    assert_chain,
    assert_file_sound,
    base_bitmaps,
    counts,
)

# The active commit of the scenario: top (and mid) into base.
ACTIVE_JOB = "commit-vda-libvirt-1-format"
# Every wait of these tests follows events; the limit only stops a broken QEMU hanging.
WAIT = 60.0


def tracker(tb: Lab, **kwargs: object) -> JobTracker:
    return JobTracker(StatusStore(tb.directory), tb.name, **kwargs)  # type: ignore[arg-type]


def gone(name: str) -> Callable[[StatusDocument], bool]:
    return lambda doc: doc.job(name) is None


def in_state(name: str, state: JobState) -> Callable[[StatusDocument], bool]:
    def check(doc: StatusDocument) -> bool:
        job = doc.job(name)
        return job is not None and job.state is state
    return check


def to_ready(t: JobTracker, name: str = ACTIVE_JOB) -> None:
    assert t.wait_for(in_state(name, JobState.READY), WAIT), f"{name} never became ready"


def to_end(t: JobTracker, name: str) -> None:
    """Follow `name` until it is finished, and every reconcile on the way (recovery's
    steps and its verification of the end state) reported nothing wrong."""
    assert t.wait_for(gone(name), WAIT), f"{name} was never finished"
    assert t.failed_checks == []
    assert [(r.job, r.problems, r.error) for r in t.reports if r.problems or r.error] == []


def assert_pivoted(tb: Lab) -> None:
    """The end of an active commit and its pivot: disk on base, merged bitmaps."""
    doc = assert_file_sound(tb.status_path)
    assert_chain(doc, BASE)
    disk = doc.disk(scenario.TARGET)
    assert doc.jobs == [] and disk is not None and disk.mirror is None
    with tb.connect() as monitor:
        assert monitor.query_jobs() == {}
        nodes = monitor.query_nodes()
    assert not {TOP, MID, "libvirt-1-storage", "libvirt-2-storage"} & set(nodes)
    bitmaps = base_bitmaps(tb)
    assert counts(bitmaps) == scenario.EXPECTED_AFTER_PIVOT
    assert {n for n, b in bitmaps.items() if b.recording} == {"chk0", "chk1", "chk2"}


def assert_active_aborted(tb: Lab) -> None:
    """An aborted active commit: chain and bitmaps as before it, no job, no mirror."""
    doc = assert_file_sound(tb.status_path)
    assert_chain(doc, TOP, MID, BASE)
    disk = doc.disk(scenario.TARGET)
    assert doc.jobs == [] and disk is not None and disk.mirror is None
    with tb.connect() as monitor:
        assert monitor.query_jobs() == {}
        nodes = monitor.query_nodes()
    assert {TOP, MID, BASE} <= set(nodes)
    bitmaps = base_bitmaps(tb)
    assert counts(bitmaps) == scenario.EXPECTED_UNCHANGED
    assert {n for n, b in bitmaps.items() if b.recording} == {"chk0", "chk1"}


def normalized(tb: Lab) -> bytes:
    """The status file with what differs between two labs (directory, monitor, pid) masked."""
    doc = blockjob.load(tb.status_path)
    data = tb.status_path.read_bytes()
    for text, mask in ((doc.monitor_path or "", "MONITOR"), (str(tb.directory), "DIR"),
                       (f"pid='{tb.qemu.pid}'", "pid='PID'")):
        data = data.replace(text.encode(), mask.encode())
    return data


def end_state(tb: Lab) -> tuple[bytes, frozenset[str], dict[str, tuple[int, bool]], bool]:
    """File, node names, base bitmaps (count, recording) and base's read-only flag."""
    with tb.connect() as monitor:
        nodes = monitor.query_nodes()
    base = nodes[BASE]
    bitmaps = {b.name: (b.count, b.recording) for b in base.bitmaps}
    named = frozenset(n for n in nodes if not n.startswith("#"))
    return normalized(tb), named, bitmaps, base.read_only


def lab_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path
