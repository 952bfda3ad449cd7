"""The directory rules (README, "Status store"), each through `scan` and `load_all` alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import blockjob
from blockjob.cli import main
from blockjob.errors import StatusXMLError
from blockjob.statusxml.document import StatusDocument, loads
from blockjob.store import status_store as store_module
from blockjob.store.status_store import LoadFailure, StatusStore
from tests.test_store_support import (
    RawDocument,
    child_process,
    exit_code,
    immutable,
    lock_name,
    scratch_files,
    scratch_name,
    status_bytes,
    without_dac_override,
)

REPO = Path(blockjob.__file__).resolve().parent.parent

Scan = Callable[[StatusStore], tuple[list[str], list[LoadFailure]]]


def _scan(store: StatusStore) -> tuple[list[str], list[LoadFailure]]:
    report = store.scan()
    return report.domains, report.failures


def _load_all(store: StatusStore) -> tuple[list[str], list[LoadFailure]]:
    report = store.load_all()
    return sorted(report.documents), report.failures


BOTH = pytest.mark.parametrize("sweep", [_scan, _load_all], ids=["scan", "load_all"])


@BOTH
def test_a_file_holding_another_domain_is_quarantined_even_beside_that_domains_file(
    tmp_path: Path, sweep: Scan
) -> None:
    # The file name is the key: vm1.xml is vm1's file; a copy under another name is a
    # second file of vm1 and never loaded, whether or not vm1.xml exists.
    (tmp_path / "vm1.xml").write_bytes(status_bytes("vm1", "the real one"))
    (tmp_path / "vm1-copy.xml").write_bytes(status_bytes("vm1", "a stray copy"))
    (tmp_path / "vm2.xml").write_bytes(status_bytes("vm3"))
    domains, failures = sweep(StatusStore(tmp_path))
    assert domains == ["vm1"]
    assert {f.path.name: f.reason for f in failures} == {
        "vm1-copy.xml": "file is named for domain 'vm1-copy' but holds domain 'vm1'",
        "vm2.xml": "file is named for domain 'vm2' but holds domain 'vm3'",
    }
    assert all(f.quarantined is not None and f.quarantined.parent.name == "quarantine"
               for f in failures)
    assert StatusStore(tmp_path).load("vm1").dumps() == status_bytes("vm1", "the real one")


@BOTH
def test_quarantine_keeps_bytes_and_mode_in_a_private_folder(tmp_path: Path, sweep: Scan) -> None:
    (tmp_path / "empty.xml").write_bytes(b"")
    (tmp_path / "empty.xml").chmod(0o640)
    _, [failure] = sweep(StatusStore(tmp_path))
    assert failure.quarantined is not None
    assert failure.quarantined.name.startswith("empty.xml.")
    assert failure.quarantined.read_bytes() == b""
    assert failure.quarantined.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "quarantine").stat().st_mode & 0o777 == 0o700
    assert "Document is empty" in failure.reason and failure.line == 1


@BOTH
def test_other_names_are_ignored_and_left_alone(tmp_path: Path, sweep: Scan) -> None:
    others = {"vm1.xml.bak": b"x", "notes.txt": b"y", "VM1.XML": b"z", ".hidden": b"h"}
    for name, data in others.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "sub").mkdir()
    assert sweep(StatusStore(tmp_path)) == ([], [])
    for name, data in others.items():
        assert (tmp_path / name).read_bytes() == data


@BOTH
def test_an_oversized_file_is_quarantined(tmp_path: Path, sweep: Scan) -> None:
    (tmp_path / "big.xml").write_bytes(status_bytes("big", "x" * 1000))
    (tmp_path / "small.xml").write_bytes(status_bytes("small"))
    domains, [failure] = sweep(StatusStore(tmp_path, max_bytes=len(status_bytes("small"))))
    assert domains == ["small"]
    assert failure.path.name == "big.xml" and failure.quarantined is not None
    limit = len(status_bytes("small"))
    assert failure.reason == f"{len(status_bytes('big', 'x' * 1000))} bytes, larger than " \
        f"{limit}, the size limit"


@BOTH
def test_a_file_named_only_dot_xml_is_quarantined(tmp_path: Path, sweep: Scan) -> None:
    (tmp_path / ".xml").write_bytes(status_bytes("vm1"))
    _, [failure] = sweep(StatusStore(tmp_path))
    assert failure.reason == "file is named for domain '' but holds domain 'vm1'"
    assert failure.quarantined is not None


@BOTH
def test_leftovers_of_an_owned_domain_are_kept_until_it_is_free(
    tmp_path: Path, sweep: Scan
) -> None:
    store = StatusStore(tmp_path)
    store.save(RawDocument("vm1", status_bytes("vm1")))
    key = lock_name("vm1")[len(".blockjob-"):-len(".lock")]
    leftover = tmp_path / f".blockjob-{key}.0123456789abcdef.tmp"
    leftover.write_bytes(b"half")
    with store.owned("vm1"):
        assert sweep(store) == (["vm1"], [])
        assert leftover.exists(), "a live owner may be writing it"
    sweep(store)
    assert scratch_files(tmp_path) == []


def _two_domains_and_a_leftover(directory: Path, of: str = "vm1") -> Path:
    """vm1 and vm2 saved, and a scratch file of domain `of` left by a crashed save."""
    store = StatusStore(directory)
    for name in ("vm1", "vm2"):
        store.save(RawDocument(name, status_bytes(name)))
    leftover = directory / scratch_name(of)
    leftover.write_bytes(b"half")
    return leftover


@BOTH
def test_a_leftover_that_cannot_be_removed_is_reported_and_the_rest_load(
    tmp_path: Path, sweep: Scan
) -> None:
    leftover = _two_domains_and_a_leftover(tmp_path)
    with immutable(leftover):
        domains, failures = sweep(StatusStore(tmp_path))
    assert domains == ["vm1", "vm2"]
    assert failures == [LoadFailure(
        leftover, "scratch file left in place: cannot remove: Operation not permitted")]
    assert leftover.read_bytes() == b"half"


@BOTH
def test_a_leftover_whose_lock_cannot_be_opened_is_reported_and_the_rest_load(
    tmp_path: Path, sweep: Scan
) -> None:
    leftover = _two_domains_and_a_leftover(tmp_path, of="gone")
    lock = tmp_path / lock_name("gone")
    lock.mkdir()  # cannot be opened as a file: the lock's own error, naming it
    domains, failures = sweep(StatusStore(tmp_path))
    assert domains == ["vm1", "vm2"]
    assert failures == [LoadFailure(
        leftover, f"scratch file left in place: {lock}: cannot open lock: Is a directory")]
    assert leftover.read_bytes() == b"half"


_SWEEP_SCRIPT = """
import json, sys
from blockjob.store.status_store import StatusStore
store = StatusStore(sys.argv[1])
if sys.argv[2] == "scan":
    report = store.scan()
    domains = report.domains
else:
    report = store.load_all()
    domains = sorted(report.documents)
print(json.dumps([domains, [[f.path.name, f.reason] for f in report.failures]]))
"""


@pytest.mark.parametrize("how", ["scan", "load_all"])
@pytest.mark.parametrize("mode", [0o555, 0o444], ids=["read-only", "not searchable"])
def test_a_directory_the_daemon_cannot_change_reports_its_leftovers(
    tmp_path: Path, how: str, mode: int
) -> None:
    # As root the scan runs in a child without CAP_DAC_OVERRIDE, so permissions apply.
    directory = tmp_path / "status"
    leftover = _two_domains_and_a_leftover(directory)
    directory.chmod(mode)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _SWEEP_SCRIPT, str(directory), how],
            capture_output=True, text=True, timeout=60, preexec_fn=without_dac_override,
            env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
        )
    finally:
        directory.chmod(0o700)
    assert (result.returncode, result.stderr) == (0, "")
    domains, failures = json.loads(result.stdout)
    if mode == 0o555:  # files can be read and locked, but no name removed
        assert domains == ["vm1", "vm2"]
        assert failures == [
            [leftover.name, "scratch file left in place: cannot remove: Permission denied"]]
    else:  # nothing in it can be looked at, not even a lock
        assert domains == []
        assert failures == [
            [leftover.name, "scratch file left in place: cannot look at it: Permission denied"],
            *([f"{name}.xml", f"left in place: {directory / lock_name(name)}: cannot open "
                              f"lock: Permission denied"] for name in ("vm1", "vm2")),
        ]
    assert leftover.read_bytes() == b"half"


def test_recover_of_a_directory_reports_a_stuck_leftover_and_recovers_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leftover = _two_domains_and_a_leftover(tmp_path, of="gone")
    lock = tmp_path / lock_name("gone")
    lock.mkdir()
    assert main(["recover", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    for name in ("vm1", "vm2"):
        assert f"{name} ({tmp_path / name}.xml): reconciled\n" in out
    assert f"{leftover}:0: scratch file left in place: {lock}: cannot open lock: " \
           f"Is a directory" in out


@BOTH
def test_a_bad_file_of_a_busy_domain_is_reported_and_left_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweep: Scan
) -> None:
    monkeypatch.setattr(store_module, "OWNER_TIMEOUT", 0.05)
    (tmp_path / "vm1.xml").write_bytes(b"<domstatus")
    store = StatusStore(tmp_path)
    owning, release = os.pipe(), os.pipe()

    def other_owner() -> None:
        with store.owned("vm1"):
            os.write(owning[1], b"x")
            os.read(release[0], 1)

    with child_process(other_owner) as pid:
        os.read(owning[0], 1)
        _, [failure] = sweep(store)
        os.write(release[1], b"x")
        assert exit_code(pid) == 0
    for fd in (*owning, *release):
        os.close(fd)
    assert failure.quarantined is None
    assert failure.reason == ("left in place: status file 'vm1.xml' is owned by another "
                              "process or thread (waited 0.05 s)")
    assert (tmp_path / "vm1.xml").read_bytes() == b"<domstatus"


@BOTH
def test_a_file_fixed_while_the_scan_waited_for_its_lock_loads(
    tmp_path: Path, sweep: Scan
) -> None:
    # First read torn (as an owner saving at that moment would never leave it, but a
    # foreign writer might); under the lock the second read is whole: it loads, no quarantine.
    (tmp_path / "vm1.xml").write_bytes(status_bytes("vm1"))
    calls: list[str] = []

    def flaky(data: bytes, name: str) -> StatusDocument:
        calls.append(name)
        if len(calls) == 1:
            raise StatusXMLError(name, 1, "torn on first read")
        return loads(data, name)

    assert sweep(StatusStore(tmp_path, loader=flaky)) == (["vm1"], [])
    assert len(calls) == 2
    assert not (tmp_path / "quarantine").exists()


def test_saved_files_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        path = StatusStore(tmp_path / "status").save(RawDocument("vm1", status_bytes("vm1")))
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o7777 == 0o600
    assert path.parent.stat().st_mode & 0o7777 == 0o700
    assert (path.parent / lock_name("vm1")).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("directory", [".", "./", "sub/..", ""])
def test_loaded_files_are_named_as_the_directory_path_joins_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, directory: str
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "vm1.xml").write_bytes(status_bytes("vm1"))
    (tmp_path / "vm2.xml").write_bytes(status_bytes("vm3"))
    monkeypatch.chdir(tmp_path)
    store = StatusStore(directory, max_bytes=1 << 20)
    report = store.load_all()
    assert report.documents["vm1"].filename == str(Path(directory) / "vm1.xml")
    assert [str(failure.path) for failure in report.failures] == [str(Path(directory) / "vm2.xml")]
