"""A daemon with a tracker, run inside libvirt's mount namespace by the interop test.

`python tests/support/tracker_stage.py STATUS_PATH STAGE` takes an active commit of
vda into the bottom of its chain to STAGE and exits there, as if killed: `running`
(crawling), `ready`, `pivoting` (saved, nothing merged, no job-complete sent),
`ended` (pivoted and finished), or `finish` (a later restart: follow whatever is
recorded to its end). Stage `pending` instead commits mid into base with auto-finalize
off and exits once `pending` is saved, before `job-finalize`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from blockjob.jobs.commit import CrashPoint
from blockjob.jobs.pivot import PivotCrashPoint
from blockjob.model import JobState
from blockjob.qemu.nodes import effective_node
from blockjob.recovery.steps import Finalize, Step
from blockjob.statusxml.document import StatusDocument
from blockjob.store.status_store import StatusStore
from blockjob.tracker import JobTracker

STAGES = ("running", "ready", "pivoting", "ended", "finish", "pending")
CRAWL = 64  # bytes per second: still running when libvirt takes over
WAIT = 60.0


class _StopError(Exception):
    """The daemon dies here."""


def _stop(point: PivotCrashPoint) -> None:
    if point is PivotCrashPoint.PIVOTING_PERSISTED:
        raise _StopError(point)


def _before_finalize(step: Step) -> None:
    if isinstance(step, Finalize):
        raise _StopError(step)


def _before_block_commit(point: CrashPoint) -> None:
    # The lab's base has no bitmaps: nothing to disable between this point and the
    # `block-commit`, which is then sent here with auto-finalize off.
    if point is CrashPoint.JOB_PERSISTED:
        raise _StopError(point)


def _pending(tracker: JobTracker) -> str:
    """Record the commit as `start_commit` does, send `block-commit` with auto-finalize
    off, and follow events until the tracker would finalize."""
    disk = tracker.doc.disk("vda")
    assert disk is not None and disk.chain is not None
    top, mid, *_, base = map(effective_node, disk.chain.images())
    with contextlib.suppress(_StopError):
        tracker.start_commit("vda", mid, base, crash=_before_block_commit)
    name = tracker.doc.jobs[0].name
    tracker.monitor.block_commit(name, device=top, top_node=mid, base_node=base,
                                 auto_finalize=False)
    try:
        tracker.wait_for(lambda doc: False, WAIT)
    except _StopError:
        return name
    return "never pending"


def _ready(doc: StatusDocument) -> bool:
    return any(job.state is JobState.READY for job in doc.jobs)


def _none(doc: StatusDocument) -> bool:
    return not doc.jobs


def run(path: Path, stage: str) -> str:
    on_step = _before_finalize if stage == "pending" else None
    with JobTracker(StatusStore(path.parent), path.name.removesuffix(".xml"),
                    on_step=on_step) as tracker:
        if stage == "pending":
            return _pending(tracker)
        if stage == "finish":
            return "finished" if tracker.wait_for(_none, WAIT) else "still running"
        disk = tracker.doc.disk("vda")
        assert disk is not None and disk.chain is not None
        base = disk.chain.images()[-1].format_node or ""
        job = tracker.start_active_commit(
            "vda", base, speed=CRAWL if stage == "running" else 0)
        if stage == "running":
            return job.name
        if not tracker.wait_for(_ready, WAIT):
            return "never ready"
        if stage == "ready":
            return job.name
        try:
            tracker.pivot(job.name, crash=_stop if stage == "pivoting" else None)
        except _StopError:
            return job.name
        return job.name if tracker.wait_for(_none, WAIT) else "never finished"


if __name__ == "__main__":
    print(run(Path(sys.argv[1]), sys.argv[2]))
