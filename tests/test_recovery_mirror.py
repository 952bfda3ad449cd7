"""Copy and active-commit jobs that are over take their disk's `<mirror>` with them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import blockjob
from blockjob.model import JobState
from blockjob.qemu.monitor import QemuJob
from blockjob.recovery import Decision, plan_job
from blockjob.recovery.execute import Context, run_step
from blockjob.recovery.steps import Drop

DATA = Path(__file__).parent / "data"
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
