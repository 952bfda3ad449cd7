"""Base's reopens keep the options QEMU has for it (real QEMU): QEMU resets every option a
`blockdev-reopen` leaves out, and ours made base's `cache.direct`, `cache.no-flush` and
`detect-zeroes` QEMU's defaults again."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from blockjob.cli import main
from blockjob.demo.lab import Lab
from blockjob.jobs.commit import CommitError, start_commit
from blockjob.store.status_store import StatusStore
from tests.support.qemu_fixtures import (
    BASE,
    JOB,
    MID,
    QEMU_MARKS,
    commit,
    image_path,
    started,
    wait_concluded,
)
from tests.support.tracking import to_end, tracker
from tests.test_recovery_qemu import assert_completed

pytestmark = QEMU_MARKS
BASE_STORAGE = "libvirt-3-storage"


@dataclass(frozen=True)
class Opened:
    """How base's nodes are opened beyond the lab's defaults, as libvirt opens them: the
    cache mode on both nodes, detect-zeroes on the format node, discard unmap on both
    (the lab's storage nodes have it) and in the disk's `<driver>`."""

    cache: dict[str, bool]
    detect_zeroes: str

    def query(self) -> tuple[dict[str, bool], str]:
        """What `query-named-block-nodes` shows of base's format node so opened."""
        cache = {"direct": False, "no-flush": False, **self.cache}
        return {"writeback": True, **cache}, self.detect_zeroes


NO_FLUSH_UNMAP = Opened({"no-flush": True}, "unmap")
DIRECT = Opened({"direct": True, "no-flush": True}, "on")


def _o_direct_refused(directory: Path) -> str | None:
    """Why files in `directory` cannot be opened with O_DIRECT (tmpfs refuses it)."""
    probe = directory / "o_direct.probe"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600))
    except OSError as exc:
        return f"{directory} refuses O_DIRECT ({errno.errorcode.get(exc.errno or 0, exc)}): " \
               f"cache.direct=true cannot be opened there"
    finally:
        probe.unlink(missing_ok=True)
    return None


def _open_base(tb: Lab, opened: Opened) -> None:
    """Give base's nodes `opened`'s options (QEMU takes them from a reopen as from a
    blockdev-add) and the disk the `<driver discard='unmap'>` libvirt's options come from."""
    storage = {"driver": "file", "node-name": BASE_STORAGE,
               "filename": str(image_path(tb, "vda", "base")), "auto-read-only": True,
               "discard": "unmap", "cache": opened.cache}
    fmt = {"driver": "qcow2", "node-name": BASE, "file": BASE_STORAGE, "backing": None,
           "read-only": True, "discard": "unmap", "cache": opened.cache,
           "detect-zeroes": opened.detect_zeroes}
    with tb.connect() as monitor:
        monitor.blockdev_reopen([storage, fmt])
    text = tb.status_path.read_text()
    driver = "<driver name='qemu' type='qcow2'/>"
    assert text.count(driver) == 1
    tb.status_path.write_text(text.replace(driver, driver[:-2] + " discard='unmap'/>"))
    assert _base_options(tb) == opened.query()


def _base_options(tb: Lab) -> tuple[dict[str, bool], str]:
    """base's format node's cache and detect_zeroes, as QEMU reports them."""
    with tb.connect() as monitor:
        nodes = monitor.execute("query-named-block-nodes", {"flat": True})
    node = next(node for node in nodes if node["node-name"] == BASE)
    return node["cache"], node["detect_zeroes"]


CASES = pytest.mark.parametrize("opened", [NO_FLUSH_UNMAP, DIRECT],
                                ids=["no-flush,unmap", "direct,on"])


def _skip_unless_possible(directory: Path, opened: Opened) -> None:
    refused = _o_direct_refused(directory) if opened.cache.get("direct") else None
    if refused is not None:
        pytest.skip(refused)


@CASES
def test_a_recovered_commit_leaves_base_opened_as_it_was(tmp_path: Path, opened: Opened) -> None:
    """`blockjob recover` makes base read-write around the merge, then read-only."""
    _skip_unless_possible(tmp_path, opened)
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        _open_base(tb, opened)
        assert main(["recover", str(tb.status_path)]) == 0
        assert_completed(tb)
        assert _base_options(tb) == opened.query()


@CASES
def test_a_started_commit_leaves_base_opened_as_it_was(tmp_path: Path, opened: Opened) -> None:
    """The commit's start makes base read-write around the disable, then read-only."""
    _skip_unless_possible(tmp_path, opened)
    with started(tmp_path) as tb:
        _open_base(tb, opened)
        commit(tb)
        assert _base_options(tb) == opened.query()


def test_a_commit_the_tracker_ends_leaves_base_opened_as_it_was(tmp_path: Path) -> None:
    with started(tmp_path) as tb:
        _open_base(tb, NO_FLUSH_UNMAP)
        with tracker(tb) as t:
            t.start_commit("vda", MID, BASE)
            to_end(t, JOB)
        assert_completed(tb)
        assert _base_options(tb) == NO_FLUSH_UNMAP.query()


def test_a_commit_qemu_refuses_leaves_base_opened_as_it_was(tmp_path: Path) -> None:
    """The refused commit's bitmaps are re-enabled with base read-write around them."""
    with started(tmp_path) as tb:
        _open_base(tb, NO_FLUSH_UNMAP)
        with pytest.raises(CommitError, match="QEMU refused the commit"), \
                StatusStore(tmp_path).owned(tb.name) as owner:
            start_commit(owner, "vda", MID, BASE, speed=-1)
        assert _base_options(tb) == NO_FLUSH_UNMAP.query()
