"""Recovery of many domains when the system runs short or files go away (no QEMU needed).

Out of descriptors while a status file is read, the file is not at fault: the domain needs
attention (exit 1, try again), it is never refused as unusable (exit 2) nor quarantined,
and a later run recovers it. A named file gone by the time of the run is reported, and the
other domains are recovered. Fleets of real QEMUs: test_recovery_scale_qemu.py."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from blockjob.cli import main
from blockjob.recovery import recover
from blockjob.store.status_store import StatusStore
from tests.test_store_support import status_bytes


def _descriptors_run_out_for(name: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every `open` of a file called `name` fails with EMFILE, as in a process at its
    RLIMIT_NOFILE; the paths refused."""
    refused: list[str] = []
    real_open: Callable[..., int] = os.open

    def open_(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        if os.path.basename(os.fspath(path)) == name:
            refused.append(os.fspath(path))
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    return refused


def test_a_status_file_unread_for_lack_of_descriptors_needs_attention_not_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was reported as an unusable file (exit 2, its error on stderr as a bad input's).
    (tmp_path / "vm1.xml").write_bytes(status_bytes("vm1"))
    (tmp_path / "vm2.xml").write_bytes(status_bytes("vm2"))
    with monkeypatch.context() as patch:
        _descriptors_run_out_for("vm1.xml", patch)
        report = recover([tmp_path / "vm1.xml", tmp_path / "vm2.xml"], jobs=2)
        code = main(["recover", str(tmp_path / "vm1.xml"), str(tmp_path / "vm2.xml")])
    first, second = report.domains
    assert (first.status, first.unusable) == ("attention", False)
    assert first.error == f"{tmp_path / 'vm1.xml'}: cannot open: Too many open files"
    assert second.status == "reconciled"
    assert code == 1
    out, err = capsys.readouterr()
    assert "vm1.xml): attention:" in out and "Too many open files" in out
    assert err == ""
    assert recover([tmp_path / "vm1.xml"]).domains[0].status == "reconciled"


def test_a_scan_short_of_descriptors_leaves_the_file_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file that failed for lack of descriptors, read and read again under its lock,
    # was quarantined as if it were broken.
    (tmp_path / "vm1.xml").write_bytes(status_bytes("vm1"))
    (tmp_path / "vm2.xml").write_bytes(status_bytes("vm2"))
    with monkeypatch.context() as patch:
        refused = _descriptors_run_out_for("vm1.xml", patch)
        scan = StatusStore(tmp_path).scan()
    assert len(refused) == 2, "read, then read again under the lock"
    assert scan.domains == ["vm2"]
    [failure] = scan.failures
    assert failure.quarantined is None
    assert failure.reason == "left in place: cannot open: Too many open files"
    assert not (tmp_path / "quarantine").exists()
    assert StatusStore(tmp_path).scan().domains == ["vm1", "vm2"]


def test_a_named_file_gone_before_the_run_is_reported_and_the_others_recovered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A domain that shut down between the listing of the files and the run (libvirt
    # removes its file) stopped the whole run: no domain was recovered.
    for name in ("vm1", "vm3"):
        (tmp_path / f"{name}.xml").write_bytes(status_bytes(name))
    paths = [str(tmp_path / f"{name}.xml") for name in ("vm1", "vm2", "vm3")]
    report = recover(paths, jobs=2)
    assert [(d.file, d.status, d.unusable) for d in report.domains] == [
        (paths[0], "reconciled", False), (paths[1], "attention", True),
        (paths[2], "reconciled", False)]
    assert report.domains[1].error == f"{paths[1]}:0: cannot open: No such file or directory"
    assert main(["recover", *paths]) == 2
    out, err = capsys.readouterr()
    assert err == f"{paths[1]}:0: cannot open: No such file or directory\n"
    assert "vm1 (" in out and "vm3 (" in out


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_directory_whose_file_is_unread_for_lack_of_descriptors_needs_attention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    dry_run: bool,
) -> None:
    # The scan left the file in place, but recover reported it unusable (exit 2) as a
    # broken file, where a named one needed attention (exit 1).
    (tmp_path / "vm1.xml").write_bytes(status_bytes("vm1"))
    (tmp_path / "vm2.xml").write_bytes(status_bytes("vm2"))
    dry = ["--dry-run"] if dry_run else []
    with monkeypatch.context() as patch:
        _descriptors_run_out_for("vm1.xml", patch)
        report = recover([tmp_path], dry_run=dry_run)
        code = main(["recover", *dry, str(tmp_path)])
    first, second = report.domains
    assert (first.file, first.status, first.unusable) == (
        str(tmp_path / "vm1.xml"), "attention", False)
    assert "Too many open files" in (first.error or "")
    assert second.status == ("planned" if dry_run else "reconciled")
    assert code == 1
    assert capsys.readouterr().err == ""
    assert (tmp_path / "vm1.xml").read_bytes() == status_bytes("vm1")
    assert recover([tmp_path]).ok
