"""A disk whose chain the file does not end: the images below its last one stay (real QEMU).

A status file may not say what is below its last image (no `<backingStore>` there), and
a libvirt that omits a raw image's format layer names no format node of it. Recovery
must leave QEMU's backing links as they are and keep the file saying no more than it did.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import blockjob
from blockjob.cli import main
from blockjob.demo.images import ImageSpec, MiB, Write
from blockjob.demo.lab import DiskSpec, Lab
from blockjob.model import BlockJob, JobState, JobType, PullData, StorageSource
from blockjob.qemu.reopen import set_read_only
from blockjob.recovery import Decision
from blockjob.store.status_store import StatusStore
from tests.support import scenario
from tests.support.qemu_fixtures import (
    BASE,
    JOB,
    MID,
    QEMU_MARKS,
    TOP,
    assert_chain,
    assert_file_sound,
    commit,
    wait_concluded,
)
from tests.test_recovery_qemu import recover_ok

pytestmark = QEMU_MARKS
BOTTOM = "libvirt-4-format"
PULL = "pull-vda-libvirt-1-format"


def _lab(directory: Path) -> Lab:
    """vda: top <- mid <- base <- bottom."""
    bottom = ImageSpec("bottom", (Write(8 * MiB, 1 * MiB, 0x11),))
    return Lab(directory, [DiskSpec(scenario.TARGET, (*scenario.chain(), bottom))])


def _ended_at(chain: StorageSource, last: str) -> StorageSource:
    """`chain` down to node `last`, below which it says nothing."""
    if chain.format_node == last:
        return replace(chain, backing=None, terminated=False)
    assert chain.backing is not None
    return replace(chain, backing=_ended_at(chain.backing, last))


def _file_ends_at_base(tb: Lab) -> None:
    doc = blockjob.load(tb.status_path)
    disk = doc.disk(scenario.TARGET)
    assert disk is not None and disk.chain is not None
    doc.set_disk_chain(scenario.TARGET, _ended_at(disk.chain, BASE))
    StatusStore(tb.directory).save(doc)


def _assert_bottom_kept(tb: Lab) -> None:
    with tb.connect() as monitor:
        assert monitor.backing_of() == {TOP: BASE, BASE: BOTTOM}
    doc = assert_file_sound(tb.status_path)
    assert_chain(doc, TOP, BASE)
    disk = doc.disk(scenario.TARGET)
    assert disk is not None and disk.chain is not None
    assert not disk.chain.images()[-1].terminated  # says no more than it did


def test_a_finished_commit_leaves_base_on_the_backing_the_file_does_not_name(
    tmp_path: Path,
) -> None:
    """Base's read-write reopen named the file's backing of base, null: QEMU detached the
    bottom image from the guest's disk, and recover said ok."""
    with _lab(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        _file_ends_at_base(tb)
        assert recover_ok(tb) == [Decision.COMPLETED]
        _assert_bottom_kept(tb)


def test_a_finished_pull_keeps_the_chain_end_the_file_does_not_name(tmp_path: Path) -> None:
    """The pulled chain was written ending at base (`<backingStore/>`), which QEMU
    contradicts: every run failed its check, and kept the job."""
    with _lab(tmp_path) as tb:
        _file_ends_at_base(tb)
        doc = blockjob.load(tb.status_path)
        doc.add_job(BlockJob(PULL, JobType.PULL, JobState.RUNNING, jobflags=0,
                             disk=scenario.TARGET, data=PullData(base="libvirt-3-storage")))
        StatusStore(tb.directory).save(doc)
        with tb.connect() as monitor:
            monitor.execute("block-stream", {"job-id": PULL, "device": TOP, "base-node": BASE,
                                             "auto-dismiss": False})
        wait_concluded(tb, PULL)
        assert recover_ok(tb) == [Decision.COMPLETED]
        _assert_bottom_kept(tb)



def _file_children(tb: Lab) -> dict[str, str]:
    """Each named node's `file` child in QEMU's graph."""
    with tb.connect() as monitor:
        files, _ = monitor.children_of()
    return files


def test_a_wrong_storage_node_in_the_file_never_becomes_bases_file_child(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Base's read-only reopen named the file's storage node of base: one that exists but
    is the bottom's became base's file (nothing refuses a reader), so the guest read the
    bottom's clusters as base's, and QEMU could no longer list base's bitmaps. Then
    verification, which compared only backing edges, said ok and kept the wrong name in
    the file for the next daemon to act on: now every run says so, and keeps the job."""
    with _lab(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        files = _file_children(tb)
        disk = blockjob.load(tb.status_path).disk(scenario.TARGET)
        assert disk is not None and disk.chain is not None
        base = next(i for i in disk.chain.images() if i.format_node == BASE)
        with tb.connect() as monitor:  # as a run killed inside the merge leaves it
            set_read_only(monitor, base, False, kept={})
        good, bad = f"'{files[BASE]}'", f"'{files[BOTTOM]}'"
        tb.status_path.write_text(tb.status_path.read_text().replace(good, bad))
        line = (f"check failed: disk vda: {BASE} ({base.path}) reads {files[BASE]} in QEMU, "
                f"the file says {files[BOTTOM]}")
        before = tb.status_path.read_bytes()
        assert main(["recover", "--dry-run", str(tb.status_path)]) == 1  # the state as found
        assert line in capsys.readouterr().out and tb.status_path.read_bytes() == before
        for _ in range(2):
            assert main(["recover", str(tb.status_path)]) == 1
            assert line in capsys.readouterr().out
            kept = blockjob.load(tb.status_path).job(JOB)
            assert kept is not None and kept.newstate == JobState.COMPLETED
            assert _file_children(tb)[BASE] == files[BASE]
            with tb.connect() as monitor:  # the commit's steps all ran
                nodes = monitor.query_nodes()
            assert nodes[BASE].read_only and MID not in nodes
        # All but the bottom's own name, the last: jobs come first, a chain top first.
        text = tb.status_path.read_text()
        tb.status_path.write_text(text.replace(bad, good, text.count(bad) - 1))
        assert recover_ok(tb) == [Decision.COMPLETED]
        doc = assert_file_sound(tb.status_path)
        assert doc.jobs == []
        assert_chain(doc, TOP, BASE, BOTTOM)
