"""A status file written by the tracker at each stage of an active commit, loaded by a
restarted libvirt 9.0 (../shared/libvirt-lab): libvirt then tracks the job and pivots
it, or, after the job ended, shows the chain QEMU runs."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.libvirt_lab import (
    LIBVIRT_MARKS,
    LabDomain,
    LibvirtLab,
    mirror,
    recorded_jobs,
    running_lab,
    wait_for,
)
from tests.test_libvirt_interop import assert_agree, libvirt_job, libvirt_loads, recorded_only

pytestmark = LIBVIRT_MARKS
# Run as a file: the namespace's working directory is not the checkout.
STAGE_SCRIPT = Path(__file__).resolve().parent / "support" / "tracker_stage.py"
KILL_SCRIPT = Path(__file__).resolve().parent / "support" / "tracker_kill.py"


@pytest.fixture(scope="module")
def lab() -> Iterator[LibvirtLab]:
    with running_lab() as started:
        yield started


def tracker_to(dom: LabDomain, stage: str) -> str:
    done = dom.run_in_namespace(
        [sys.executable, str(STAGE_SCRIPT), dom.namespace_status_path, stage])
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def pivot_under_libvirt(dom: LabDomain, name: str) -> None:
    wait_for(lambda: recorded_jobs(dom) == {name: "ready"}, "libvirt to see the job ready")
    shown = mirror(dom.dumpxml(), "vda")
    assert shown is not None and shown.get("ready") == "yes"
    dom.virsh("blockjob", "vda", "--pivot")
    wait_for(lambda: not recorded_jobs(dom), "libvirt to finish the pivot")
    assert_agree(dom, "vda-base")


@pytest.mark.parametrize("stage", ["running", "ready"])
def test_libvirt_tracks_and_pivots_a_job_the_tracker_started(
    lab: LibvirtLab, stage: str
) -> None:
    with lab.domain(f"bj-tr-{stage}") as dom:
        lab.kill_daemon()
        name = tracker_to(dom, stage)
        assert re.search(rf"<blockjob name='{name}' type='active-commit' state='{stage}'",
                         dom.status_path.read_text())
        libvirt_loads(lab, dom)
        wait_for(lambda: libvirt_job(dom) == "Active Block Commit",
                 "libvirt to track the active commit")
        if stage == "running":
            dom.virsh("blockjob", "vda", "--bandwidth", "0")
        pivot_under_libvirt(dom, name)


def test_libvirt_shows_the_chain_after_the_tracker_pivoted(lab: LibvirtLab) -> None:
    with lab.domain("bj-tr-ended") as dom:
        lab.kill_daemon()
        tracker_to(dom, "ended")
        assert "<blockjob " not in dom.status_path.read_text()
        libvirt_loads(lab, dom)
        assert recorded_jobs(dom) == {}
        assert_agree(dom, "vda-base")


def test_a_pivot_the_tracker_left_half_done_is_loaded_then_finished(lab: LibvirtLab) -> None:
    with lab.domain("bj-tr-pivoting") as dom:
        lab.kill_daemon()
        name = tracker_to(dom, "pivoting")
        libvirt_loads(lab, dom)
        # libvirt 9.0 keeps a job it finds pivoting as it is (QEMU still says ready).
        wait_for(lambda: libvirt_job(dom) == "Active Block Commit",
                 "libvirt to track the active commit")
        assert recorded_jobs(dom) == {name: "pivoting"}
        lab.kill_daemon()
        assert tracker_to(dom, "finish") == "finished"  # our daemon asks the pivot again
        libvirt_loads(lab, dom)
        assert_agree(dom, "vda-base")


def test_a_commit_the_tracker_left_pending_is_loaded_then_finished(lab: LibvirtLab) -> None:
    """`state='pending' newstate='pending'`, saved before job-finalize, loads in libvirt
    9.0, which keeps the job as it is; our next tracker finalizes and finishes it."""
    with lab.domain("bj-tr-pending") as dom:
        lab.kill_daemon()
        name = tracker_to(dom, "pending")
        assert re.search(rf"<blockjob name='{name}' type='commit' state='pending' "
                         "newstate='pending'", dom.status_path.read_text())
        libvirt_loads(lab, dom)
        wait_for(lambda: libvirt_job(dom) == "Block Commit", "libvirt to track the commit")
        assert recorded_jobs(dom) == {name: "pending"}
        lab.kill_daemon()
        assert tracker_to(dom, "finish") == "finished"
        libvirt_loads(lab, dom)
        assert_agree(dom, "vda-top", "vda-base")


def killed_at(dom: LabDomain, flow: str, point: str) -> None:
    """The daemon runs `flow` on an active commit of vda and SIGKILLs itself at `point`."""
    done = dom.run_in_namespace(
        [sys.executable, str(KILL_SCRIPT), dom.namespace_status_path, flow, point])
    assert done.returncode == -9, done.stdout + done.stderr


def test_a_start_killed_before_qemu_had_the_job_leaves_libvirt_free(lab: LibvirtLab) -> None:
    """The `new` job was saved with the disk's `<mirror>`: libvirt 9.0 dropped the job
    ("untracked by qemu") but kept the mirror, for good, and refused every later job on
    the disk ("already in active block job"). libvirt saves the mirror with `running`."""
    with lab.domain("bj-tr-unstarted") as dom:
        lab.kill_daemon()
        killed_at(dom, "start", "job-persisted")
        libvirt_loads(lab, dom)
        wait_for(lambda: not recorded_jobs(dom), "libvirt to drop the job QEMU never had")
        assert mirror(dom.dumpxml(), "vda") is None
        dom.virsh("blockcommit", "vda", "--active")
        pivot_under_libvirt(dom, recorded_only(dom, "ready"))


@pytest.mark.parametrize(("flow", "point", "chain"), [
    ("abort", "aborting-persisted", ("vda-top", "vda-mid", "vda-base")),
    ("pivot", "pivoting-persisted", ("vda-base",))], ids=["abort", "pivot"])
def test_a_request_recorded_but_never_sent_is_ended_by_recover_before_libvirt(
    lab: LibvirtLab, flow: str, point: str, chain: tuple[str, ...]
) -> None:
    """The daemon died between saving `aborting` / `pivoting` and its QMP command.
    libvirt 9.0 keeps such a job as it is and refuses both abort and pivot of it ("still
    being ended"), for good; `recover` adopted it as it was. It now asks it again."""
    with lab.domain(f"bj-tr-asked-{flow}") as dom:
        lab.kill_daemon()
        killed_at(dom, flow, point)
        done = dom.blockjob("recover", dom.namespace_status_path)
        assert done.returncode == 0, done.stdout + done.stderr
        libvirt_loads(lab, dom)
        assert recorded_jobs(dom) == {}
        assert_agree(dom, *chain)
