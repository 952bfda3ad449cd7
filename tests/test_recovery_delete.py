"""A commit made with `--delete` (`<deleteCommittedImages/>`) that ended while the daemon
was away: recovery deletes the committed image files once they left QEMU, as libvirt 9.0
does (seen in its lab: `virsh blockcommit --delete`, libvirtd killed, the commit finished
by `blockjob recover` left vda-mid.qcow2 behind)."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from blockjob.element import Node
from blockjob.model import StorageSource
from blockjob.qemu.monitor import BlockNode
from blockjob.recovery import plan_job
from blockjob.recovery.execute import Context, run_step
from blockjob.recovery.steps import DeleteFiles, describe
from tests.test_recovery_plan import COMMIT, document, kinds, qemu


def _image(path: Path | str, kind: str = "file") -> StorageSource:
    return StorageSource(kind, "qcow2", Node("source", (("file", str(path)),), ()))


class _Qemu:
    """A monitor whose nodes have `files` open (QEMU's `file` of each node)."""

    def __init__(self, *files: str) -> None:
        self.files = files

    def query_nodes(self) -> dict[str, BlockNode]:
        return {f"n{i}": BlockNode(f"n{i}", "qcow2", True, filename=name)
                for i, name in enumerate(self.files)}


def _deleted(*images: StorageSource, qemu: _Qemu | None = None) -> list[str]:
    """Run the DeleteFiles step; the problems it reported."""
    ctx = Context(document(), None, qemu or _Qemu())  # type: ignore[arg-type]
    run_step(ctx, DeleteFiles(images))
    return ctx.problems


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
    # What is said is what is deleted: a file without a path (it said "None") or on the
    # network is not.
    nothing = (StorageSource("file", "qcow2", Node("source", (), ())), _image("/n", "network"))
    assert describe(DeleteFiles(nothing)) == "delete the committed image files (none local)"


def test_deleting_files_skips_gone_and_non_local_ones_and_reports_failures(
    tmp_path: Path,
) -> None:
    present, gone, busy = tmp_path / "mid.qcow2", tmp_path / "gone.qcow2", tmp_path / "dir"
    present.write_bytes(b"image")
    busy.mkdir()
    network = _image(tmp_path / "net.qcow2", kind="network")
    (tmp_path / "net.qcow2").write_bytes(b"remote")
    problems = _deleted(_image(present), _image(gone), _image(busy), network)
    assert not present.exists() and busy.is_dir() and (tmp_path / "net.qcow2").exists()
    assert problems == [f"committed image {busy} is a directory, not an image: not deleted"]


def test_a_file_that_cannot_be_unlinked_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "mid.qcow2"
    image.write_bytes(b"image")

    def refused(path: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "unlink", refused)  # root unlinks in a read-only directory
    assert _deleted(_image(image)) == [
        f"committed image {image} could not be deleted: Permission denied"]


def test_a_relative_committed_path_is_never_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative to the recovering process's directory it would name some other file."""
    monkeypatch.chdir(tmp_path)
    Path("mid.qcow2").write_bytes(b"not the image")
    assert _deleted(_image("mid.qcow2")) == [
        "committed image mid.qcow2 is a relative path (relative to what is unknown): "
        "not deleted"]
    assert Path("mid.qcow2").exists()


def test_a_committed_path_that_is_a_symlink_loses_the_link_only(tmp_path: Path) -> None:
    outside = tmp_path / "outside.qcow2"
    outside.write_bytes(b"someone's image")
    link = tmp_path / "mid.qcow2"
    link.symlink_to(outside)
    assert _deleted(_image(link)) == []
    assert not link.is_symlink() and outside.read_bytes() == b"someone's image"


def test_a_committed_file_qemu_still_has_open_for_another_node_stays(tmp_path: Path) -> None:
    """The same file named by a node that did not leave (under another name too)."""
    shared = tmp_path / "mid.qcow2"
    shared.write_bytes(b"image")
    alias = tmp_path / "alias.qcow2"
    alias.symlink_to(shared)
    for name in (shared, alias):
        assert _deleted(_image(shared), qemu=_Qemu("json:{}", "/gone", str(name))) == [
            f"committed image {shared} is still open in QEMU for another node: not deleted"]
    assert shared.exists()


def test_a_committed_path_that_is_a_fifo_or_a_device_is_kept(tmp_path: Path) -> None:
    fifo, device = tmp_path / "mid.qcow2", tmp_path / "base.qcow2"
    os.mkfifo(fifo)
    try:  # a node of /dev/null's device, made where the test may lose it
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    assert _deleted(_image(fifo), _image(device)) == [
        f"committed image {path} is not a regular file, not an image: not deleted"
        for path in (fifo, device)]
    assert fifo.is_fifo() and device.is_char_device()
