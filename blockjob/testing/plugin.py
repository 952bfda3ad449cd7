"""The pytest side of blockjob.testing, loaded through the `pytest11` entry point.

`--blockjob-regenerate` sets BLOCKJOB_REGENERATE_OUTPUT=1 for the session, so it also reaches
`assert_golden` calls made without the fixture. The `blockjob_golden` fixture resolves golden
file names against the directory of the test file. Parameters from `golden_pairs` get their
NAME as test id. pytest marks the package that holds this entry point for assertion
rewriting before it imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blockjob.statusxml.document import StatusDocument
from blockjob.testing.golden import REGENERATE_VARIABLE, assert_golden, regenerating
from blockjob.testing.pairs import GoldenPair


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("blockjob").addoption(
        "--blockjob-regenerate",
        action="store_true",
        help=f"rewrite golden files instead of comparing (same as {REGENERATE_VARIABLE}=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("blockjob_regenerate"):
        patch = pytest.MonkeyPatch()
        patch.setenv(REGENERATE_VARIABLE, "1")
        config.add_cleanup(patch.undo)
    try:
        regenerating()
    except ValueError as exc:
        # Said once, as pytest says a bad option, instead of an INTERNALERROR traceback
        # from the report header and the same failure in every golden test.
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str | None:
    return "blockjob: rewriting golden files" if regenerating() else None


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    return val.name if isinstance(val, GoldenPair) else None


class GoldenFiles:
    """`assert_golden` with paths relative to `directory` (the test file's)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str | os.PathLike[str]) -> Path:
        return self.directory / name

    def __call__(self, actual: StatusDocument | bytes, name: str | os.PathLike[str]) -> None:
        __tracebackhide__ = True
        assert_golden(actual, self.path(name))


@pytest.fixture
def blockjob_golden(request: pytest.FixtureRequest) -> GoldenFiles:
    """Call it as `blockjob_golden(doc_or_bytes, "data/NAME-out.xml")`."""
    return GoldenFiles(request.path.parent)
