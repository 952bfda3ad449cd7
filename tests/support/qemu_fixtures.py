"""Real-QEMU helpers for the commit, recovery and demo tests.

Plain context managers rather than fixtures, so test modules need no conftest
hooks: `with started(tmp_path) as tb:` reaps QEMU even when the test fails.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import pytest

import blockjob
from blockjob.demo.lab import DiskSpec, Lab
from blockjob.demo.qemu import QemuProcess
from blockjob.jobs.commit import CrashPoint, start_commit
from blockjob.model import BlockJob, StorageSource
from blockjob.qemu.monitor import Bitmap, Monitor
from blockjob.store.status_store import StatusStore
from blockjob.validation.check import validate_file
from tests.support import scenario

HAVE_QEMU = all(shutil.which(tool) for tool in ("qemu-system-x86_64", "qemu-img", "qemu-io"))
# `pytestmark = QEMU_MARKS` for a whole module, `@needs_qemu` for one test.
QEMU_MARKS = [
    pytest.mark.qemu,
    pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64/qemu-img/qemu-io not installed"),
]
_F = TypeVar("_F", bound=Callable[..., object])
_Point = TypeVar("_Point", bound=StrEnum)


def needs_qemu(test: _F) -> _F:
    for mark in QEMU_MARKS:
        test = mark(test)
    return test

TOP, MID, BASE = "libvirt-1-format", "libvirt-2-format", "libvirt-3-format"
JOB = "commit-vda-libvirt-2-format"
# Slow enough that a test sees the commit running; tests lift it to let the job end.
CRAWL = 64 * 1024


class CrashError(Exception):
    """Stands for the daemon dying at a crash point."""


@contextmanager
def started(
    directory: Path, *, fail_commit: bool = False, devices: bool = False,
    second_disk: bool = False,
) -> Iterator[Lab]:
    """The lab's domain: vda (top <- mid <- base), and with `second_disk` a vdb of the
    same chain (nodes libvirt-4 to libvirt-6)."""
    directory.mkdir(parents=True, exist_ok=True)
    disks = [DiskSpec(scenario.TARGET, scenario.chain(fail_commit=fail_commit))]
    disks += [DiskSpec("vdb", scenario.chain())] if second_disk else []
    with Lab(directory, disks, devices=devices) as tb:
        yield tb


def crash_at(point: _Point) -> Callable[[_Point], None]:
    """A crash hook of any flow (`CrashPoint`, `PivotCrashPoint`, ...) raising at `point`."""
    def hook(reached: _Point) -> None:
        if reached is point:
            raise CrashError(point)
    return hook


def commit(tb: Lab, *, speed: int = 0, crash: CrashPoint | None = None) -> BlockJob | None:
    """Start the scenario's commit (mid into base) the way the daemon does."""
    hook = crash_at(crash) if crash is not None else (lambda _: None)
    try:
        with StatusStore(tb.directory).owned(tb.name) as owner:
            return start_commit(owner, scenario.TARGET, MID, BASE, speed=speed, crash=hook)
    except CrashError:
        return None


def wait_until(
    check: Callable[[], bool], what: str, limit: float = 60.0, interval: float = 0.02
) -> None:
    """Poll `check`; the limit only keeps a broken QEMU from hanging the suite."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(interval)


def job_status(monitor: Monitor, job: str = JOB) -> str | None:
    found = monitor.query_jobs().get(job)
    return found.status if found is not None else None


def wait_concluded(tb: Lab, job: str = JOB) -> None:
    with tb.connect() as monitor:
        wait_until(lambda: job_status(monitor, job) in ("concluded", None), f"{job} to conclude")


def base_bitmaps(tb: Lab) -> dict[str, Bitmap]:
    with tb.connect() as monitor:
        node = monitor.query_nodes()[BASE]
    return {bitmap.name: bitmap for bitmap in node.bitmaps}


def counts(bitmaps: dict[str, Bitmap]) -> dict[str, int]:
    return {name: bitmap.count for name, bitmap in bitmaps.items()}


def assert_file_sound(path: Path) -> blockjob.StatusDocument:
    """The file loads again, and our schemas accept it."""
    doc = blockjob.load(path)
    report = validate_file(path)
    assert report.valid, report.problems
    return doc


def assert_chain(doc: blockjob.StatusDocument, *names: str) -> None:
    disk = doc.disk(scenario.TARGET)
    assert disk is not None and disk.chain is not None
    assert [image.format_node for image in disk.chain.images()] == list(names)


def crash_qemu_and_restart(tb: Lab) -> None:
    """SIGKILL QEMU and start a new one on the same images (a QEMU crash, then the domain
    started again); the status file is pointed at the new monitor."""
    old = tb.monitor_path.encode()
    tb.qemu.kill()
    tb.qemu.stop()
    tb.qemu = QemuProcess(tb.directory / f"{tb.name}-qemu.log", devices=tb.devices)
    tb.launch()
    data = tb.status_path.read_bytes()
    tb.status_path.write_bytes(data.replace(old, tb.monitor_path.encode()))


def image_path(tb: Lab, target: str, name: str) -> Path:
    """The file of the attached image `name` (file stem) of disk `target`."""
    for disk in tb.disks:
        for image in disk.images:
            if disk.target == target and image.path.stem == name:
                return image.path
    raise KeyError(f"{target}/{name}")


def base_image(tb: Lab, target: str = "vda") -> StorageSource:
    """The bottom image of disk `target`'s chain, as the status file has it now."""
    disk = blockjob.load(tb.status_path).disk(target)
    assert disk is not None and disk.chain is not None
    return disk.chain.images()[-1]


NodeState = tuple[bool, tuple[tuple[str, bool, int, bool], ...]]


def node_states(monitor: Monitor) -> dict[str, NodeState]:
    """Every named node's read-only flag and bitmaps (name, recording, count,
    inconsistent): what end-state comparisons look at in QEMU. QEMU's generated `#...`
    names of implicit nodes differ from run to run and are left out."""
    return {
        name: (node.read_only, tuple(sorted(
            (b.name, b.recording, b.count, b.inconsistent) for b in node.bitmaps)))
        for name, node in monitor.query_nodes().items() if not name.startswith("#")
    }
