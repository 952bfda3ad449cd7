"""The pivot window: QEMU finished a ready active commit and forgot it while the daemon
was away; the device says whether it pivoted (real QEMU with a virtio device)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import blockjob
from blockjob.demo.images import run_tool
from blockjob.demo.lab import Lab
from blockjob.jobs.commit import start_commit
from blockjob.model import JobState
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
    with StatusStore(tb.directory).owned(tb.name) as owner:
        start_commit(owner, "vda", TOP, BASE)
    with tb.connect() as monitor:
        wait_until(lambda: job_status(monitor, ACTIVE) == "ready", "ready")
    assert recover_ok(tb) == ["adopt"]  # the daemon saw it ready


def _ended(tb: Lab, command: str, *, dismiss: bool = True) -> None:
    """Someone else ends the active commit (`job-complete` or `job-cancel`) while the
    daemon is away; it concludes, and is dismissed unless told not to."""
    with tb.connect() as monitor:
        monitor.execute(command, {"id": ACTIVE})
        wait_until(lambda: job_status(monitor, ACTIVE) == "concluded", "concluded")
        if dismiss:
            monitor.job_dismiss(ACTIVE)


def _roots(tb: Lab) -> tuple[str, ...]:
    with tb.connect() as monitor:
        return monitor.device_roots()


def _assert_pivoted(tb: Lab) -> None:
    assert_chain(assert_file_sound(tb.status_path), BASE)
    with tb.connect() as monitor:
        nodes = monitor.query_nodes()
    assert TOP not in nodes and MID not in nodes and not nodes[BASE].read_only
    bitmaps = base_bitmaps(tb)
    assert counts(bitmaps) == {"chk0": 2 << 20, "chk1": 5 << 20, "chk2": 2 << 20, "bm-off": 0}
    assert {n for n, b in bitmaps.items() if b.recording} == {"chk0", "chk1", "chk2"}


def test_pivoted_while_away_is_finished_as_completed(tmp_path: Path) -> None:
    with started(tmp_path, devices=True) as tb:
        _start(tb)
        assert _roots(tb) == (TOP,)
        with tb.connect() as monitor:  # libvirt 9.0's pivot, then the daemon dies
            monitor.transaction([{"type": "block-dirty-bitmap-add", "data": {
                "node": BASE, "name": TMP_ACTIVEWRITE, "persistent": False}}])
        _ended(tb, "job-complete")
        assert _roots(tb) == (BASE,)
        assert recover_ok(tb) == ["pivot-window-completed"]
        _assert_pivoted(tb)
        assert TMP_ACTIVEWRITE not in base_bitmaps(tb)
        before = tb.status_path.read_bytes()
        assert recover_ok(tb) == []  # one more run changes nothing
        assert tb.status_path.read_bytes() == before


def test_cancelled_while_away_is_finished_as_cancelled(tmp_path: Path) -> None:
    with started(tmp_path, devices=True) as tb:
        _start(tb)
        _ended(tb, "job-cancel")
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
        _ended(tb, "job-complete")
        before = tb.status_path.read_bytes()
        report = recover([tb.status_path])
        job = report.domains[0].jobs[0]
        assert not report.ok and job.decision == "undecidable" and job.steps == []
        assert tb.status_path.read_bytes() == before


COPY = "copy-vda-libvirt-9-format"


def _ready_copy(tb: Lab) -> Path:
    """A full block copy of vda to a new image, ready, recorded the way libvirt 9.0 does."""
    target = tb.directory / "vda" / "copy.qcow2"
    run_tool(["qemu-img", "create", "-q", "-f", "qcow2", str(target), str(scenario.SIZE)])
    with tb.connect() as monitor:
        monitor.execute("blockdev-add", {"driver": "file", "filename": str(target),
                                         "node-name": "libvirt-9-storage"})
        monitor.execute("blockdev-add", {"driver": "qcow2", "file": "libvirt-9-storage",
                                         "node-name": "libvirt-9-format", "backing": None})
        monitor.execute("blockdev-mirror", {"job-id": COPY, "device": TOP,
                                            "target": "libvirt-9-format", "sync": "full",
                                            "auto-dismiss": False})
        wait_until(lambda: job_status(monitor, COPY) == "ready", "ready")
    text = tb.status_path.read_text()
    text = text.replace("<blockjobs active='no'/>", (
        "<blockjobs active='yes'>\n"
        f"    <blockjob name='{COPY}' type='copy' state='ready' newstate='ready' "
        "jobflags='0x0'>\n      <disk dst='vda' mirror='yes'/>\n    </blockjob>\n"
        "  </blockjobs>"))
    text = text.replace("        <target dev='vda'", (
        f"        <mirror type='file' file='{target}' format='qcow2' job='copy' ready='yes'>\n"
        "          <format type='qcow2'/>\n"
        f"          <source file='{target}' index='9'>\n"
        "            <privateData>\n              <nodenames>\n"
        "                <nodename type='storage' name='libvirt-9-storage'/>\n"
        "                <nodename type='format' name='libvirt-9-format'/>\n"
        "              </nodenames>\n            </privateData>\n          </source>\n"
        "          <backingStore/>\n        </mirror>\n        <target dev='vda'"))
    tb.status_path.write_text(text)
    job = blockjob.load(tb.status_path).job(COPY)
    assert job is not None and not job.invalid
    return target


def _finish_copy(tb: Lab, command: str) -> None:
    with tb.connect() as monitor:
        monitor.execute(command, {"id": COPY})
        wait_until(lambda: job_status(monitor, COPY) == "concluded", "concluded")
        monitor.job_dismiss(COPY)


def test_copy_pivoted_while_away_runs_on_the_copy(tmp_path: Path) -> None:
    with started(tmp_path, devices=True) as tb:
        _ready_copy(tb)
        _finish_copy(tb, "job-complete")
        assert _roots(tb) == ("libvirt-9-format",)
        assert recover_ok(tb) == ["pivot-window-completed"]
        doc = assert_file_sound(tb.status_path)
        assert_chain(doc, "libvirt-9-format")
        disk = doc.disk("vda")
        assert disk is not None and disk.mirror is None and doc.jobs == []
        with tb.connect() as monitor:
            nodes = monitor.query_nodes()
        assert not {TOP, MID, BASE} & set(nodes)
        assert recover_ok(tb) == []


def test_copy_cancelled_while_away_keeps_the_chain(tmp_path: Path) -> None:
    with started(tmp_path, devices=True) as tb:
        _ready_copy(tb)
        _finish_copy(tb, "job-cancel")
        assert _roots(tb) == (TOP,)
        assert recover_ok(tb) == ["pivot-window-cancelled"]
        doc = assert_file_sound(tb.status_path)
        assert_chain(doc, TOP, MID, BASE)
        with tb.connect() as monitor:
            assert "libvirt-9-format" not in monitor.query_nodes()
        assert recover_ok(tb) == []


def test_pivot_by_someone_else_concluded_is_finished_as_completed(tmp_path: Path) -> None:
    # QEMU still reports the job (concluded, no error): only the device tells a pivot
    # from a cancel, whatever the file says (`ready`: the daemon never asked for either).
    with started(tmp_path, devices=True) as tb:
        _start(tb)
        _ended(tb, "job-complete", dismiss=False)
        assert recover_ok(tb) == ["finish-completed"]
        _assert_pivoted(tb)
        assert recover_ok(tb) == []


def test_running_mirror_pivoted_and_forgotten_is_finished_as_completed(tmp_path: Path) -> None:
    # The file still says running (the daemon died before it saw `ready`).
    with started(tmp_path, devices=True) as tb:
        _start(tb)
        doc = blockjob.load(tb.status_path)
        job = doc.job(ACTIVE)
        assert job is not None
        doc.replace_job(replace(job, state=JobState.RUNNING, newstate=None))
        StatusStore(tb.directory).save(doc)
        _ended(tb, "job-complete")
        assert recover_ok(tb) == ["pivot-window-completed"]
        _assert_pivoted(tb)
        assert recover_ok(tb) == []
