"""Planning reads a job's disk only when a rule needs it, and plans alike either way.

A restart plans every job of every file, and reading a disk costs more than the rest of
a job's plan (`StatusDocument.disk`); the rules consult it last.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import blockjob
from blockjob.model import BlockJob, JobState, JobType
from blockjob.qemu.monitor import QemuJob
from blockjob.recovery import Decision, plan_job
from blockjob.recovery.plan import QEMU_TYPES, JobPlan
from tests.support.corpus import FIXTURES, status_file_params
from tests.test_recovery_plan import COMMIT, DATA, document

# What QEMU may say about a job: nothing, each status, an error, a device's node.
_STATUSES = (None, "running", "ready", "pending", "concluded")


def _qemu_views(job: BlockJob) -> list[tuple[QemuJob | None, list[str] | None]]:
    kind = QEMU_TYPES.get(job.brokentype or job.type, "commit")
    views: list[tuple[QemuJob | None, list[str] | None]] = [(None, None), (None, [])]
    for status in _STATUSES[1:]:
        views.append((QemuJob(job.name, kind, status), None))
    views.append((QemuJob(job.name, kind, "concluded", error="Input/output error"), None))
    return views


def _plan(doc: blockjob.StatusDocument, job: BlockJob, qjob: QemuJob | None,
          roots: list[str] | None) -> JobPlan | str:
    """The plan, or the error planning raises (an image without node names)."""
    try:
        return plan_job(doc, job, qjob, roots)
    except ValueError as exc:
        return f"ValueError: {exc}"


def _plans(doc: blockjob.StatusDocument) -> list[JobPlan | str]:
    return [_plan(doc, job, qjob, roots)
            for job in doc.jobs for qjob, roots in _qemu_views(job)]


def _roots(doc: blockjob.StatusDocument) -> list[str]:
    """Every node name of every disk: a device that runs on any of them."""
    names = []
    for disk in doc.disks:
        for top in (disk.chain, disk.mirror):
            for image in top.images() if top is not None else ():
                names += [n for n in (image.format_node, image.storage_node) if n]
    return names


@pytest.mark.parametrize("path", status_file_params())
def test_plans_are_the_same_whether_disks_were_read_first_or_not(path: Path) -> None:
    data = path.read_bytes()
    try:
        lazy = blockjob.loads(data)
    except blockjob.StatusXMLError:
        pytest.skip("libvirt refuses this file too")
    read = blockjob.loads(data)
    read_first = {disk.target: disk for disk in read.disks}  # from the whole document
    assert _plans(lazy) == _plans(read)
    roots = _roots(read)
    for job in read.jobs:
        assert _plan(lazy, job, None, roots) == _plan(read, job, None, roots)
    assert {target: lazy.disk(target) for target in read_first} == read_first


class _NoDiskReads:
    """A document whose `disk` fails the test: a plan that asks for it was not lazy."""

    def __init__(self, doc: blockjob.StatusDocument) -> None:
        self._doc = doc

    def __getattr__(self, name: str) -> object:
        return getattr(self._doc, name)

    def disk(self, target: str) -> None:
        raise AssertionError(f"disk {target!r} read")

    def resolve_node(self, job: BlockJob, node_name: str) -> None:
        raise AssertionError(f"node {node_name!r} resolved through the disk")


@pytest.mark.parametrize(("job", "decision"), [
    # QEMU knows none of them, as at a restart whose QEMU lost the jobs.
    (replace(COMMIT, data=replace(DATA, disabled_base_bitmaps=())), Decision.VANISHED),
    (replace(COMMIT, type=JobType.PULL, data=None), Decision.VANISHED),
    (replace(COMMIT, type=JobType.COPY, state=JobState.READY, data=None), Decision.UNDECIDABLE),
    # A copy's end asks only whether the disk has a mirror (`disk_has_mirror`), no chain.
    (replace(COMMIT, type=JobType.COPY, data=None), Decision.VANISHED),
    (replace(COMMIT, type=JobType.BACKUP, state=JobState.FAILED, data=None), Decision.FAILED),
])
def test_rules_that_need_no_disk_do_not_read_it(job: BlockJob, decision: Decision) -> None:
    doc = document(None)
    doc.add_job(job)
    plan = plan_job(_NoDiskReads(doc), job, None)  # type: ignore[arg-type]
    assert plan.decision is decision
    assert plan == plan_job(document(job), job, None)


def test_a_restart_of_the_fixture_reads_no_disk() -> None:
    path = FIXTURES / "blockjob-blockdev-in.xml"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    doc = blockjob.loads(path.read_bytes())
    lazy = _NoDiskReads(doc)
    plans = [plan_job(lazy, job, None) for job in doc.jobs]  # type: ignore[arg-type]
    assert {plan.decision for plan in plans} == {
        Decision.INVALID, Decision.VANISHED, Decision.UNDECIDABLE,
    }


@pytest.mark.parametrize("path", status_file_params())
def test_a_forgotten_job_plans_with_any_device_roots_even_without_node_names(
    path: Path,
) -> None:
    # The fixture's copy mirror names no node: its pivot window cannot be told from the
    # devices, which is undecidable, never an error.
    try:
        doc = blockjob.loads(path.read_bytes())
    except blockjob.StatusXMLError:
        pytest.skip("libvirt refuses this file too")
    for roots in (_roots(doc), [], ["unrelated-node"]):
        for job in doc.jobs:
            plan = plan_job(doc, job, None, roots)
            mirror = doc.disk(job.disk) if job.disk is not None else None
            if (job.type is JobType.COPY and job.state is JobState.READY
                    and mirror is not None and mirror.mirror is not None
                    and not (mirror.mirror.format_node or mirror.mirror.storage_node)):
                assert plan.decision in (Decision.UNDECIDABLE, Decision.NOT_PIVOTED)
