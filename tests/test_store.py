"""StatusStore: atomic save, load, and load_all's per-file isolation with quarantine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import blockjob
from blockjob.store.status_store import DomainNameError, StatusStore, StoreError
from tests.test_store_support import (
    RawDocument,
    lock_name,
    scratch_files,
    status_bytes,
    without_dac_override,
)

REPO = Path(blockjob.__file__).resolve().parent.parent


def test_save_writes_name_dot_xml_with_mode_0600_and_exact_bytes(tmp_path: Path) -> None:
    data = status_bytes("vm1", "first")
    old_umask = os.umask(0o022)
    try:
        path = StatusStore(tmp_path).save(RawDocument("vm1", data))
    finally:
        os.umask(old_umask)
    assert path == tmp_path / "vm1.xml"
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o7777 == 0o600
    assert scratch_files(tmp_path) == []


def test_save_keeps_mode_0600_under_a_restrictive_umask(tmp_path: Path) -> None:
    old_umask = os.umask(0o277)
    try:
        path = StatusStore(tmp_path).save(RawDocument("vm1", status_bytes("vm1")))
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o7777 == 0o600


def test_save_replaces_and_creates_the_directory(tmp_path: Path) -> None:
    store = StatusStore(tmp_path / "run" / "qemu")
    store.save(RawDocument("vm1", status_bytes("vm1", "one")))
    path = store.save(RawDocument("vm1", status_bytes("vm1", "two")))
    assert path.read_bytes() == status_bytes("vm1", "two")
    assert sorted(p.name for p in path.parent.iterdir()) == [lock_name("vm1"), "vm1.xml"]
    assert path.parent.stat().st_mode & 0o777 == 0o700


def _fsynced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (device, inode) of each file fsynced from now on, in order."""
    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        status = os.fstat(fd)
        synced.append((status.st_dev, status.st_ino))

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def _identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_dev, status.st_ino


def test_the_first_save_fsyncs_each_directory_it_made_into_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without that, a crash could lose run/ from tmp_path (or qemu/ from run/), and with it
    # a status file the save had reported durable.
    synced = _fsynced(monkeypatch)
    path = StatusStore(tmp_path / "run" / "qemu").save(RawDocument("vm1", b"first\n"))
    assert set(synced) == {_identity(p) for p in (tmp_path, tmp_path / "run", path.parent, path)}
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_a_save_into_an_existing_directory_fsyncs_only_the_file_and_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The steady state pays nothing for the directories: one file fsync, one directory fsync.
    store = StatusStore(tmp_path)
    store.save(RawDocument("vm1", b"first\n"))
    synced = _fsynced(monkeypatch)
    store.save(RawDocument("vm1", b"second\n"))
    path = StatusStore(tmp_path).save(RawDocument("vm1", b"third\n"))  # a new store object
    assert len(synced) == 4
    assert synced[1::2] == [_identity(tmp_path)] * 2
    assert synced[2] == _identity(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_no_inode_that_was_the_status_file_is_written_again(tmp_path: Path) -> None:
    # A reader holding any earlier version keeps reading exactly that version.
    store = StatusStore(tmp_path)
    versions = [RawDocument("vm1", status_bytes("vm1", "v" * n)) for n in (300, 1, 200, 5)]
    held = []
    try:
        for doc in versions:
            path = store.save(doc)
            held.append(os.open(path, os.O_RDONLY))
        assert len({os.fstat(fd).st_ino for fd in held}) == len(versions)
        for fd, doc in zip(held, versions, strict=True):
            assert os.pread(fd, 1 << 16, 0) == doc.data
    finally:
        for fd in held:
            os.close(fd)
    assert scratch_files(tmp_path) == []


def test_a_hard_linked_old_version_is_not_overwritten(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    store.save(RawDocument("vm1", b"first\n"))
    os.link(tmp_path / "vm1.xml", tmp_path / "backup-of-first")
    store.save(RawDocument("vm1", b"second\n"))
    store.save(RawDocument("vm1", b"third\n"))
    assert (tmp_path / "backup-of-first").read_bytes() == b"first\n"
    assert (tmp_path / "vm1.xml").read_bytes() == b"third\n"


def test_save_of_a_real_document_round_trips_through_load(tmp_path: Path) -> None:
    doc = blockjob.loads(status_bytes("vm1", "real"), "vm1.xml")
    store = StatusStore(tmp_path)
    store.save(doc)
    again = store.load("vm1")
    assert again.domain_name == "vm1"
    assert again.dumps() == doc.dumps()
    assert again.filename == str(tmp_path / "vm1.xml")


@pytest.mark.parametrize("name", [None, "", ".", "..", "../evil", "a/b", "nul\0byte"])
def test_save_refuses_a_missing_or_unsafe_domain_name(tmp_path: Path, name: str | None) -> None:
    store = StatusStore(tmp_path / "status")
    with pytest.raises(DomainNameError) as caught:
        store.save(RawDocument(name, b"<domstatus/>"))
    assert str(caught.value).startswith(f"{tmp_path / 'status'}: ")
    assert not (tmp_path / "status").exists()
    assert not (tmp_path / "evil.xml").exists()


@pytest.mark.parametrize("use", ["owned", "load", "path_for", "save"])
def test_a_name_no_file_name_can_encode_is_refused(tmp_path: Path, use: str) -> None:
    store = StatusStore(tmp_path / "status")
    lone_surrogate = "vm\ud800"
    uses: dict[str, Callable[[], object]] = {
        "owned": lambda: store.owned(lone_surrogate).__enter__(),
        "load": lambda: store.load(lone_surrogate),
        "path_for": lambda: store.path_for(lone_surrogate),
        "save": lambda: store.save(RawDocument(lone_surrogate, b"<domstatus/>")),
    }
    with pytest.raises(DomainNameError, match=r"domain name 'vm\\ud800' cannot be encoded as "
                                              r"a file name"):
        uses[use]()
    assert not (tmp_path / "status").exists()


def test_a_name_read_from_a_non_utf8_file_name_is_stored_under_that_file_name(
    tmp_path: Path,
) -> None:
    name = os.fsdecode(b"vm\xff")  # what listdir gives for those bytes
    store = StatusStore(tmp_path)
    store.save(RawDocument(name, status_bytes("x")))
    assert os.listdir(os.fsencode(tmp_path)).count(b"vm\xff.xml") == 1


def test_load_refuses_an_unsafe_name(tmp_path: Path) -> None:
    with pytest.raises(DomainNameError):
        StatusStore(tmp_path).load("../vm1")


def test_load_of_a_missing_domain_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"vm1\.xml: cannot open: No such file"):
        StatusStore(tmp_path).load("vm1")


def test_load_refuses_a_file_that_holds_another_domain(tmp_path: Path) -> None:
    (tmp_path / "vm1.xml").write_bytes(status_bytes("vm2"))
    with pytest.raises(DomainNameError, match="named for domain 'vm1' but holds domain 'vm2'"):
        StatusStore(tmp_path).load("vm1")


def test_load_does_not_follow_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_bytes(status_bytes("vm1"))
    (tmp_path / "vm1.xml").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreError, match="cannot open"):
        StatusStore(tmp_path).load("vm1")


def test_load_does_not_block_on_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "vm1.xml")
    with pytest.raises(StoreError, match="not a regular file"):
        StatusStore(tmp_path).load("vm1")


def test_load_refuses_an_oversized_file(tmp_path: Path) -> None:
    (tmp_path / "vm1.xml").write_bytes(status_bytes("vm1"))
    with pytest.raises(StoreError, match="larger than 100"):
        StatusStore(tmp_path, max_bytes=100).load("vm1")


def test_a_save_over_the_size_limit_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    # The store's next load or scan would refuse (and quarantine) such a file.
    small, big = status_bytes("vm1"), status_bytes("vm1", "x" * 8192)
    message = f"vm1.xml: cannot save: {len(big)} bytes, larger than {len(small)}, the size limit"
    fresh = StatusStore(tmp_path / "status", max_bytes=len(small))
    with pytest.raises(StoreError, match=message):
        fresh.save(RawDocument("vm1", big))
    assert not (tmp_path / "status").exists()
    store = StatusStore(tmp_path, max_bytes=len(small))
    path = store.save(RawDocument("vm1", small))
    with store.owned("vm1") as owner, pytest.raises(StoreError, match=message):
        owner.save(RawDocument("vm1", big))
    assert path.read_bytes() == small
    assert scratch_files(tmp_path) == []
    assert store.scan().domains == ["vm1"]


# load_all -------------------------------------------------------------------

GOOD = {"alpha": status_bytes("alpha"), "beta": status_bytes("beta")}
BAD = {
    "torn": status_bytes("torn")[:97],
    "empty": b"",
    "binary": b"\x00\x01\x02\xff garbage \xfe",
    "text": b"this is not XML at all\n",
    "wrongroot": b"<domain type='qemu'><name>wrongroot</name></domain>\n",
    "noname": b"<domstatus state='running'>\n  <blockjobs active='no'/>\n</domstatus>\n",
    "other": status_bytes("someone-else"),
    "doctype": b"<!DOCTYPE domstatus>\n" + status_bytes("doctype"),
}


def _write_all(directory: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (directory / f"{name}.xml").write_bytes(data)


def test_load_all_loads_good_files_and_quarantines_each_bad_one(tmp_path: Path) -> None:
    _write_all(tmp_path, GOOD | BAD)
    report = StatusStore(tmp_path).load_all()

    assert sorted(report.documents) == ["alpha", "beta"]
    assert report.documents["alpha"].dumps() == GOOD["alpha"]
    failed = {f.path.name.removesuffix(".xml"): f for f in report.failures}
    assert sorted(failed) == sorted(BAD)
    assert sorted(p.name for p in tmp_path.glob("*.xml")) == ["alpha.xml", "beta.xml"]
    for name, failure in failed.items():
        assert failure.quarantined is not None
        assert failure.quarantined.parent == tmp_path / "quarantine"
        assert failure.quarantined.name.startswith(f"{name}.xml.")
        assert failure.quarantined.read_bytes() == BAD[name], "quarantine must keep the bytes"
    assert "not well-formed" in failed["torn"].reason
    assert failed["torn"].line is not None
    assert "expected <domstatus>" in failed["wrongroot"].reason
    assert "no <domain><name>" in failed["noname"].reason
    assert "holds domain 'someone-else'" in failed["other"].reason
    assert "document type declarations" in failed["doctype"].reason
    assert str(failed["torn"]).startswith(f"{tmp_path / 'torn.xml'}:{failed['torn'].line}: ")


def test_load_all_twice_keeps_both_quarantined_copies(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    for _ in range(2):
        (tmp_path / "torn.xml").write_bytes(BAD["torn"])
        store.load_all()
    assert len(list((tmp_path / "quarantine").iterdir())) == 2


def test_load_all_quarantines_a_directory_fifo_and_symlink_without_following(
    tmp_path: Path,
) -> None:
    (tmp_path / "dir.xml").mkdir()
    os.mkfifo(tmp_path / "fifo.xml")
    (tmp_path / "link.xml").symlink_to("/etc/passwd")
    report = StatusStore(tmp_path).load_all()
    assert report.documents == {}
    assert {f.path.name for f in report.failures} == {"dir.xml", "fifo.xml", "link.xml"}
    assert all(f.quarantined is not None for f in report.failures)
    assert (tmp_path / "quarantine").is_dir()
    assert Path("/etc/passwd").is_file()


def test_load_all_leaves_a_file_in_place_when_quarantine_is_impossible(tmp_path: Path) -> None:
    (tmp_path / "quarantine").write_bytes(b"in the way")
    (tmp_path / "torn.xml").write_bytes(BAD["torn"])
    report = StatusStore(tmp_path).load_all()
    [failure] = report.failures
    assert failure.quarantined is None
    assert "left in place: cannot quarantine" in failure.reason
    assert (tmp_path / "torn.xml").read_bytes() == BAD["torn"]


def test_load_all_removes_scratch_files_but_nothing_else(tmp_path: Path) -> None:
    _write_all(tmp_path, GOOD)
    leftovers = [".blockjob-0123456789abcdef.tmp",  # kept versions of blockjob < 0.2
                 ".blockjob-0123456789abcdef.00112233aabbccdd.old.tmp",
                 ".blockjob-fedcba9876543210.0123456789abcdef.tmp"]
    keep = [".blockjob-short.tmp", ".blockjob-0123456789abcdef.xyz.tmp", "notes.tmp", ".hidden"]
    for name in leftovers + keep:
        (tmp_path / name).write_bytes(b"half a status fi")
    report = StatusStore(tmp_path).load_all()
    assert [p.name for p in report.removed_scratch_files] == sorted(leftovers)
    assert sorted(report.documents) == ["alpha", "beta"]
    for name in keep:
        assert (tmp_path / name).exists()
    assert scratch_files(tmp_path) == []


def test_load_all_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    report = StatusStore(tmp_path / "absent").load_all()
    assert (report.documents, report.failures) == ({}, [])


def test_a_file_where_the_directory_should_be_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "status").write_bytes(b"")
    store = StatusStore(tmp_path / "status")
    with pytest.raises(StoreError, match="status: cannot create"):
        store.save(RawDocument("vm1", status_bytes("vm1")))
    with pytest.raises(StoreError, match="status: cannot list directory: Not a directory"):
        store.load_all()
    with pytest.raises(StoreError, match="status: cannot list directory: Not a directory"):
        store.scan()


def test_a_lock_that_cannot_be_opened_fails_the_save_and_leaves_a_bad_file(
    tmp_path: Path,
) -> None:
    (tmp_path / lock_name("vm1")).mkdir()
    (tmp_path / "vm1.xml").write_bytes(BAD["torn"])
    store = StatusStore(tmp_path)
    with pytest.raises(StoreError, match="cannot open lock"):
        store.save(RawDocument("vm1", status_bytes("vm1")))
    [failure] = store.load_all().failures
    assert failure.quarantined is None
    assert failure.reason == (f"left in place: {tmp_path / lock_name('vm1')}: cannot open "
                              f"lock: Is a directory")
    assert (tmp_path / "vm1.xml").read_bytes() == BAD["torn"]


_LOAD_ALL_SCRIPT = """
import json, sys
from blockjob.store.status_store import StatusStore
report = StatusStore(sys.argv[1]).load_all()
print(json.dumps({
    "documents": sorted(report.documents),
    "failures": [[f.path.name, f.reason, f.quarantined is not None] for f in report.failures],
}))
"""


def test_load_all_quarantines_a_permission_denied_file(tmp_path: Path) -> None:
    # As root the check runs in a child without CAP_DAC_OVERRIDE, so permissions apply.
    _write_all(tmp_path, GOOD | {"locked": status_bytes("locked")})
    (tmp_path / "locked.xml").chmod(0o000)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_ALL_SCRIPT, str(tmp_path)],
        capture_output=True, text=True, timeout=60, preexec_fn=without_dac_override,
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["documents"] == ["alpha", "beta"]
    assert report["failures"] == [["locked.xml", "cannot open: Permission denied", True]]
    [moved] = (tmp_path / "quarantine").iterdir()
    assert moved.stat().st_mode & 0o777 == 0


_SCAN_SCRIPT = """
import sys
from blockjob.store.status_store import StatusStore, StoreError
try:
    StatusStore(sys.argv[1]).scan()
except StoreError as exc:
    print(exc)
"""


def test_scan_of_an_unreadable_directory_is_a_store_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "vm1.xml").write_bytes(status_bytes("vm1"))
    (tmp_path / "status").chmod(0o000)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _SCAN_SCRIPT, str(tmp_path / "status")],
            capture_output=True, text=True, timeout=60, preexec_fn=without_dac_override,
            env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
        )
    finally:
        (tmp_path / "status").chmod(0o700)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{tmp_path / 'status'}: cannot list directory: Permission denied\n"


def test_the_longest_domain_name_a_file_name_allows_is_owned_saved_and_scanned(
    tmp_path: Path,
) -> None:
    # <name>.xml at NAME_MAX (255): lock and scratch names carry a hash, so they fit too.
    name = "v" * (255 - len(".xml"))
    store = StatusStore(tmp_path)
    with store.owned(name) as owner:
        owner.save(RawDocument(name, status_bytes(name)))
    store.save(RawDocument(name, status_bytes(name, "again")))
    assert store.scan().domains == [name]
    assert sorted(os.listdir(tmp_path)) == [lock_name(name), f"{name}.xml"]
