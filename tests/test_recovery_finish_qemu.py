"""libvirt 9.0's newest finishing steps against a real QEMU, in hostile company. A pull
backup that ended while the daemon was away: the job's NBD export goes, and the server
only once nothing else is served from it (a second job of the backup still running, or
an export the backup never made). A commit made with `--delete`: a committed file that
another node of QEMU still has open stays. A create job: its storage node goes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import blockjob
from blockjob.demo.lab import Lab
from blockjob.recovery import recover
from tests.support.finish_lab import (
    FLOWS,
    PUSH_BITMAP,
    TWO_DISKS,
    add_image,
    backup_job,
    backup_pull,
    backup_push,
    cancel,
    create,
    create_job,
    delete_committed,
    exports,
    record_pull,
    scratch_node,
    start_pull,
)
from tests.support.qemu_fixtures import (
    BASE,
    CRAWL,
    QEMU_MARKS,
    TOP,
    image_path,
    job_status,
    node_states,
    started,
    wait_concluded,
    wait_until,
)

pytestmark = QEMU_MARKS
VDA = backup_job("vda", 1)


def test_an_export_the_backup_never_made_keeps_the_nbd_server(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        backup_pull(tb, shared=True)
        report = recover([tb.status_path])
        assert report.ok, report
        with tb.connect() as monitor:  # a fresh look
            assert exports(monitor) == {"other": BASE}
            assert scratch_node(9) not in monitor.node_names()
            assert VDA not in monitor.query_jobs()
        doc = blockjob.load(tb.status_path)
        assert not doc.jobs and b"<backups>" not in doc.dumps()


def test_a_backup_job_still_running_keeps_its_export_and_the_backup(tmp_path: Path) -> None:
    # vda's job completed (a full copy into its scratch image): libvirt cancels the rest
    # of a backup only after a failed or cancelled job (see the test below).
    with started(tmp_path, second_disk=True) as tb:
        with tb.connect() as monitor:
            vda = start_pull(monitor, tb, "vda", 1, 9, sync="full")
            vdb = start_pull(monitor, tb, "vdb", 4, 10)
        record_pull(tb, [("vda", 1, vda, 9), ("vdb", 4, vdb, 10)])
        wait_concluded(tb, VDA)
        report = recover([tb.status_path])
        assert report.ok, report
        with tb.connect() as monitor:
            assert exports(monitor) == {"vdb": scratch_node(10)}
            assert scratch_node(9) not in monitor.node_names()
            assert monitor.query_jobs()[backup_job("vdb", 4)].status == "running"
        doc = blockjob.load(tb.status_path)
        assert [job.name for job in doc.jobs] == [backup_job("vdb", 4)]
        assert b"<backups>" in doc.dumps() and b"async='backup'" in doc.dumps()
        # As libvirt records a job's end: a restarted libvirt ends the backup only once
        # no disk of it says running (seen in ../shared/libvirt-lab: it kept it forever).
        assert re.findall(rb"<disk name='(vd.)' backup='yes' state='(\w+)'", doc.dumps()) == [
            (b"vda", b"complete"), (b"vdb", b"running")]
        assert vda.exists(), "deleted before the backup ended"
        # The backup's last job ends: the server goes, and the backup with it.
        cancel(tb, backup_job("vdb", 4))
        assert recover([tb.status_path]).ok
        with tb.connect() as monitor:
            assert exports(monitor) == {}
            assert {scratch_node(9), scratch_node(10)}.isdisjoint(monitor.node_names())
        assert b"<backups>" not in tb.status_path.read_bytes()
        # libvirt 9.0 deletes a pull backup's scratch files once it ended.
        assert not vda.exists() and not vdb.exists()


def test_a_committed_file_another_node_has_open_is_not_deleted(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        mid, base = image_path(tb, "vda", "mid"), image_path(tb, "vda", "base")
        delete_committed(tb)
        with tb.connect() as monitor:  # someone else's read-only node of the same file
            monitor.execute("blockdev-add", {"driver": "file", "node-name": "other",
                                             "filename": str(mid), "read-only": True})
        report = recover([tb.status_path])
        (job,) = report.domains[0].jobs
        assert job.problems == [f"committed image {mid} is still open in QEMU for another "
                                f"node: not deleted"]
        assert mid.exists() and base.exists()
        with tb.connect() as monitor:
            monitor.blockdev_del("other")
        assert recover([tb.status_path]).ok  # the job is gone: nothing more is deleted
        assert mid.exists()


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_a_dry_run_changes_nothing_and_is_ok(tmp_path: Path, flow: str) -> None:
    """Nothing in QEMU, the file or the directory (a commit's files to delete stay); a
    concluded pull is no attention either (the graph is not asked before its dismiss)."""
    with started(tmp_path, devices=True, second_disk=flow in TWO_DISKS) as tb:
        FLOWS[flow](tb)
        before = _everything(tb)
        report = recover([tb.status_path], dry_run=True)
        assert report.ok, report
        assert _everything(tb) == before


def _everything(tb: Lab) -> tuple[object, ...]:
    with tb.connect() as monitor:
        jobs = {name: job.status for name, job in monitor.query_jobs().items()}
        # Asked only once no concluded stream job is left undismissed.
        graph = node_states(monitor) if "concluded" not in jobs.values() else None
        served = exports(monitor)
    files = sorted(str(path) for path in tb.directory.rglob("*"))
    return tb.status_path.read_bytes(), jobs, graph, served, files


def test_a_push_backups_bitmap_already_gone_is_no_problem(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        backup_push(tb)
        with tb.connect() as monitor:  # removed by someone else first
            monitor.execute("block-dirty-bitmap-remove", {"node": TOP, "name": PUSH_BITMAP})
        report = recover([tb.status_path])
        assert report.ok, report
        with tb.connect() as monitor:
            assert monitor.query_nodes()[TOP].bitmap(PUSH_BITMAP) is None
            assert scratch_node(9) not in monitor.node_names()
        assert b"<backups>" not in tb.status_path.read_bytes()


@pytest.mark.parametrize(("size", "outcome"), [(16 << 20, "completed"), (1000, "failed")])
def test_a_concluded_create_job_detaches_the_storage_it_formatted(
    tmp_path: Path, size: int, outcome: str
) -> None:
    """libvirt 9.0 blockdev-dels the storage node of a create job its caller no longer
    waits for, whether the format's creation succeeded or not; the file stays. Recovery
    only dismissed the job, and QEMU kept the new file open for no one."""
    with started(tmp_path) as tb:
        path = create(tb, size=size)
        report = recover([tb.status_path])
        assert report.ok, report
        (job,) = report.domains[0].jobs
        assert job.steps[-2:] == ["blockdev-del libvirt-9-storage (format node, then "
                                  "storage node)", f"drop job {create_job('libvirt-9-format')}"]
        assert f"newstate={outcome}" in job.steps[0]
        with tb.connect() as monitor:  # a fresh look
            assert "libvirt-9-storage" not in monitor.node_names()
            assert monitor.query_jobs() == {}
        assert path.exists() and not blockjob.load(tb.status_path).jobs


def test_a_concluded_storage_create_job_has_no_node_to_detach(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        before = node_states_of(tb)
        path = create(tb, storage_only=True)
        report = recover([tb.status_path])
        assert report.ok, report
        assert not any("blockdev-del" in step for step in report.domains[0].jobs[0].steps)
        assert node_states_of(tb) == before
        assert path.exists() and not blockjob.load(tb.status_path).jobs


def node_states_of(tb: Lab) -> object:
    with tb.connect() as monitor:
        return node_states(monitor), monitor.query_jobs()


@pytest.mark.parametrize("ended", ["vda", "vdb"])  # the job first, or second, in the file
def test_a_backups_running_job_is_cancelled_with_its_failed_sibling(
    tmp_path: Path, ended: str
) -> None:
    """libvirt 9.0 cancels the jobs of a backup still running once one of them failed or
    was cancelled, and the backup ends with the last (seen in ../shared/libvirt-lab).
    Recovery adopted the running one: the backup never ended, and libvirt waited for the
    job that ended, whose disk <backups> still said running."""
    with started(tmp_path, second_disk=True) as tb:
        with tb.connect() as monitor:
            vda = start_pull(monitor, tb, "vda", 1, 9)
            vdb = start_pull(monitor, tb, "vdb", 4, 10)
        record_pull(tb, [("vda", 1, vda, 9), ("vdb", 4, vdb, 10)])
        cancel(tb, backup_job(ended, 1 if ended == "vda" else 4))
        report = recover([tb.status_path])
        assert report.ok, report
        running = backup_job(*(("vdb", 4) if ended == "vda" else ("vda", 1)))
        (job,) = [job for job in report.domains[0].jobs if job.job == running]
        assert job.steps[:2] == ["record state=aborting",
                                 f"job-cancel {running} and wait for it to conclude"]
        assert job.decision == "finish-failed"
        with tb.connect() as monitor:  # a fresh look
            assert monitor.query_jobs() == {} and exports(monitor) == {}
            assert {scratch_node(9), scratch_node(10)}.isdisjoint(monitor.node_names())
        text = tb.status_path.read_bytes()
        assert b"<backups>" not in text and b"async='backup'" not in text
        assert not blockjob.load(tb.status_path).jobs


def test_an_abort_of_a_backup_job_waiting_for_its_transaction_is_asked_again(
    tmp_path: Path,
) -> None:
    """A job of a grouped transaction that is done waits (`waiting`) for the others. An
    abort recorded and never sent was adopted, and libvirt 9.0 refuses to abort an
    `aborting` job again: QEMU takes a job-cancel in `waiting`, so recover asks it, and
    the transaction ends cancelled as a whole."""
    with started(tmp_path, second_disk=True) as tb:
        with tb.connect() as monitor:
            vda = add_image(monitor, tb, "vda.copy", 9, None)
            vdb = add_image(monitor, tb, "vdb.copy", 10, None)
            monitor.execute("transaction", {
                "actions": [{"type": "blockdev-backup", "data": {
                    "job-id": backup_job(target, top), "device": f"libvirt-{top}-format",
                    "target": scratch_node(index), "sync": "full", "auto-dismiss": False,
                    "speed": speed}} for target, top, index, speed in (
                        ("vda", 1, 9, 0), ("vdb", 4, 10, CRAWL))],
                "properties": {"completion-mode": "grouped"}})
            waiting = backup_job("vda", 1)
            wait_until(lambda: job_status(monitor, waiting) == "waiting", "vda's job waits")
        record_pull(tb, [("vda", 1, vda, 9), ("vdb", 4, vdb, 10)])
        text = tb.status_path.read_text()
        tb.status_path.write_text(text.replace(f"name='{waiting}' type='backup' state='running'",
                                               f"name='{waiting}' type='backup' state='aborting'"))
        report = recover([tb.status_path])
        assert report.ok, report
        job = report.domains[0].jobs[0]
        assert job.job == waiting
        assert job.steps[0] == f"job-cancel {waiting} and wait for it to conclude"
        assert [job.decision for job in report.domains[0].jobs] == ["finish-failed"] * 2
        with tb.connect() as monitor:
            assert monitor.query_jobs() == {}
        assert not blockjob.load(tb.status_path).jobs
