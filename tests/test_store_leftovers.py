"""A save SIGKILLed mid-way leaves scratch files next to the status file. A directory scan
removed them; `recover FILE` and a tracker's open did not, so a daemon recovering its
files one by one piled them up. Now whoever owns the domain removes that file's own
leftovers, under its lock (a live saver of it holds that lock while its scratch exists),
and never another file's.

The crash is real: strace SIGKILLs a saving child at its `rename` (the scratch file and
the old version's hidden name both exist then).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from blockjob.recovery import recover, recover_file
from blockjob.store.status_store import StatusStore, StoreError
from blockjob.tracker import JobTracker
from tests.support.qemu_fixtures import needs_qemu, started
from tests.test_store_support import (
    RawDocument,
    immutable,
    scratch_files,
    scratch_name,
    version,
)
from tests.test_store_syscalls import STRACE, run_traced

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(STRACE is None, reason="strace is not installed")


def _crash_a_save(directory: Path, doc: RawDocument, tmp_path: Path) -> list[str]:
    """Save `doc` in a child SIGKILLed on entering `rename`: the scratch files it left."""
    code, said = run_traced(directory, lambda store: store.save(doc), tmp_path / "strace.log",
                            "rename:signal=KILL:when=1")
    if code != -9:
        pytest.skip(f"strace cannot trace here: {said}")
    left = _remaining(directory)
    assert len(left) == 2, left  # the new version's scratch file, the old one's hidden name
    return left


def _domain(tmp_path: Path, name: str = "vm1") -> Path:
    """A directory with `name`'s status file, and a leftover of another domain's."""
    directory = tmp_path / "status"
    StatusStore(directory).save(version(name, "old", 16 * 1024))
    (directory / scratch_name("vm2")).write_bytes(b"vm2's")
    return directory


def _remaining(directory: Path) -> list[str]:
    return [name for name in scratch_files(directory) if name != scratch_name("vm2")]


@pytest.mark.parametrize("how", ["recover", "recover_file", "cli"])
def test_recovering_a_named_file_removes_its_crashed_saves_leftovers(
    tmp_path: Path, how: str
) -> None:
    directory = _domain(tmp_path)
    left = _crash_a_save(directory, version("vm1", "new", 16 * 1024), tmp_path)
    path = directory / "vm1.xml"
    if how == "cli":
        done = subprocess.run([sys.executable, "-m", "blockjob", "recover", str(path)],
                              capture_output=True, text=True, cwd=REPO, check=False,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stdout + done.stderr
        text = done.stdout
    else:
        domain = recover([path]).domains[0] if how == "recover" else recover_file(path)
        assert domain.status == "reconciled", domain.lines()
        assert sorted(Path(p).name for p in domain.removed_scratch_files) == left
        text = "\n".join(domain.lines())
    assert all(f"removed scratch file {directory / name}" in text for name in left), text
    assert _remaining(directory) == []
    assert scratch_name("vm2") in scratch_files(directory)  # another domain's: its lock


def test_a_dry_run_removes_no_leftover(tmp_path: Path) -> None:
    directory = _domain(tmp_path)
    left = _crash_a_save(directory, version("vm1", "new", 16 * 1024), tmp_path)
    domain = recover([directory / "vm1.xml"], dry_run=True).domains[0]
    assert domain.removed_scratch_files == [] and _remaining(directory) == left


def test_a_leftover_that_cannot_be_removed_needs_attention(tmp_path: Path) -> None:
    directory = _domain(tmp_path)
    left = _crash_a_save(directory, version("vm1", "new", 16 * 1024), tmp_path)
    with immutable(directory / left[0]):
        domain = recover_file(directory / "vm1.xml")
        assert _remaining(directory) == left[:1]
    assert domain.status == "attention"
    (failure,) = domain.left_in_place
    assert failure.startswith(f"{directory / left[0]}:0: scratch file left in place: cannot "
                              "remove: Operation not permitted"), failure
    assert failure in "\n".join(domain.lines())


def test_leftovers_are_removed_only_by_an_owner(tmp_path: Path) -> None:
    directory = _domain(tmp_path)
    store = StatusStore(directory)
    with store.owned("vm1") as owner:
        pass
    with pytest.raises(StoreError, match="block has ended"):
        owner.remove_leftovers()


@needs_qemu
def test_a_tracker_opening_removes_its_files_crashed_saves_leftovers(tmp_path: Path) -> None:
    with started(tmp_path / "lab") as tb:
        doc = RawDocument(tb.name, tb.status_path.read_bytes())
        left = _crash_a_save(tb.directory, doc, tmp_path)
        with JobTracker(StatusStore(tb.directory), tb.name) as tracker:
            assert sorted(path.name for path in tracker.removed_scratch_files) == left
            assert tracker.left_in_place == []
        assert scratch_files(tb.directory) == []
