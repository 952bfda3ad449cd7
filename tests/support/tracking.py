"""Live-tracking helpers for the real-QEMU tests: a tracker on a lab, end states."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import blockjob
from blockjob.demo.lab import Lab
from blockjob.model import JobState
from blockjob.recovery.steps import Step
from blockjob.statusxml.document import StatusDocument
from blockjob.store import StoreError
from blockjob.store.status_store import StatusStore
from blockjob.tracker import JobTracker
from tests.support import scenario
from tests.support.qemu_fixtures import (
    BASE,
    MID,
    TOP,
    NodeState,
    assert_chain,
    assert_file_sound,
    base_bitmaps,
    counts,
    node_states,
)

# The active commit of the scenario: top (and mid) into base.
ACTIVE_JOB = "commit-vda-libvirt-1-format"
# Every wait of these tests follows events; the limit only stops a broken QEMU hanging.
WAIT = 60.0


def tracker(tb: Lab, **kwargs: object) -> JobTracker:
    return JobTracker(StatusStore(tb.directory), tb.name, **kwargs)  # type: ignore[arg-type]


@contextmanager
def full_disk(t: JobTracker) -> Iterator[None]:
    """Every save of `t` fails as on a full disk; the request inside must raise it."""
    def full(doc: object) -> None:
        raise StoreError(t.owner.path, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(t.owner, "save", full)
        with pytest.raises(StoreError, match="No space left"):
            yield


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


def end_state(tb: Lab) -> tuple[bytes, dict[str, NodeState], list[str]]:
    """File; every named node's read-only flag and bitmaps; QEMU's jobs."""
    with tb.connect() as monitor:
        return normalized(tb), node_states(monitor), sorted(monitor.query_jobs())


Log = list[tuple[str, ...]]


def recorder(log: Log, path: Path | None = None) -> dict[str, object]:
    """Tracker hooks that log each save (chain top, then state:newstate of every job) and
    each step; with `path`, a step's entry also says what that file records for its job
    at that moment (read from disk: what a restart would find)."""

    def on_save(doc: StatusDocument) -> None:
        disk = doc.disk("vda")
        top = disk.chain.format_node if disk and disk.chain else None
        jobs = [(j.state.value, j.newstate.value if j.newstate else "-") for j in doc.jobs]
        log.append(("save", str(top), *[":".join(j) for j in jobs]))

    def on_step(step: Step) -> None:
        entry: tuple[str, ...] = ("step", type(step).__name__)
        name = getattr(step, "job", None)
        if path is not None and isinstance(name, str):
            job = blockjob.load(path).job(name)
            entry += (f"{job.state}:{job.newstate or '-'}" if job else "gone",)
        log.append(entry)

    return {"on_save": on_save, "on_step": on_step}


def saves(log: Log) -> list[tuple[str, ...]]:
    """The saves of `log`, without the chain top."""
    return [entry[2:] for entry in log if entry[0] == "save"]


def lab_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path
