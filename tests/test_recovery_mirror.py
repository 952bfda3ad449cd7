"""Copy and active-commit jobs that are over take their disk's `<mirror>` with them."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

import blockjob
from blockjob.model import JobState
from blockjob.qemu.monitor import QemuJob
from blockjob.recovery import Decision, plan_job
from blockjob.recovery.execute import Context, run_step
from blockjob.recovery.steps import DeleteNodes, Drop, MergeBitmaps
from tests.support.corpus import REAL

DATA = Path(__file__).parent / "data"
LAB = DATA / "lab"
COPY = "copy-vdb-libvirt-9-format"


class _Saved:
    def __init__(self) -> None:
        self.saved: list[bytes] = []

    def save(self, doc: blockjob.StatusDocument) -> None:
        self.saved.append(doc.dumps())


def _finish(state: JobState, decision: Decision) -> tuple[blockjob.StatusDocument, Drop]:
    doc = blockjob.load(DATA / "every-type-in.xml")
    job = doc.job(COPY)
    assert job is not None
    job = replace(job, state=state)
    doc.replace_job(job)
    plan = plan_job(doc, job, QemuJob(COPY, "mirror", "concluded"))
    assert plan.decision is decision
    drop = plan.steps[-1]
    assert isinstance(drop, Drop)
    saver = _Saved()
    run_step(Context(doc, saver, monitor=None), drop)  # type: ignore[arg-type]
    assert saver.saved and saver.saved[-1] == doc.dumps()
    return doc, drop


def test_cancelled_copy_leaves_the_chain_and_removes_the_mirror() -> None:
    # Concluded without a pivot request: it was cancelled.
    doc, drop = _finish(JobState.READY, Decision.FAILED)
    assert drop.drop_mirror and drop.chain is None
    disk = doc.disk("vdb")
    assert disk is not None and disk.mirror is None
    assert disk.chain is not None and disk.chain.path == "/img/vdb-top.qcow2"
    assert doc.job(COPY) is None
    assert blockjob.loads(doc.dumps()).dumps() == doc.dumps()


def test_pivoted_copy_runs_on_the_mirror_images() -> None:
    doc, drop = _finish(JobState.PIVOTING, Decision.COMPLETED)
    assert drop.drop_mirror and drop.chain is not None
    disk = doc.disk("vdb")
    assert disk is not None and disk.mirror is None
    assert disk.chain is not None and disk.chain.path == "/img/vdb-copy.qcow2"
    assert disk.chain.format_node == "libvirt-9-format"


@pytest.mark.parametrize(("name", "qemu_type"), [
    ("activecommit", "commit"), ("blockcopy", "mirror"),
])
def test_adopting_a_ready_mirror_writes_what_libvirt_9_writes(name: str, qemu_type: str) -> None:
    running, ready = REAL / f"{name}-running.xml", REAL / f"{name}-ready.xml"
    if not running.exists():
        pytest.skip(f"{running} is not available")
    doc = blockjob.load(running)
    job = doc.jobs[0]
    plan = plan_job(doc, job, QemuJob(job.name, qemu_type, "ready"))
    assert plan.decision is Decision.ADOPT
    saver = _Saved()
    for step in plan.steps:
        run_step(Context(doc, saver, monitor=None), step)  # type: ignore[arg-type]
    assert saver.saved[-1] == ready.read_bytes()
    again = blockjob.loads(saver.saved[-1])
    assert plan_job(again, again.jobs[0], QemuJob(job.name, qemu_type, "ready")).steps == ()


def _disk_element(data: bytes, target: str) -> bytes:
    """The bytes of the domain's `<disk>` whose target is `target`."""
    for disk in re.findall(rb"\n( *<disk type=.*?\n *</disk>\n)", data, re.DOTALL):
        if f"<target dev='{target}'".encode() in disk:
            return bytes(disk)
    raise AssertionError(f"no disk {target}")


def test_pivoted_shallow_copy_keeps_the_chain_below_the_old_top() -> None:
    """libvirt 9.0 records a shallow copy into a new image with no backing under its
    `<mirror>`; pivoted, the copy inherits the disk's chain below the old top, and only
    that top leaves QEMU (tests/data/lab: libvirt's file before and after its own pivot)."""
    ready = blockjob.load(LAB / "shallow-copy-ready.xml")
    job = replace(ready.jobs[0], state=JobState.PIVOTING)
    ready.replace_job(job)
    plan = plan_job(ready, job, QemuJob(job.name, "mirror", "concluded"))
    assert plan.decision is Decision.COMPLETED
    (deleted,) = [step for step in plan.steps if isinstance(step, DeleteNodes)]
    assert [image.format_node for image in deleted.images] == ["libvirt-2-format"]
    drop = plan.steps[-1]
    assert isinstance(drop, Drop)
    run_step(Context(ready, _Saved(), monitor=None), drop)  # type: ignore[arg-type]
    pivoted = (LAB / "shallow-copy-pivoted.xml").read_bytes()
    assert _disk_element(ready.dumps(), "vda") == _disk_element(pivoted, "vda")


@pytest.mark.parametrize("path", [REAL / "blockcopy-ready.xml", LAB / "shallow-copy-ready.xml"],
                         ids=["full", "shallow"])
def test_pivoted_copy_carries_the_chains_bitmaps_over(path: Path) -> None:
    """libvirt 9.0 merges the bitmaps of the disk's chain (a shallow copy: of its top)
    into the copy's top when the copy pivots; without them the checkpoints are broken
    ("missing or broken bitmap" on the next incremental backup)."""
    if not path.exists():
        pytest.skip(f"{path} is not available")
    doc = blockjob.load(path)
    job = replace(doc.jobs[0], state=JobState.PIVOTING)
    doc.replace_job(job)
    disk = doc.disk(job.disk or "")
    assert disk is not None and disk.chain is not None and disk.mirror is not None
    plan = plan_job(doc, job, QemuJob(job.name, "mirror", "concluded"))
    (merge,) = [step for step in plan.steps if isinstance(step, MergeBitmaps)]
    images = disk.chain.images()
    shallow = path.parent == LAB
    assert merge.committed == tuple(images[:1] if shallow else images)
    assert merge.chain == tuple(image.format_node for image in images)
    assert merge.base == disk.mirror and merge.base_is_active and merge.listed == ()
    assert plan.steps.index(merge) < next(
        i for i, step in enumerate(plan.steps) if isinstance(step, DeleteNodes))


def test_finished_pull_merges_the_pulled_bitmaps_into_the_top() -> None:
    """libvirt 9.0 merges the bitmaps of the images a pull removes into the disk's top
    (after job-dismiss, before they leave QEMU): a checkpoint's changes recorded in them
    are otherwise missing from the next incremental backup (seen in the lab: 1 MiB of
    2 MiB). tests/data/lab: libvirt's file of a running pull of vda's mid."""
    doc = blockjob.load(LAB / "pull-running.xml")
    job = doc.jobs[0]
    plan = plan_job(doc, job, QemuJob(job.name, "stream", "concluded"))
    kinds = [type(step).__name__ for step in plan.steps]
    assert kinds == ["Record", "Dismiss", "MergeBitmaps", "DeleteNodes", "Drop"]
    merge = plan.steps[2]
    assert isinstance(merge, MergeBitmaps) and merge.base_is_active and merge.listed == ()
    assert merge.base.format_node == "libvirt-2-format"
    assert [image.format_node for image in merge.committed] == ["libvirt-3-format"]
    assert merge.chain == ("libvirt-2-format", "libvirt-3-format", "libvirt-4-format")
