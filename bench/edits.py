"""The edit a running daemon makes before most saves: one job's state changes.

The tracker and recovery replace one job (a new, immutable `BlockJob`) and save. The
document writes again only the jobs it has not written as those very objects, so a
benchmark that dumps an unchanged document measures a cache; this one measures the
realistic case: each call changes the next job in turn, every job as often.
"""

from __future__ import annotations

import dataclasses
import itertools

from blockjob import BlockJob, JobState, StatusDocument


def _changed(job: BlockJob) -> BlockJob:
    state = JobState.READY if job.state is not JobState.READY else JobState.RUNNING
    return dataclasses.replace(job, state=state)


class OneJobChanged:
    """Calling it replaces one job of `doc` by another state of it (round robin over the
    jobs, each alternating between its loaded and a changed version)."""

    def __init__(self, doc: StatusDocument) -> None:
        loaded = doc.jobs
        if not loaded:
            raise ValueError("the document has no job to change")
        self.doc = doc
        self._next = itertools.cycle([*map(_changed, loaded), *loaded])

    def __call__(self) -> StatusDocument:
        self.doc.replace_job(next(self._next))
        return self.doc
