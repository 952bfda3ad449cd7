"""The benchmark's libvirtd-restart anchor runs end to end (one domain a side); no timings."""

from __future__ import annotations

import dataclasses

from bench import case_libvirt
from bench.timing import QUICK
from tests.support.libvirt_lab import LIBVIRT_MARKS

pytestmark = LIBVIRT_MARKS


def test_anchor_finishes_the_same_commits_both_ways() -> None:
    budget = dataclasses.replace(QUICK, libvirt_domains=1, libvirt_rounds=1)
    (row,) = case_libvirt.libvirt_rows(budget, jobs=16)
    assert row.baseline == "libvirtd restart"
    assert row.ours is not None and row.ours > 0
    assert row.base is not None and row.base > 0
    assert "end states identical" in row.note
