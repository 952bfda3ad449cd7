"""The recovery rules table: job state x QEMU state -> decision and steps (no QEMU)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import blockjob
from blockjob.demo.qemu import AttachedImage
from blockjob.demo.statusfile import DiskChain, domstatus_xml
from blockjob.model import BlockJob, CommitData, JobState, JobType, PullData
from blockjob.qemu.monitor import QemuJob
from blockjob.recovery import Decision, plan_job
from blockjob.recovery.steps import (
    Cancel,
    DeleteNodes,
    Dismiss,
    Drop,
    Finalize,
    MergeBitmaps,
    Record,
    Reenable,
    describe,
)

NAME = "commit-vda-libvirt-2-format"
DATA = CommitData(base="libvirt-3-storage", top="libvirt-2-storage",
                  topparent="libvirt-1-storage", disabled_base_bitmaps=("chk1", "chk0"))
COMMIT = BlockJob(NAME, JobType.COMMIT, JobState.RUNNING, jobflags=0, disk="vda", data=DATA)


def document(job: BlockJob | None = COMMIT) -> blockjob.StatusDocument:
    images = tuple(AttachedImage(Path(f"/img/{n}.qcow2"), i + 1)
                   for i, n in enumerate(("top", "mid", "base")))
    doc = blockjob.loads(domstatus_xml("lab1", "/run/qmp.sock", 1, [DiskChain("vda", images)]))
    if job is not None:
        doc.add_job(job)
    return doc


def qemu(status: str, error: str | None = None, name: str = NAME,
         kind: str = "commit") -> QemuJob:
    return QemuJob(name, kind, status, error=error)


def kinds(steps: tuple[object, ...]) -> list[str]:
    return [type(step).__name__ for step in steps]


def test_concluded_commit_is_finished_merged_and_spliced_out() -> None:
    doc = document()
    plan = plan_job(doc, COMMIT, qemu("concluded"))
    assert plan.decision is Decision.COMPLETED
    assert kinds(plan.steps) == ["Record", "MergeBitmaps", "Dismiss", "DeleteNodes", "Drop"]
    record, merge, _, delete, drop = plan.steps
    assert isinstance(record, Record) and record.newstate is JobState.COMPLETED
    assert isinstance(merge, MergeBitmaps)
    assert merge.chain == ("libvirt-2-format", "libvirt-3-format")
    assert merge.listed == ("chk1", "chk0")
    assert isinstance(delete, DeleteNodes)
    assert [i.format_node for i in delete.images] == ["libvirt-2-format"]
    assert isinstance(drop, Drop) and drop.chain is not None
    assert [i.format_node for i in drop.chain.images()] == ["libvirt-1-format", "libvirt-3-format"]
    assert drop.chain.images()[-1].terminated


def test_recorded_completion_resumes_without_qemu_job() -> None:
    job = replace(COMMIT, newstate=JobState.COMPLETED)
    plan = plan_job(document(job), job, None)
    assert plan.decision is Decision.COMPLETED
    assert kinds(plan.steps) == ["MergeBitmaps", "DeleteNodes", "Drop"]


def test_a_cancel_that_came_too_late_finds_the_commit_done() -> None:
    # Cancelled, a commit concludes with an error; without one it ran to its end (libvirt
    # would call it cancelled and keep a chain QEMU no longer runs).
    job = replace(COMMIT, state=JobState.ABORTING)
    plan = plan_job(document(job), job, qemu("concluded"))
    assert plan.decision is Decision.COMPLETED
    assert kinds(plan.steps) == ["Record", "MergeBitmaps", "Dismiss", "DeleteNodes", "Drop"]


@pytest.mark.parametrize(("job", "qjob", "outcome"), [
    (COMMIT, qemu("concluded", "Input/output error"), JobState.FAILED),
    (replace(COMMIT, state=JobState.ABORTING), qemu("concluded", "Operation canceled"),
     JobState.CANCELLED),
    (replace(COMMIT, type=JobType.ACTIVE_COMMIT, state=JobState.READY), qemu("concluded"),
     JobState.CANCELLED),
    (replace(COMMIT, newstate=JobState.FAILED), None, JobState.FAILED),
])
def test_jobs_that_ended_badly_get_bitmaps_back_and_keep_the_chain(
    job: BlockJob, qjob: QemuJob | None, outcome: JobState
) -> None:
    doc = document(replace(job, data=replace(DATA, topparent=None))
                   if job.type is JobType.ACTIVE_COMMIT else job)
    stored = doc.job(NAME)
    assert stored is not None
    plan = plan_job(doc, stored, qjob)
    assert plan.decision is Decision.FAILED
    steps = [s for s in plan.steps if not isinstance(s, Record)]
    expected = ["Reenable", "Dismiss", "Drop"] if qjob else ["Reenable", "Drop"]
    assert kinds(tuple(steps)) == expected
    drop = steps[-1]
    assert isinstance(drop, Drop) and drop.chain is None
    records = [s for s in plan.steps if isinstance(s, Record)]
    assert all(r.newstate is outcome for r in records)


def test_failure_message_from_qemu_is_recorded() -> None:
    plan = plan_job(document(), COMMIT, qemu("concluded", "Input/output error"))
    record = plan.steps[0]
    assert isinstance(record, Record) and record.errmsg == "Input/output error"
    assert describe(record) == "record newstate=failed errmsg='Input/output error'"


@pytest.mark.parametrize(("state", "status", "new"), [
    (JobState.NEW, "running", JobState.RUNNING),
    (JobState.RUNNING, "ready", JobState.READY),
    (JobState.NEW, "ready", JobState.READY),
    (JobState.RUNNING, "running", None),
    (JobState.PIVOTING, "ready", None),
])
def test_running_jobs_are_adopted_and_follow_qemu(
    state: JobState, status: str, new: JobState | None
) -> None:
    job = replace(COMMIT, state=state)
    plan = plan_job(document(job), job, qemu(status))
    assert plan.decision is Decision.ADOPT
    # Ready is written as libvirt 9.0 does: state and newstate.
    newstate = JobState.READY if new is JobState.READY else None
    assert plan.steps == ((Record(NAME, state=new, newstate=newstate),) if new else ())


def test_a_recorded_request_qemu_never_acted_on_is_asked_again() -> None:
    """An abort, or an active commit's pivot, saved before its QMP command by a daemon
    that died in between: libvirt 9.0 would keep the job forever, so recovery asks."""
    aborting = replace(COMMIT, state=JobState.ABORTING)
    plan = plan_job(document(aborting), aborting, qemu("running"))
    assert plan.decision is Decision.ASKED_AGAIN and plan.steps == (Cancel(NAME),)
    name = "commit-vda-libvirt-1-format"
    pivoting = BlockJob(name, JobType.ACTIVE_COMMIT, JobState.PIVOTING, jobflags=4, disk="vda",
                        data=CommitData(base="libvirt-3-storage", top="libvirt-1-storage"))
    plan = plan_job(document(pivoting), pivoting, qemu("ready", name=name))
    assert plan.decision is Decision.ASKED_AGAIN
    assert kinds(plan.steps) == ["MergeBitmaps", "Complete"]
    assert describe(plan.steps[1]) == f"job-complete {name} and wait for it to conclude"


def test_an_abort_of_a_job_waiting_for_its_transaction_is_asked_again() -> None:
    """QEMU takes a `job-cancel` in `waiting` too (a job done, waiting for the other jobs
    of its transaction): adopted, the abort was never asked, and libvirt 9.0 refuses to."""
    aborting = replace(COMMIT, state=JobState.ABORTING)
    plan = plan_job(document(aborting), aborting, qemu("waiting"))
    assert plan.decision is Decision.ASKED_AGAIN and plan.steps == (Cancel(NAME),)


@pytest.mark.parametrize("status", ["standby", "paused"])
def test_a_recorded_pivot_of_a_job_qemu_holds_paused_needs_an_operator(status: str) -> None:
    """QEMU refuses `job-complete` unless ready, and libvirt 9.0 refuses to pivot or abort a
    `pivoting` job until QEMU says ready: adopted as ok, it stayed so unseen."""
    name = "commit-vda-libvirt-1-format"
    pivoting = BlockJob(name, JobType.ACTIVE_COMMIT, JobState.PIVOTING, jobflags=4, disk="vda",
                        data=CommitData(base="libvirt-3-storage", top="libvirt-1-storage"))
    plan = plan_job(document(pivoting), pivoting, qemu(status, name=name))
    assert plan.decision is Decision.HELD and plan.steps == ()
    assert plan.note is not None and f"QEMU holds the job {status}" in plan.note


@pytest.mark.parametrize("state", [JobState.NEW, JobState.RUNNING])
def test_pending_is_recorded_then_finalized(state: JobState) -> None:
    job = replace(COMMIT, state=state)
    plan = plan_job(document(job), job, qemu("pending"))
    pending = Record(NAME, state=JobState.PENDING, newstate=JobState.PENDING)
    assert plan.decision is Decision.FINALIZE and plan.steps == (pending, Finalize(NAME))


@pytest.mark.parametrize("state", [JobState.PENDING, JobState.PIVOTING])
def test_pending_keeps_a_recorded_request_or_pending(state: JobState) -> None:
    job = replace(COMMIT, state=state)
    plan = plan_job(document(job), job, qemu("pending"))
    assert plan.decision is Decision.FINALIZE and plan.steps == (Finalize(NAME),)


def test_a_recorded_abort_of_a_pending_job_is_asked_again() -> None:
    """Finalized, the job asked to stop would complete (real QEMU:
    test_an_abort_recorded_over_a_pending_job_is_asked_again_not_finalized)."""
    job = replace(COMMIT, state=JobState.ABORTING)
    plan = plan_job(document(job), job, qemu("pending"))
    assert plan.decision is Decision.ASKED_AGAIN and plan.steps == (Cancel(NAME),)


def test_never_started_job_restores_bitmaps_and_base() -> None:
    job = replace(COMMIT, state=JobState.NEW)
    plan = plan_job(document(job), job, None)
    assert plan.decision is Decision.UNSTARTED
    reenable, drop = plan.steps
    assert isinstance(reenable, Reenable) and not reenable.base_is_active
    assert reenable.base.format_node == "libvirt-3-format"
    assert drop == Drop(NAME)


LAB = Path(__file__).parent / "data" / "lab"
DRIVER = b"<driver name='qemu' type='qcow2'/>"


def _lab_file(name: str, state: JobState) -> tuple[blockjob.StatusDocument, BlockJob]:
    doc = blockjob.load(LAB / name)
    job = replace(doc.jobs[0], state=state)
    doc.replace_job(job)
    return doc, job


# (document, job, QEMU's job) of each plan whose steps reopen an image of the disk.
BASE_STEPS: dict[str, Callable[[], tuple[blockjob.StatusDocument, BlockJob, QemuJob | None]]] = {
    "commit-completed": lambda: (document(), COMMIT, qemu("concluded")),
    "commit-unstarted": lambda: (document(replace(COMMIT, state=JobState.NEW)),
                                 replace(COMMIT, state=JobState.NEW), None),
    "pull-completed": lambda: (*_lab_file("pull-running.xml", JobState.RUNNING),
                               QemuJob("pull-vda-libvirt-2-format", "stream", "concluded")),
    "copy-pivoted": lambda: (*_lab_file("shallow-copy-ready.xml", JobState.PIVOTING),
                             QemuJob("copy-vda-libvirt-1-format", "mirror", "concluded")),
}


@pytest.mark.parametrize("case", BASE_STEPS)
@pytest.mark.parametrize("discard", [None, "unmap"])
def test_the_steps_that_reopen_carry_the_disks_discard(case: str, discard: str | None) -> None:
    """QEMU does not report a node's discard mode, and a reopen that leaves it out resets
    it: the disk's `<driver discard>` goes with the steps."""
    doc, job, qjob = BASE_STEPS[case]()
    if discard is not None:
        data = doc.dumps()
        assert DRIVER in data
        doc = blockjob.loads(data.replace(DRIVER, DRIVER[:-2] + b" discard='unmap'/>"))
    steps = [step for step in plan_job(doc, job, qjob).steps
             if isinstance(step, MergeBitmaps | Reenable)]
    assert steps and [step.discard for step in steps] == [discard] * len(steps)


def test_vanished_running_job_is_dropped_with_a_note() -> None:
    plan = plan_job(document(), COMMIT, None)
    assert plan.decision is Decision.VANISHED and plan.note
    assert kinds(plan.steps) == ["Reenable", "Drop"]


def test_invalid_job_is_cancelled_and_its_listed_bitmaps_restored() -> None:
    job = replace(COMMIT, data=replace(DATA, top="libvirt-99-storage"))
    doc = blockjob.loads(document(job).dumps())  # reload: the reader marks it invalid
    loaded = doc.job(NAME)
    assert loaded is not None and loaded.invalid
    plan = plan_job(doc, loaded, qemu("running"))
    assert plan.decision is Decision.INVALID
    assert plan.steps[:2] == (Cancel(NAME), Dismiss(NAME))
    assert kinds(plan.steps[2:]) == ["Reenable", "Drop"]
    assert plan_job(doc, loaded, None).steps[0].__class__ is Reenable


def test_finished_pull_keeps_top_and_base() -> None:
    job = BlockJob("pull-vda-libvirt-1-format", JobType.PULL, JobState.RUNNING, jobflags=0,
                   disk="vda", data=PullData(base="libvirt-3-storage"))
    plan = plan_job(document(job), job, qemu("concluded", name=job.name, kind="stream"))
    assert kinds(plan.steps) == ["Record", "Dismiss", "MergeBitmaps", "DeleteNodes", "Drop"]
    drop = plan.steps[-1]
    assert isinstance(drop, Drop) and drop.chain is not None
    assert [i.format_node for i in drop.chain.images()] == ["libvirt-1-format", "libvirt-3-format"]


def test_finished_copy_is_only_dismissed_and_dropped() -> None:
    job = BlockJob("copy-vda-libvirt-1-format", JobType.COPY, JobState.PIVOTING, jobflags=0,
                   disk="vda")
    plan = plan_job(document(job), job, qemu("concluded", name=job.name, kind="mirror"))
    assert plan.decision is Decision.COMPLETED
    assert kinds(plan.steps) == ["Record", "Dismiss", "Drop"]
