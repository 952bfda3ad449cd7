"""The demo's story as the tests see it: its chain, plus what a test expects beyond the demo."""

from blockjob.demo.images import MiB
from blockjob.demo.story import EXPECTED_AFTER_COMMIT, EXPECTED_AFTER_PIVOT, SIZE, TARGET, chain

# Dirty bytes in base after a failed, cancelled or never-started commit (nothing merged).
EXPECTED_UNCHANGED = {"chk0": 2 * MiB, "chk1": 1 * MiB, "bm-off": 0}
# The base bitmaps a commit of mid must disable.
DISABLED_AT_START = ("chk0", "chk1")

__all__ = ["DISABLED_AT_START", "EXPECTED_AFTER_COMMIT", "EXPECTED_AFTER_PIVOT",
           "EXPECTED_UNCHANGED", "SIZE", "TARGET", "chain"]
