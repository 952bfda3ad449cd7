"""A status file written by the tracker at each stage of an active commit, loaded by a
restarted libvirt 9.0 (../shared/libvirt-lab): libvirt then tracks the job and pivots
it, or, after the job ended, shows the chain QEMU runs."""

from __future__ import annotations

import os
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.campaign import FUZZ_ONLY, fuzz_only
from tests.support.libvirt_lab import (
    LIBVIRT_MARKS,
    LabDomain,
    LibvirtLab,
    format_node,
    mirror,
    qemu_jobs,
    recorded_jobs,
    running_lab,
    wait_for,
)
from tests.support.tracker_kill import killed_after_open
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
    pytest.param("pivot", "pivoting-persisted", ("vda-base",), marks=FUZZ_ONLY)],
    ids=["abort", "pivot"])
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


@pytest.mark.parametrize(("flow", "recording"), [
    pytest.param("start", False, marks=FUZZ_ONLY), ("start-recording", True)],
    ids=["listed", "left-recording"])
def test_base_bitmaps_after_libvirt_9_finished_a_commit_blockjob_started(
    lab: LibvirtLab, flow: str, recording: bool
) -> None:
    """libvirt >= 6.5 ignores `<disabledBaseBitmaps>` (a known limit, README): a commit
    blockjob started with base's `chkb` disabled and listed, that libvirt adopts and
    pivots, leaves `chkb` disabled for good, and the list is gone. Started with
    `disable_base_bitmaps=False`, as libvirt 9.0 starts its own, `chkb` keeps recording."""
    with lab.domain(f"bj-tr-{flow}", base_bitmaps=["chkb"]) as dom:
        lab.kill_daemon()
        killed_at(dom, flow, "running-persisted")
        assert ("<bitmap name='chkb'/>" in dom.status_path.read_text()) is not recording
        libvirt_loads(lab, dom)
        pivot_under_libvirt(dom, recorded_only(dom, "ready"))
        assert "disabledBaseBitmaps" not in dom.status_path.read_text()
        base = format_node(dom, dom.image("vda-base"))
        (node,) = [node for node in dom.qmp("query-named-block-nodes", {"flat": True})
                   if node["node-name"] == base]
        assert [(b["name"], b["recording"]) for b in node["dirty-bitmaps"]
                if b["name"] == "chkb"] == [("chkb", recording)]


def killed_anywhere(dom: LabDomain, flow: str, delay: float) -> None:
    """The daemon runs `flow` (start an active commit, ready, pivot or abort, follow to the
    end) in libvirt's mount namespace and is SIGKILLed `delay` seconds after its tracker is
    open."""
    killed_after_open(dom.namespace_status_path, flow, delay,
                      ("nsenter", "-t", str(dom.qemu_pid), "-m", "--"))


def settled(dom: LabDomain) -> bool:
    """libvirt holds no job, or its one job waits for a request."""
    jobs = recorded_jobs(dom)
    return not jobs or (libvirt_job(dom) is not None and set(jobs.values()) == {"ready"})


def libvirt_ends_it(lab: LibvirtLab, dom: LabDomain, flow: str) -> None:
    """libvirt, restarted on what `recover` left, takes the domain with virsh to the end
    the daemon wanted: the job pivoted or aborted, started again if it never started."""
    libvirt_loads(lab, dom)
    wait_for(lambda: settled(dom), "libvirt to reconnect to the job")
    if recorded_jobs(dom):
        dom.virsh("blockjob", "vda", "--pivot" if flow == "pivot" else "--abort")
    elif flow == "pivot" and libvirt_chain_top(dom) != "vda-base":
        dom.virsh("blockcommit", "vda", "--active", "--pivot")
    wait_for(lambda: not recorded_jobs(dom), "libvirt to end the job")
    assert qemu_jobs(dom) == {}
    assert_agree(dom, *(("vda-base",) if flow == "pivot" else ("vda-top", "vda-mid", "vda-base")))


def libvirt_chain_top(dom: LabDomain) -> str:
    source = dom.dumpxml().find("devices/disk/target[@dev='vda']/../source")
    assert source is not None
    return os.path.basename(source.get("file", "")).removesuffix(".qcow2")


# The daemon's flow takes some 50-100 ms once its tracker is open, the domain's QEMU being
# a TCG guest; the instants cover it and a little after.
LIBVIRT_KILLS = int(os.environ.get("BLOCKJOB_TRACKER_KILLS", "40"))


def kill_anywhere_then_libvirt(lab: LibvirtLab, flow: str, seed: int) -> None:
    """The daemon SIGKILLed anywhere, `blockjob recover`, then libvirt 9.0. (libvirt
    first is not random-safe: like libvirt's own daemon killed at the same instants, it
    keeps a job whose abort or pivot was saved but never sent, and drops a job
    dismissed before its finish was saved without finishing it: README, libvirt lab.)"""
    with lab.domain(f"bj-any-{flow}-{seed}") as dom:
        lab.kill_daemon()
        killed_anywhere(dom, flow, random.Random(seed).uniform(0.0, 0.12))
        done = dom.blockjob("recover", dom.namespace_status_path)
        assert done.returncode == 0, done.stdout + done.stderr
        libvirt_ends_it(lab, dom, flow)


def test_a_daemon_killed_at_a_random_instant_hands_over_to_libvirt(lab: LibvirtLab) -> None:
    kill_anywhere_then_libvirt(lab, "pivot", 1)


@fuzz_only
@pytest.mark.parametrize("flow", ["pivot", "abort"])
@pytest.mark.parametrize("seed", range(LIBVIRT_KILLS))
def test_a_daemon_killed_at_many_random_instants_hands_over_to_libvirt(
    lab: LibvirtLab, flow: str, seed: int
) -> None:
    kill_anywhere_then_libvirt(lab, flow, seed)
