"""A commit made with `--delete` (`<deleteCommittedImages/>`) that ended while the daemon
was away: recovery deletes the committed image files once they left QEMU, as libvirt 9.0
does (seen in its lab: `virsh blockcommit --delete`, libvirtd killed, the commit finished
by `blockjob recover` left vda-mid.qcow2 behind)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from blockjob.element import Node
from blockjob.model import StorageSource
from blockjob.recovery import plan_job
from blockjob.recovery.execute import Context, run_step
from blockjob.recovery.steps import DeleteFiles, describe
from tests.test_recovery_plan import COMMIT, document, kinds, qemu


def _image(path: Path, kind: str = "file") -> StorageSource:
    return StorageSource(kind, "qcow2", Node("source", (("file", str(path)),), ()))


def test_commit_with_delete_removes_the_committed_files_after_their_nodes() -> None:
    data = COMMIT.commit
    assert data is not None
    job = replace(COMMIT, data=replace(data, delete_committed_images=True))
    plan = plan_job(document(job), job, qemu("concluded"))
    assert kinds(plan.steps) == ["Record", "MergeBitmaps", "Dismiss", "DeleteNodes",
                                 "DeleteFiles", "Drop"]
    files = plan.steps[4]
    assert isinstance(files, DeleteFiles)
    assert [image.path for image in files.images] == ["/img/mid.qcow2"]
    assert describe(files) == "delete the committed image files /img/mid.qcow2"
    assert "DeleteFiles" not in kinds(plan_job(document(), COMMIT, qemu("concluded")).steps)


def test_deleting_files_skips_gone_and_non_local_ones_and_reports_failures(
    tmp_path: Path,
) -> None:
    present, gone, busy = tmp_path / "mid.qcow2", tmp_path / "gone.qcow2", tmp_path / "dir"
    present.write_bytes(b"image")
    busy.mkdir()
    network = _image(tmp_path / "net.qcow2", kind="network")
    (tmp_path / "net.qcow2").write_bytes(b"remote")
    ctx = Context(document(), None, None)  # type: ignore[arg-type]
    run_step(ctx, DeleteFiles((_image(present), _image(gone), _image(busy), network)))
    assert not present.exists() and busy.is_dir() and (tmp_path / "net.qcow2").exists()
    assert [problem.split(":")[0] for problem in ctx.problems] == [
        f"committed image {busy} could not be deleted"]
