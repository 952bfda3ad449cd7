"""`recover DIR` applies the store's directory rules, the same as `load_all` (README,
"Directory rules"): the same files refused for the same reasons, quarantined alike; a dry
run reports them and moves nothing."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from blockjob.cli import main
from blockjob.inputs import check_regular
from blockjob.recovery import recover, run
from blockjob.recovery.report import DomainReport
from blockjob.store.status_store import StatusStore
from tests.test_store_support import status_bytes


def _directory(root: Path) -> Path:
    """Good files without jobs (nothing for QEMU to do) beside every kind of refused one."""
    root.mkdir()
    (root / "vm1.xml").write_bytes(status_bytes("vm1"))
    (root / "vm2.xml").write_bytes(status_bytes("vm2"))
    (root / "vm1-copy.xml").write_bytes(status_bytes("vm1", "a second file of vm1"))
    (root / "vm3.xml").write_bytes(status_bytes("vm4"))  # misnamed
    (root / "empty.xml").write_bytes(b"")
    (root / "torn.xml").write_bytes(status_bytes("torn")[:60])
    (root / "text.xml").write_bytes(b"not xml at all\n")
    (root / "notes.txt").write_bytes(b"not a status file: never touched\n")
    os.mkfifo(root / "fifo.xml")
    return root


def _quarantined(root: Path) -> list[str]:
    folder = root / "quarantine"
    return sorted(name.split(".xml.")[0] for name in os.listdir(folder)) if folder.exists() else []


def test_recover_dir_refuses_and_quarantines_what_load_all_does(tmp_path: Path) -> None:
    ours = _directory(tmp_path / "recover")
    theirs = _directory(tmp_path / "load_all")

    report = recover([ours])
    loaded = StatusStore(theirs).load_all()

    refused = {Path(d.file).name for d in report.domains if d.unusable}
    assert refused == {f.path.name for f in loaded.failures}
    assert refused == {"vm1-copy.xml", "vm3.xml", "empty.xml", "torn.xml", "text.xml",
                       "fifo.xml"}
    assert [d.domain for d in report.domains if not d.unusable] == sorted(loaded.documents)
    assert all(d.status == "reconciled" for d in report.domains if not d.unusable)
    for failure in loaded.failures:  # the same reason, with the file and line
        [ours_report] = [d for d in report.domains if Path(d.file).name == failure.path.name]
        assert failure.reason in (ours_report.error or "")
        assert "moved to" in (ours_report.error or "")
    assert _quarantined(ours) == _quarantined(theirs) == sorted(
        name.removesuffix(".xml") for name in refused)
    assert (ours / "notes.txt").exists()


def test_a_dry_run_reports_the_same_files_and_moves_nothing(tmp_path: Path) -> None:
    root = _directory(tmp_path / "status")
    before = sorted(os.listdir(root))
    report = recover([root], dry_run=True)
    assert {Path(d.file).name for d in report.domains if d.unusable} == {
        "vm1-copy.xml", "vm3.xml", "empty.xml", "torn.xml", "text.xml", "fifo.xml"}
    assert sorted(os.listdir(root)) == before


def test_recover_dir_exits_2_for_refused_files(tmp_path: Path) -> None:
    root = _directory(tmp_path / "status")
    assert main(["recover", str(root)]) == 2
    assert main(["recover", str(root)]) == 0  # the refused files are in quarantine now


def _removes(path: Path) -> Callable[[DomainReport], None]:
    """A progress hook that removes `path` once the first domain is done, as libvirt
    removes the file of a domain that shuts down while a long recovery runs."""
    def hook(_domain: DomainReport) -> None:
        path.unlink(missing_ok=True)
    return hook


@pytest.mark.parametrize("dry_run", [False, True], ids=["recover", "dry run"])
def test_a_listed_file_removed_before_its_turn_is_a_domain_that_ended(
    tmp_path: Path, dry_run: bool
) -> None:
    root = tmp_path / "status"
    root.mkdir()
    for name in ("vm1", "vm2", "vm3"):
        (root / f"{name}.xml").write_bytes(status_bytes(name))
    # One at a time, so vm2's file goes after the listing and before vm2's turn.
    report = recover([root], dry_run=dry_run, progress=_removes(root / "vm2.xml"))
    done = "planned" if dry_run else "reconciled"
    assert [(d.domain, d.status, d.error, d.unusable) for d in report.domains] == [
        ("vm1", done, None, False), ("vm2", "ended", None, False),
        ("vm3", done, None, False)]
    assert report.ok and not report.unusable_input
    assert "removed since the directory was listed" in "\n".join(report.domains[1].lines())


def test_a_listed_file_removed_while_its_recovery_starts_is_a_domain_that_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Gone after it was looked at, before it is read under its lock (while another owner
    # held it, say): the same domain that ended.
    root = tmp_path / "status"
    root.mkdir()
    (root / "vm1.xml").write_bytes(status_bytes("vm1"))

    def looked_at_then_removed(path: Path) -> None:
        check_regular(path)
        path.unlink()

    monkeypatch.setattr(run, "check_regular", looked_at_then_removed)
    report = recover([root])
    assert [(d.status, d.error, d.unusable) for d in report.domains] == [
        ("ended", None, False)]


def test_a_named_file_removed_is_still_an_input_that_cannot_be_used(tmp_path: Path) -> None:
    # Named on the command line, the file is the operator's input: README "Input policy".
    root = tmp_path / "status"
    root.mkdir()
    (root / "vm1.xml").write_bytes(status_bytes("vm1"))
    report = recover([root / "vm1.xml", root / "vm2.xml"])
    assert [d.status for d in report.domains] == ["reconciled", "attention"]
    assert report.unusable_input


@pytest.mark.parametrize("form", ["directory", "file"])
def test_a_domain_owned_by_another_is_reported_busy_by_its_name(
    tmp_path: Path, form: str
) -> None:
    # Was reported as domain "?" (null in JSON): the file is not read while another owns it.
    root = tmp_path / "status"
    root.mkdir()
    for name in ("vm1", "vm2"):
        (root / f"{name}.xml").write_bytes(status_bytes(name))
    before = (root / "vm1.xml").read_bytes()
    owned, release = threading.Event(), threading.Event()

    def another_owner() -> None:  # a tracker or another recovery, say
        with StatusStore(root).owned("vm1"):
            owned.set()
            release.wait()

    holder = threading.Thread(target=another_owner)
    holder.start()
    try:
        owned.wait()
        report = recover([root] if form == "directory" else [root / "vm1.xml", root / "vm2.xml"],
                         owner_timeout=0.1)
    finally:
        release.set()
        holder.join()
    busy, free = report.domains
    assert (busy.domain, busy.status, busy.unusable) == ("vm1", "attention", False)
    assert "domain 'vm1' is owned by another process or thread (waited 0.1 s)" in (
        busy.error or "")
    assert busy.lines()[0].startswith(f"vm1 ({root / 'vm1.xml'}): attention: ")
    assert (free.domain, free.status) == ("vm2", "reconciled")
    assert not report.ok and not report.unusable_input  # exit 1: attention
    assert (root / "vm1.xml").read_bytes() == before
