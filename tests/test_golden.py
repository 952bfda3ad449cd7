"""Golden files: tests/data/NAME-in.xml loads and saves as NAME-out.xml, byte for byte.

Runs through the kit we ship (blockjob.testing), so every `make test` proves it:
BLOCKJOB_REGENERATE_OUTPUT=1 or --blockjob-regenerate rewrites the outputs, and a
mismatch shows a unified diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import blockjob
from blockjob.testing import GoldenPair, assert_golden, golden_pairs

PAIRS = golden_pairs(Path(__file__).parent / "data")


@pytest.mark.parametrize("pair", PAIRS)
def test_golden_output(pair: GoldenPair) -> None:
    assert_golden(blockjob.load(pair.input), pair.expected)


@pytest.mark.parametrize("pair", PAIRS)
def test_golden_output_is_a_fixed_point(pair: GoldenPair) -> None:
    # With the test above, this says that loading and saving our own output changes nothing.
    once = blockjob.load(pair.input).dumps()
    assert_golden(blockjob.loads(once, "rewritten"), pair.expected)


def test_every_job_type_is_covered() -> None:
    seen = {job.type for pair in PAIRS for job in blockjob.load(pair.input).jobs if not job.invalid}
    assert seen == set(blockjob.JobType)
