"""Recovery of broken, foreign and unreachable cases, and the other job types (real QEMU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import blockjob
from blockjob.demo.lab import DiskSpec, Lab
from blockjob.jobs.commit import CommitError, start_commit
from blockjob.model import BlockJob, CommitData, JobState, JobType, PullData
from blockjob.qemu.monitor import Monitor, QMPCommandError
from blockjob.qemu.reopen import transaction_on
from blockjob.recovery import Decision, recover
from blockjob.store.status_store import StatusStore
from tests.support import scenario
from tests.support.finish_lab import add_image
from tests.support.qemu_fixtures import (
    BASE,
    CRAWL,
    JOB,
    MID,
    QEMU_MARKS,
    TOP,
    assert_chain,
    assert_file_sound,
    base_bitmaps,
    base_image,
    commit,
    counts,
    crash_qemu_and_restart,
    job_status,
    started,
    wait_concluded,
    wait_until,
)
from tests.test_qmp_wire import Peer, Script, answer, peer
from tests.test_recovery_qemu import assert_completed, recover_ok

pytestmark = QEMU_MARKS
REPO = Path(__file__).resolve().parent.parent


def test_invalid_job_is_cancelled_its_bitmaps_restored_and_the_file_stays_loadable(
    tmp_path: Path,
) -> None:
    with started(tmp_path) as tb:
        commit(tb, speed=CRAWL)
        text = tb.status_path.read_text()
        broken = text.replace("<top node='libvirt-2-storage'/>", "<top node='libvirt-99-storage'/>")
        assert broken != text
        tb.status_path.write_text(broken)
        report = recover([tb.status_path])
        job = report.domains[0].jobs[0]
        assert report.ok and job.decision == Decision.INVALID and "libvirt-99" in (job.note or "")
        assert job.steps[0].startswith("job-cancel")
        with tb.connect() as monitor:
            assert monitor.query_jobs() == {}
        doc = assert_file_sound(tb.status_path)
        assert doc.jobs == []
        assert_chain(doc, TOP, MID, BASE)
        bitmaps = base_bitmaps(tb)
        assert counts(bitmaps) == scenario.EXPECTED_UNCHANGED
        assert bitmaps["chk0"].recording and bitmaps["chk1"].recording


# `aborting`: the daemon asked for a cancel that came too late (the pull had run to its
# end: cancelled, it would have concluded with an error); it is finished as completed.
@pytest.mark.parametrize("state", [JobState.RUNNING, JobState.ABORTING])
def test_concluded_stream_job_does_not_crash_qemu(tmp_path: Path, state: JobState) -> None:
    """QEMU 7.2 segfaults on query-named-block-nodes while a concluded stream job waits."""
    name = "pull-vda-libvirt-1-format"
    with started(tmp_path) as tb:
        doc = blockjob.load(tb.status_path)
        doc.add_job(BlockJob(name, JobType.PULL, state, jobflags=0, disk="vda",
                             data=PullData(base="libvirt-3-storage")))
        StatusStore(tmp_path).save(doc)
        with tb.connect() as monitor:
            monitor.execute("block-stream", {"job-id": name, "device": TOP, "base-node": BASE,
                                             "auto-dismiss": False})
        wait_concluded(tb, name)
        dry = recover([tb.status_path], dry_run=True)  # must not ask for the node graph
        assert dry.domains[0].jobs[0].decision == Decision.COMPLETED
        report = recover([tb.status_path])
        assert report.ok and report.domains[0].jobs[0].decision == Decision.COMPLETED
        assert_chain(assert_file_sound(tb.status_path), TOP, BASE)
        with tb.connect() as monitor:
            assert monitor.query_jobs() == {}
            assert MID not in monitor.query_nodes()


def _commit_beside_a_broken_pull(tb: Lab, directory: Path, stream: dict[str, object],
                                 cancel: bool = False) -> None:
    """vda's commit and a pull of vdb libvirt re-typed `broken`, both concluded in QEMU
    (the pull's `block-stream` with `stream`'s arguments, cancelled if `cancel`)."""
    commit(tb)
    doc = blockjob.load(tb.status_path)
    doc.add_job(BlockJob(BROKEN_PULL, JobType.BROKEN, JobState.RUNNING,
                         brokentype=JobType.PULL, disk="vdb"))
    StatusStore(directory).save(doc)
    with tb.connect() as monitor:
        monitor.execute("block-stream", {"job-id": BROKEN_PULL, "device": "libvirt-4-format",
                                         "auto-dismiss": False, **stream})
        if cancel:
            monitor.job_cancel(BROKEN_PULL)
    wait_concluded(tb)
    wait_concluded(tb, BROKEN_PULL)


BROKEN_PULL = "pull-vdb-libvirt-4-format"


def test_a_pull_libvirt_typed_broken_is_dismissed_before_the_graph_is_asked(
    tmp_path: Path,
) -> None:
    """libvirt re-types an invalid pull QEMU still runs `broken` and cancels it; its
    concluded stream job must go before a commit's merge asks for the node graph (the
    commit, first in the file, failed: `query-named-block-nodes not sent`)."""
    with started(tmp_path, second_disk=True) as tb:
        _commit_beside_a_broken_pull(tb, tmp_path, {"speed": 1}, cancel=True)
        assert recover_ok(tb) == [Decision.COMPLETED, Decision.INVALID]
        assert_completed(tb)
        with tb.connect() as monitor:
            assert monitor.query_jobs() == {}


def test_a_stale_chain_of_one_disk_holds_back_no_other_disks_finished_job(
    tmp_path: Path,
) -> None:
    """A broken pull QEMU completed leaves vdb's chain in the file stale: attention on
    every run that has a job to recover. It also kept vda's finished commit in the file
    for good, which a restarted libvirt drops unfinished ("untracked by qemu"), keeping the
    committed image QEMU no longer has in vda's chain. Only the jobs a failed check is
    about stay."""
    stale = ("disk vdb: libvirt-4-format is backed by libvirt-6-format in QEMU, the file "
             "says libvirt-5-format")
    with started(tmp_path, second_disk=True) as tb:
        _commit_beside_a_broken_pull(tb, tmp_path, {"base-node": "libvirt-6-format"})
        report = recover([tb.status_path])
        assert report.domains[0].failed_checks == [stale] and not report.ok
        assert_completed(tb)


def test_unreachable_monitor_needs_attention_and_other_domains_still_recover(
    tmp_path: Path,
) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        gone = tb.status_path.read_text().replace("<name>lab1</name>", "<name>lab2</name>")
        gone = gone.replace(tb.monitor_path, str(tmp_path / "dead.sock"))
        (tmp_path / "lab2.xml").write_text(gone)
        wait_concluded(tb)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-m", "blockjob", "recover", "--json", str(tmp_path)],
            env=env, cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        result = json.loads(done.stdout)
        by_name = {d["domain"]: d for d in result["domains"]}
        assert by_name["lab1"]["status"] == "reconciled"
        assert by_name["lab2"]["status"] == "attention"
        assert "QEMU monitor unavailable" in by_name["lab2"]["error"]
        assert (tmp_path / "lab2.xml").read_text() == gone
        assert blockjob.load(tb.status_path).jobs == []


def test_commit_refused_by_qemu_leaves_no_job_and_no_disabled_bitmap(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        with pytest.raises(CommitError, match="QEMU refused the commit"), \
                StatusStore(tmp_path).owned(tb.name) as owner:
            start_commit(owner, "vda", MID, BASE, speed=-1)
        assert assert_file_sound(tb.status_path).jobs == []
        bitmaps = base_bitmaps(tb)
        assert bitmaps["chk0"].recording and bitmaps["chk1"].recording
        with tb.connect() as monitor:
            assert job_status(monitor) is None
            assert monitor.query_nodes()[BASE].read_only


def test_started_commit_is_recorded_with_its_disabled_bitmaps(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        job = commit(tb, speed=CRAWL)
        assert job is not None and job.name == JOB and job.state == "running"
        saved = assert_file_sound(tb.status_path).job(JOB)
        assert saved == job
        assert sorted(job.disabled_base_bitmaps) == sorted(scenario.DISABLED_AT_START)
        assert job.commit is not None and job.commit.topparent == "libvirt-1-storage"
        assert {n for n, b in base_bitmaps(tb).items() if b.recording} == set()
        with tb.connect() as monitor:
            assert job_status(monitor) == "running"
            assert monitor.query_nodes()[BASE].read_only is False  # the commit writes to it


SHARED = REPO.parent / "shared" / "libvirt-9.0-status"


def test_libvirt_9_corrupt_file_is_rewritten_loadable(tmp_path: Path) -> None:
    """libvirt 9.0 lost this domain on the next restart (`<mirror job=''>`, QEMU.md)."""
    source = SHARED / "corrupt1-edited.xml"
    if not source.exists():
        pytest.skip(f"{source} is not available")
    with started(tmp_path / "qemu") as tb:
        text = source.read_text()
        text = text.replace("/var/lib/libvirt/qemu/domain-1-lab1/monitor.sock", tb.monitor_path)
        path = tmp_path / "lab1.xml"
        path.write_text(text)
        report = recover([path])
        # The file's disks are not this QEMU's: verification says so, the repair is done.
        assert not report.ok and report.domains[0].failed_checks
        assert [job.decision for job in report.domains[0].jobs] == [Decision.INVALID] * 2
        doc = assert_file_sound(path)
        assert doc.jobs == []
        assert "job=''" not in path.read_text() and "<mirror" not in path.read_text()
        recover([path])
        assert path.read_text() == doc.dumps().decode()


def _refuse_writes_to_base(tb: Lab, target: str = "vda") -> None:
    """Reopen the storage node of disk `target`'s base read-only for good (no
    auto-read-only): QEMU then refuses base's read-write reopen."""
    base = base_image(tb, target)
    with tb.connect() as monitor:
        monitor.blockdev_reopen([{"driver": "file", "node-name": base.storage_node,
                                  "filename": base.path, "read-only": True,
                                  "auto-read-only": False}])


def test_qmp_error_needs_attention_and_keeps_the_job_for_a_rerun(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        _refuse_writes_to_base(tb)
        report = recover([tb.status_path])
        assert not report.ok and report.domains[0].status == "attention"
        job = report.domains[0].jobs[0]
        assert job.done == 1 and job.error is not None and job.error.startswith("blockdev-reopen")
        kept = assert_file_sound(tb.status_path).job(JOB)
        assert kept is not None and kept.newstate == "completed"
        with tb.connect() as monitor:
            assert job_status(monitor) == "concluded"
            assert monitor.query_nodes()[BASE].read_only


def test_job_that_ignores_cancel_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("blockjob.recovery.execute.CANCEL_WAIT_SECONDS", 0.0)
    with started(tmp_path) as tb:
        commit(tb, speed=CRAWL)
        text = tb.status_path.read_text()
        tb.status_path.write_text(text.replace("type='commit'", "type='bogus'"))
        report = recover([tb.status_path])
        job = report.domains[0].jobs[0]
        assert not report.ok and job.decision == Decision.INVALID
        assert job.problems == [f"job '{JOB}' did not conclude within 0 s of job-cancel"]


class RefusingMonitor(Monitor):
    """A real monitor whose `transaction` QEMU refuses."""

    def transaction(self, actions: Sequence[Mapping[str, object]]) -> None:
        raise QMPCommandError("transaction", "GenericError", "refused for the test")


def test_refused_disable_leaves_base_read_only_and_no_job(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        with RefusingMonitor.connect(tb.monitor_path) as monitor, \
                pytest.raises(CommitError, match="refused for the test"), \
                StatusStore(tmp_path).owned(tb.name) as owner:
            start_commit(owner, "vda", MID, BASE, monitor=monitor)
        assert assert_file_sound(tb.status_path).jobs == []
        bitmaps = base_bitmaps(tb)
        assert bitmaps["chk0"].recording and bitmaps["chk1"].recording
        with tb.connect() as monitor:
            assert monitor.query_nodes()[BASE].read_only
            assert job_status(monitor) is None


def test_bitmaps_made_inconsistent_by_a_qemu_crash_are_reported_on_every_run(
    tmp_path: Path,
) -> None:
    """QEMU killed mid-commit leaves base's bitmaps in-use on disk: they can only be
    removed, so recovery keeps reporting them until an operator acknowledges them."""
    with started(tmp_path) as tb:
        commit(tb, speed=CRAWL)
        crash_qemu_and_restart(tb)
        assert base_bitmaps(tb)["chk1"].inconsistent
        expected = [
            "bitmap 'chk1' in libvirt-3-format is inconsistent; it can only be removed",
            "bitmap 'chk0' in libvirt-3-format is inconsistent; it can only be removed",
        ]
        first = recover([tb.status_path])
        assert not first.ok and first.domains[0].jobs[0].decision == Decision.VANISHED
        assert first.domains[0].jobs[0].problems == expected
        kept = assert_file_sound(tb.status_path).job(JOB)
        assert kept is not None and kept.disabled_base_bitmaps == ("chk1", "chk0")
        for _ in range(2):  # never forgotten
            again = recover([tb.status_path])
            assert not again.ok and again.domains[0].jobs[0].decision == "unresolved-bitmaps"
            assert again.domains[0].jobs[0].problems == expected
        assert_chain(assert_file_sound(tb.status_path), TOP, MID, BASE)
        done = recover([tb.status_path], acknowledge=True)
        assert done.ok and done.domains[0].jobs[0].acknowledged == expected
        assert assert_file_sound(tb.status_path).jobs == []
        assert recover([tb.status_path]).ok


def test_missing_bitmap_after_a_completed_commit_is_reported_on_every_run(
    tmp_path: Path,
) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        with tb.connect() as monitor:  # someone removed a listed bitmap meanwhile
            transaction_on(monitor, base_image(tb), [{
                "type": "block-dirty-bitmap-remove", "data": {"node": BASE, "name": "chk0"}}],
                discard=None)
        problem = "bitmap 'chk0' is gone from libvirt-3-format; nothing to re-enable"
        for decision in ("finish-completed", "unresolved-bitmaps", "unresolved-bitmaps"):
            report = recover([tb.status_path])
            job = report.domains[0].jobs[0]
            assert not report.ok and (job.decision, job.problems) == (decision, [problem])
            assert_chain(assert_file_sound(tb.status_path), TOP, BASE)
        with tb.connect() as monitor:
            assert monitor.query_jobs() == {} and MID not in monitor.query_nodes()
            assert monitor.query_nodes()[BASE].read_only
        assert {n for n, b in base_bitmaps(tb).items() if b.recording} == {"chk1", "chk2"}


def test_a_listed_bitmap_the_merge_makes_anew_is_not_kept_as_unresolved(
    tmp_path: Path,
) -> None:
    """chk1, listed, was removed from base meanwhile; mid has a copy of it, so the merge
    adds it to base again, recording. It is not unusable: the first run drops the job (it
    kept a record listing chk1 and exited 0, and the next run changed the file)."""
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        with tb.connect() as monitor:
            transaction_on(monitor, base_image(tb), [{
                "type": "block-dirty-bitmap-remove", "data": {"node": BASE, "name": "chk1"}}],
                discard=None)
        report = recover([tb.status_path])
        assert report.ok and [j.decision for j in report.domains[0].jobs] == ["finish-completed"]
        assert not assert_file_sound(tb.status_path).jobs
        assert base_bitmaps(tb)["chk1"].recording
        before = tb.status_path.read_bytes()
        assert recover([tb.status_path]).ok and tb.status_path.read_bytes() == before


def test_a_node_of_a_running_jobs_disk_missing_in_qemu_fails_the_check(
    tmp_path: Path,
) -> None:
    """The file names mid by a node QEMU does not have, on a disk whose ready active
    commit is adopted: the daemon would address that node when the job ends. The run
    said ok (a disk with a job had no check at all)."""
    with started(tmp_path) as tb:
        with StatusStore(tmp_path).owned(tb.name) as owner:
            job = start_commit(owner, "vda", TOP, BASE)
        with tb.connect() as monitor:
            wait_until(lambda: job_status(monitor, job.name) == "ready", "ready")
        text = tb.status_path.read_text()
        tb.status_path.write_text(text.replace(f"name='{MID}'", "name='libvirt-20-format'"))
        report = recover([tb.status_path])
        assert not report.ok and report.domains[0].jobs[0].decision == Decision.ADOPT
        assert report.domains[0].failed_checks == [
            "disk vda: node libvirt-20-format of the file's chain is not in QEMU's graph"]


def test_stale_mirror_left_by_libvirt_is_removed(tmp_path: Path) -> None:
    """libvirt 9.0 leaves `<mirror job=''>` after cancelling a broken active commit."""
    with started(tmp_path) as tb:
        text = tb.status_path.read_text()
        stale = text.replace("<target dev='vda'", "<mirror type='file' job=''>\n"
                             "          <format type='qcow2'/>\n        </mirror>\n"
                             "        <target dev='vda'")
        tb.status_path.write_text(stale)
        dry = recover([tb.status_path], dry_run=True)
        assert dry.domains[0].jobs[0].decision == "stale-mirror"
        assert tb.status_path.read_text() == stale
        report = recover([tb.status_path])
        assert report.ok, report.domains[0].lines()
        assert tb.status_path.read_text() == text
        assert recover([tb.status_path]).ok


@pytest.mark.parametrize("legacy", [False, True])
def test_a_copy_mirror_no_job_owns_goes_unless_qemu_runs_an_unrecorded_mirror(
    tmp_path: Path, legacy: bool
) -> None:
    """vdb keeps a `<mirror job='copy'>` no job of the file owns while vda's recorded
    commit runs: that commit cannot own it, so it goes (it stayed, and the run said ok).
    A mirror job QEMU runs that the file does not record may be its legacy copy: kept."""
    with started(tmp_path, second_disk=True) as tb:
        commit(tb, speed=CRAWL)
        if legacy:
            with tb.connect() as monitor:
                add_image(monitor, tb, "legacy", 9, None)
                monitor.execute("blockdev-mirror", {
                    "job-id": "drive-vdb", "device": "libvirt-4-format",
                    "target": "libvirt-9-format", "sync": "top", "speed": CRAWL})
        text = tb.status_path.read_text()
        mirror = ("<mirror type='file' file='/x.qcow2' format='qcow2' job='copy'>"
                  "<format type='qcow2'/><source file='/x.qcow2'/></mirror>\n        ")
        stale = text.replace("<target dev='vdb'", mirror + "<target dev='vdb'")
        tb.status_path.write_text(stale)
        report = recover([tb.status_path])
        assert report.ok, report.domains[0].lines()
        decisions = [job.decision for job in report.domains[0].jobs]
        assert decisions == ["adopt"] + ([] if legacy else ["stale-mirror"])
        assert tb.status_path.read_text() == (stale if legacy else text)


def test_a_failed_check_keeps_the_ended_job_until_the_state_is_right(tmp_path: Path) -> None:
    disks = [DiskSpec("vda", scenario.chain()), DiskSpec("vdb", scenario.chain())]
    with Lab(tmp_path, disks) as tb:
        commit(tb)
        wait_concluded(tb)
        # The file's vda names a node QEMU does not have: its chain is not QEMU's.
        good, bad = "name='libvirt-1-format'", "name='libvirt-11-format'"
        tb.status_path.write_text(tb.status_path.read_text().replace(good, bad))
        for _ in range(2):  # every run says so, and keeps the job it could not verify
            report = recover([tb.status_path])
            assert not report.ok
            assert any("libvirt-11-format" in check for check in report.domains[0].failed_checks)
            assert report.domains[0].jobs[0].done < len(report.domains[0].jobs[0].steps)
            kept = blockjob.load(tb.status_path).job(JOB)
            assert kept is not None and kept.newstate == JobState.COMPLETED
        tb.status_path.write_text(tb.status_path.read_text().replace(bad, good))
        assert recover_ok(tb) == [Decision.COMPLETED]
        assert_completed(tb)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_peer_with_replies_of_another_shape_spoils_only_its_domain(
    tmp_path: Path, jobs: int
) -> None:
    with started(tmp_path / "good") as tb:
        commit(tb)
        wait_concluded(tb)
        other = tmp_path / "lab2.xml"
        with peer(tmp_path, {"query-jobs": answer({})}) as server:
            text = tb.status_path.read_text().replace("<name>lab1</name>", "<name>lab2</name>")
            other.write_text(text.replace(tb.monitor_path, str(server.server.getsockname())))
            before = other.read_bytes()
            report = recover([other, tb.status_path], jobs=jobs)
        bad, good = report.domains
        assert bad.status == "attention" and bad.jobs[0].error is not None
        assert "unexpected reply to query-jobs: expected a list" in bad.jobs[0].error
        assert other.read_bytes() == before
        assert good.status == "reconciled"
        assert_completed(tb)


def test_a_job_that_fails_does_not_hold_back_the_others(tmp_path: Path) -> None:
    disks = [DiskSpec("vda", scenario.chain()), DiskSpec("vdb", scenario.chain())]
    other = "commit-vdb-libvirt-5-format"
    with Lab(tmp_path, disks) as tb:
        commit(tb)
        with StatusStore(tb.directory).owned(tb.name) as owner:
            start_commit(owner, "vdb", "libvirt-5-format", "libvirt-6-format")
        wait_concluded(tb)
        wait_concluded(tb, other)
        _refuse_writes_to_base(tb)  # vda's
        report = recover([tb.status_path])
        failed, finished = report.domains[0].jobs
        assert failed.error is not None and failed.error.startswith("blockdev-reopen")
        assert finished.error is None and finished.done == len(finished.steps)
        assert report.domains[0].failed_checks == []
        assert [job.name for job in blockjob.load(tb.status_path).jobs] == [JOB]


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_image_above_the_files_top_is_found(tmp_path: Path, dry_run: bool) -> None:
    disks = [DiskSpec("vda", scenario.chain()), DiskSpec("vdb", scenario.chain())]
    with Lab(tmp_path, disks) as tb:
        commit(tb, speed=CRAWL)  # a running job: recovery connects, and adopts it
        doc = blockjob.load(tb.status_path)
        disk = doc.disk("vdb")
        assert disk is not None and disk.chain is not None and disk.chain.backing is not None
        doc.set_disk_chain("vdb", disk.chain.backing)  # the file forgets vdb's top image
        StatusStore(tb.directory).save(doc)
        report = recover([tb.status_path], dry_run=dry_run)
        assert not report.ok and report.domains[0].failed_checks == [
            "disk vdb: libvirt-4-format is backed by libvirt-5-format in QEMU, the file "
            "says libvirt-5-format is the top"]


def _relayed(qemu: Monitor, commands: Iterable[str],
             jobs: Callable[[list[Any]], list[Any]] = list) -> dict[str, Script]:
    """A peer's scripts that pass each of `commands` on to QEMU and its reply back; the
    reply to `query-jobs` through `jobs`."""
    def relay(request: dict[str, Any]) -> list[bytes]:
        found = qemu.execute(request["execute"], request.get("arguments"))
        return list(answer(jobs(found) if request["execute"] == "query-jobs" else found)(
            request))

    return dict.fromkeys(commands, relay)


def _through(tb: Lab, server: Peer) -> None:
    """Point the domain's status file at `server` instead of its QEMU."""
    text = tb.status_path.read_text()
    tb.status_path.write_text(text.replace(tb.monitor_path, str(server.server.getsockname())))


_OBSERVE = ["query-jobs", "query-named-block-nodes", "x-debug-query-block-graph", "query-block"]


def test_a_concluded_commit_is_finished_and_verified_after_its_last_step(
    tmp_path: Path,
) -> None:
    """What QEMU is sent: the plan's look at the jobs (the job seen concluded needs no
    second one before its job-dismiss), the steps, then verification's observation, all
    of it asked at once after the last step."""
    steps = ["query-named-block-nodes", "x-debug-query-block-graph", "blockdev-reopen",
             "transaction", "blockdev-reopen", "job-dismiss", "x-debug-query-block-graph",
             "blockdev-del", "blockdev-del"]
    with started(tmp_path / "qemu") as tb:
        commit(tb)
        wait_concluded(tb)
        with tb.connect() as qemu, peer(tmp_path, _relayed(qemu, {*steps, *_OBSERVE})) as server:
            _through(tb, server)
            seen: list[str] = []
            report = recover([tb.status_path], probe=lambda when, what: seen.append(
                f"{when} {what}"))
            assert report.ok, report.domains[0].lines()
        assert server.commands[1:] == ["query-jobs", *steps, *_OBSERVE]
        assert seen[-10:-2] == [f"{when} {command}" for when in ("before", "after")
                                for command in _OBSERVE]
        assert seen[-2:] == ["before save", "after save"]
        assert_completed(tb)


@pytest.mark.parametrize("discard", [None, "unmap"], ids=["no-discard", "discard-unmap"])
def test_bases_reopens_repeat_the_disks_discard_and_else_are_sent_as_before(
    tmp_path: Path, discard: str | None,
) -> None:
    """QEMU does not report a node's discard mode: base's reopens take it from the disk's
    `<driver discard>`, as libvirt does. A base with QEMU's defaults on a disk without it
    gets the very command it got before the reopens kept options."""
    sent: list[list[tuple[str, object]]] = []
    with started(tmp_path / "qemu") as tb:
        commit(tb)
        wait_concluded(tb)
        if discard is not None:
            text = tb.status_path.read_text()
            tb.status_path.write_text(text.replace(
                "type='qcow2'/>", f"type='qcow2' discard='{discard}'/>", 1))
        with tb.connect() as qemu:
            scripts = _relayed(qemu, {"query-named-block-nodes", "x-debug-query-block-graph",
                                      "blockdev-reopen", "transaction", "job-dismiss",
                                      "blockdev-del", *_OBSERVE})
            relay = scripts["blockdev-reopen"]

            def reopen(request: dict[str, Any]) -> Iterable[bytes]:
                sent.extend(list(options.items()) for options in request["arguments"]["options"])
                return relay(request)

            with peer(tmp_path, {**scripts, "blockdev-reopen": reopen}) as server:
                _through(tb, server)
                assert recover([tb.status_path]).ok
    kept = [("discard", "unmap")] if discard is not None else []
    assert sent == [[("node-name", BASE), ("driver", "qcow2"), ("file", "libvirt-3-storage"),
                     ("read-only", read_only), ("backing", None), *kept]
                    for read_only in (False, True)]


def test_a_job_qemu_lost_after_the_plan_looked_fails_the_check(tmp_path: Path) -> None:
    """Verification's jobs come from its own observation, asked with the graph after the
    last step, not from what the plan saw: a running commit adopted, then gone from what
    QEMU says, is a failed check."""
    looks: list[int] = []

    def gone_after_the_plan(found: list[Any]) -> list[Any]:
        looks.append(1)
        return found if len(looks) == 1 else []

    with started(tmp_path / "qemu") as tb:
        commit(tb, speed=CRAWL)
        with tb.connect() as qemu, \
                peer(tmp_path, _relayed(qemu, _OBSERVE, gone_after_the_plan)) as server:
            _through(tb, server)
            report = recover([tb.status_path])
        assert server.commands[1:] == ["query-jobs", *_OBSERVE]
        assert report.domains[0].jobs[0].decision == Decision.ADOPT
        assert not report.ok and report.domains[0].failed_checks == [
            f"job '{JOB}' is recorded but QEMU does not know it"]


def test_a_job_an_io_error_paused_is_adopted_and_reported(tmp_path: Path) -> None:
    """QEMU pauses a job started with `on-error: stop` on an I/O error; `query-jobs` says
    only `paused`, and libvirt 9.0 records it running. recover adopted it and said ok
    while the job makes no progress until someone resumes or aborts it."""
    with started(tmp_path, fail_commit=True) as tb:
        doc = blockjob.load(tb.status_path)
        doc.add_job(BlockJob(JOB, JobType.COMMIT, JobState.RUNNING, jobflags=0, disk="vda",
                             data=CommitData(base="libvirt-3-storage", top="libvirt-2-storage",
                                             topparent="libvirt-1-storage")))
        StatusStore(tb.directory).save(doc)
        with tb.connect() as monitor:
            monitor.execute("block-commit", {"job-id": JOB, "device": TOP, "top-node": MID,
                                             "base-node": BASE, "on-error": "stop",
                                             "auto-dismiss": False})
            wait_until(lambda: job_status(monitor) == "paused", "paused by the error")
        before = tb.status_path.read_bytes()
        report = recover([tb.status_path])
        [job] = report.domains[0].jobs
        assert (job.decision, job.qemu_status) == (Decision.ADOPT, "paused")
        assert job.problems == [f"job '{JOB}' is paused by an I/O error (io-status failed): "
                                f"it makes no progress until it is resumed (job-resume) or "
                                f"aborted"]
        assert not report.ok and tb.status_path.read_bytes() == before
