"""Following a domain's block jobs live, with recovery's state machine."""

from blockjob.tracker.tracker import FOLLOWED_STATUSES, JobTracker

__all__ = ["FOLLOWED_STATUSES", "JobTracker"]
