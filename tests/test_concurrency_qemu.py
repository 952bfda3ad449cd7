"""Concurrency on real QEMU: writers that take no lock of ours (libvirt) beside a tracker
and a recovery, two `blockjob recover` processes over the same domains with one of them
SIGKILLed anywhere, a tracker killed while a recovery waits for its domain, and lock-less
readers polling all along."""

from __future__ import annotations

from pathlib import Path

import pytest

from blockjob.store.status_store import StoreConflictError
from tests.support.concurrent_lab import libvirt_saves
from tests.support.qemu_fixtures import BASE, QEMU_MARKS, started
from tests.support.tracking import (
    ACTIVE_JOB,
    assert_active_aborted,
    assert_pivoted,
    to_end,
    to_ready,
    tracker,
)

pytestmark = QEMU_MARKS


@pytest.mark.parametrize("request_", ["pivot", "abort"])
def test_a_request_refused_over_a_file_libvirt_rewrote_can_be_asked_again(
    tmp_path: Path, request_: str
) -> None:
    # Was refused for ever: the tracker kept the document it had, whose version the file
    # no longer was, and only a new tracker could ask again.
    with started(tmp_path) as tb:
        with tracker(tb) as t:
            t.start_active_commit("vda", BASE)
            to_ready(t)
            theirs = libvirt_saves(tb.status_path, "saved while the job was ready")
            with pytest.raises(StoreConflictError, match="not saved: the file was replaced"):
                getattr(t, request_)(ACTIVE_JOB)
            assert tb.status_path.read_bytes() == theirs  # libvirt's file is never lost
            assert t.doc.dumps() == theirs  # the document is the file again
            getattr(t, request_)(ACTIVE_JOB)
            to_end(t, ACTIVE_JOB)
        (assert_pivoted if request_ == "pivot" else assert_active_aborted)(tb)
        assert b"<!-- libvirt: saved while the job was ready -->" in tb.status_path.read_bytes()
