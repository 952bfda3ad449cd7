"""A daemon with a tracker, run inside libvirt's mount namespace by the interop test.

`python tests/support/tracker_stage.py STATUS_PATH STAGE` takes an active commit of
vda into the bottom of its chain to STAGE and exits there, as if killed: `running`
(crawling), `ready`, `pivoting` (saved, nothing merged, no job-complete sent),
`ended` (pivoted and finished), or `finish` (a later restart: follow whatever is
recorded to its end).
"""

from __future__ import annotations

import sys
from pathlib import Path

from blockjob.jobs.pivot import PivotCrashPoint
from blockjob.model import JobState
from blockjob.statusxml.document import StatusDocument
from blockjob.store.status_store import StatusStore
from blockjob.tracker import JobTracker

STAGES = ("running", "ready", "pivoting", "ended", "finish")
CRAWL = 64  # bytes per second: still running when libvirt takes over
WAIT = 60.0


class _StopError(Exception):
    """The daemon dies here."""


def _stop(point: PivotCrashPoint) -> None:
    if point is PivotCrashPoint.PIVOTING_PERSISTED:
        raise _StopError(point)


def _ready(doc: StatusDocument) -> bool:
    return any(job.state is JobState.READY for job in doc.jobs)


def _none(doc: StatusDocument) -> bool:
    return not doc.jobs


def run(path: Path, stage: str) -> str:
    with JobTracker(StatusStore(path.parent), path.name.removesuffix(".xml")) as tracker:
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
