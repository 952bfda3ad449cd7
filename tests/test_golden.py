"""Golden files: tests/data/NAME-in.xml loads and saves as NAME-out.xml, byte for byte.

BLOCKJOB_REGENERATE_OUTPUT=1 rewrites the outputs; a mismatch shows a unified diff.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

import blockjob

DATA = Path(__file__).parent / "data"
INPUTS = sorted(DATA.glob("*-in.xml"))


def _diff(expected: bytes, actual: bytes, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.decode("utf-8", "replace").splitlines(keepends=True),
            actual.decode("utf-8", "replace").splitlines(keepends=True),
            f"{name} (expected)",
            f"{name} (written)",
        )
    )


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.name.removesuffix("-in.xml"))
def test_golden_output(source: Path) -> None:
    expected_path = source.with_name(source.name.replace("-in.xml", "-out.xml"))
    actual = blockjob.load(source).dumps()
    if os.environ.get("BLOCKJOB_REGENERATE_OUTPUT") == "1":
        expected_path.write_bytes(actual)
    expected = expected_path.read_bytes()
    assert actual == expected, "\n" + _diff(expected, actual, expected_path.name)


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.name.removesuffix("-in.xml"))
def test_golden_output_is_a_fixed_point(source: Path) -> None:
    once = blockjob.load(source).dumps()
    twice = blockjob.loads(once, "rewritten").dumps()
    assert twice == once, "\n" + _diff(once, twice, source.name)


def test_every_job_type_is_covered() -> None:
    seen = {job.type for path in INPUTS for job in blockjob.load(path).jobs if not job.invalid}
    assert seen == set(blockjob.JobType)
