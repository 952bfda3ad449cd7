"""Recovery killed before or after every QMP command and every save reaches, on the
next run, exactly the end state of an uninterrupted run; one more run changes nothing.
The flows: a commit completed or cancelled, and libvirt 9.0's newest finishing steps
(`tests.support.finish_lab.FLOWS`: backups, a pull and copies carrying bitmaps over, a
commit deleting its files, create jobs that completed or failed, a backup over two disks
whose second job is cancelled with the first).

`make test` runs a representative subset; `make fuzz` every point of every flow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from blockjob.demo.images import run_tool
from blockjob.demo.lab import Lab
from blockjob.recovery import recover
from blockjob.recovery.execute import Probe
from tests.support import finish_lab
from tests.support.campaign import fuzz_only
from tests.support.finish_lab import exports
from tests.support.qemu_fixtures import (
    QEMU_MARKS,
    node_states,
    started,
)

pytestmark = QEMU_MARKS
REPO = Path(__file__).resolve().parent.parent
COMMITS, FLOWS = finish_lab.COMMITS, finish_lab.ALL_FLOWS


class KilledError(BaseException):
    """Stands for the recovery process dying (not an error recovery could catch)."""


def _killer(point: int, seen: list[str]) -> Probe:
    def probe(when: str, what: str) -> None:
        seen.append(f"{when} {what}")
        if len(seen) == point + 1:
            raise KilledError(seen[-1])
    return probe


@contextmanager
def _concluded(tmp_path: Path, flow: str) -> Iterator[Lab]:
    # Devices: a copy's pivot shows in the node its device runs on.
    with started(tmp_path, devices=flow not in COMMITS,
                 second_disk=flow in finish_lab.TWO_DISKS) as tb:
        finish_lab.set_up(tb, flow)
        yield tb


def end_state(tb: Lab) -> dict[str, object]:
    """Everything the reference compares: file (lab paths blanked), jobs, nodes with
    read-only flags and bitmaps, NBD exports, the files of the lab's directory (the
    server's socket among them) and the on-disk bitmap flags of every image."""
    with tb.connect() as monitor:
        jobs = sorted(monitor.query_jobs())
        nodes = node_states(monitor)
        served = exports(monitor)
    text = tb.status_path.read_text()
    for old, new in ((str(tb.directory), "DIR"), (tb.monitor_path, "MON")):
        text = text.replace(old, new)
    text = re.sub(r"pid='\d+'", "pid=''", text)
    files = sorted(str(path.relative_to(tb.directory)) for path in tb.directory.rglob("*"))
    on_disk = {}
    for image in sorted(tb.directory.rglob("*.qcow2")):
        info = json.loads(run_tool(["qemu-img", "info", "-U", "--output=json", str(image)]))
        bitmaps = info.get("format-specific", {}).get("data", {}).get("bitmaps", [])
        on_disk[image.name] = sorted((b["name"], tuple(b["flags"])) for b in bitmaps)
    return {"file": text, "jobs": jobs, "nodes": nodes, "exports": served, "files": files,
            "disk": on_disk}


_REFERENCE: dict[str, tuple[dict[str, object], list[str]]] = {}


def reference(tmp_path: Path, flow: str) -> tuple[dict[str, object], list[str]]:
    """The end state of an uninterrupted run, and the points it passed."""
    if flow not in _REFERENCE:
        seen: list[str] = []
        with _concluded(tmp_path / f"ref-{flow}", flow) as tb:
            assert recover([tb.status_path], probe=lambda w, c: seen.append(f"{w} {c}")).ok
            _REFERENCE[flow] = end_state(tb), seen
    return _REFERENCE[flow]


def sweep(tmp_path: Path, flow: str, point: int) -> None:
    expected, points = reference(tmp_path, flow)
    if point >= len(points):
        pytest.skip(f"the {flow} flow has {len(points)} points")
    with _concluded(tmp_path / "run", flow) as tb:
        seen: list[str] = []
        with pytest.raises(KilledError):
            recover([tb.status_path], probe=_killer(point, seen))
        assert recover([tb.status_path]).ok, f"rerun after kill at {seen[-1]}"
        assert end_state(tb) == expected, f"killed at {seen[-1]}"
        before = tb.status_path.read_bytes()
        assert recover([tb.status_path]).ok
        assert tb.status_path.read_bytes() == before
        assert end_state(tb) == expected


def test_reference_flows_pass_the_points_the_sweep_kills_at(tmp_path: Path) -> None:
    for flow in COMMITS:
        _, points = reference(tmp_path, flow)
        assert "before save" in points and "after blockdev-reopen" in points


# A few points of each flow, by name and occurrence: after the first save, inside the
# read-write window (after reopen, after the transaction), after job-dismiss, between two
# blockdev-del, after the last save.
@pytest.mark.parametrize(("flow", "point", "occurrence"), [
    ("completed", "after save", 1), ("completed", "after blockdev-reopen", 1),
    ("completed", "after transaction", 1), ("completed", "after job-dismiss", 1),
    ("completed", "after blockdev-del", 1), ("completed", "after save", 2),
    ("cancelled", "after blockdev-reopen", 1), ("cancelled", "after transaction", 1),
    ("cancelled", "after job-dismiss", 1), ("cancelled", "after save", 2),
    # The newest steps: between the last blockdev-del and the save that drops the job
    # (files deleted, or not yet), the export ended, the bitmaps carried over.
    ("deleted", "after blockdev-del", 2), ("backup-pull", "after nbd-server-stop", 1),
    ("backup-shared", "after block-export-del", 1), ("backup-push", "after blockdev-del", 2),
    ("pull-bitmaps", "after transaction", 1), ("copy-pivoted", "after transaction", 1),
    ("copy-shallow", "after blockdev-del", 2),
    # A create job's storage node detached, the job not yet dropped.
    ("create-failed", "after blockdev-del", 1),
    # A backup's running job cancelled because its sibling was, not yet concluded there.
    ("backup-sibling", "after job-cancel", 1),
])
def test_killed_at_a_point_converges(
    tmp_path: Path, flow: str, point: str, occurrence: int
) -> None:
    _, points = reference(tmp_path, flow)
    found = [number for number, name in enumerate(points) if name == point]
    assert len(found) >= occurrence, f"the {flow} flow passes {point!r} {len(found)} times"
    sweep(tmp_path, flow, found[occurrence - 1])


@fuzz_only
@pytest.mark.parametrize("flow", FLOWS)
# More than the longest flow passes (a backup over two disks: about 54; its cancel's
# polls of query-jobs vary a little).
@pytest.mark.parametrize("point", range(64))
def test_killed_at_every_point_converges(tmp_path: Path, flow: str, point: int) -> None:
    sweep(tmp_path, flow, point)


@pytest.mark.parametrize("flow", ["deleted", "backup-pull"])
def test_two_recoveries_at_once_reach_the_reference(tmp_path: Path, flow: str) -> None:
    """Two processes recover the domain together: one waits for the other and finds the
    work done (files deleted once, the server stopped once); both exit 0."""
    expected, _ = reference(tmp_path, flow)
    with _concluded(tmp_path / "run", flow) as tb:
        command = [sys.executable, "-m", "blockjob", "recover", str(tb.status_path)]
        runs = [subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)},
                                 cwd=REPO, stdout=subprocess.DEVNULL) for _ in range(2)]
        assert [run.wait(timeout=120) for run in runs] == [0, 0]
        assert end_state(tb) == expected
