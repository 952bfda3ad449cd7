"""The pytest plugin, as a downstream project meets it: the README example run by pytester.

The project is the README's test file with `data/lab-in.xml` beside it. It starts with no
golden files, so its first run fails and regeneration writes them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from lxml import etree

import blockjob
from blockjob.testing import REGENERATE_VARIABLE
from tests.support.corpus import REAL

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
_EXAMPLE = re.compile(r"## Golden-file testing.*?```python\n(.*?)```", re.DOTALL)


@pytest.fixture(autouse=True)
def _no_regeneration(monkeypatch: pytest.MonkeyPatch) -> None:
    # An outer `pytest --blockjob-regenerate` must not turn the failures below into rewrites.
    monkeypatch.delenv(REGENERATE_VARIABLE, raising=False)


def readme_example() -> str:
    found = _EXAMPLE.search((ROOT / "README.md").read_text())
    assert found is not None, "README.md lost its golden-file example"
    return found.group(1)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_tool=readme_example())
    data = pytester.path / "data"
    data.mkdir()
    (data / "lab-in.xml").write_bytes((DATA / "every-type-in.xml").read_bytes())
    return data


def _forget_finished_jobs(path: Path) -> bytes:
    """What the README's tool must write, computed here without the example's code."""
    doc = blockjob.load(path)
    finished = [job.name for job in doc.jobs if job.state in ("completed", "failed", "cancelled")]
    assert finished, "the input has no finished job: the example would show nothing"
    for name in finished:
        doc.remove_job(name)
    return doc.dumps()


def test_readme_example_regenerates_then_passes(pytester: pytest.Pytester, project: Path) -> None:
    first = pytester.runpytest("-rf")
    first.assert_outcomes(passed=1, failed=2)
    first.stdout.fnmatch_lines([
        f"*{project / 'lab-out.xml'}: the golden file does not exist; set "
        f"{REGENERATE_VARIABLE}=1 or run pytest --blockjob-regenerate to create it*",
        f"*{project / 'lab-no-jobs.xml'}: the golden file does not exist*",
    ])
    assert not (project / "lab-out.xml").exists()

    regenerated = pytester.runpytest("--blockjob-regenerate", "-v")
    regenerated.assert_outcomes(passed=3)
    regenerated.stdout.fnmatch_lines(["blockjob: rewriting golden files", "*test_tool_output?lab? PASSED*"])
    assert (project / "lab-out.xml").read_bytes() == _forget_finished_jobs(project / "lab-in.xml")
    no_jobs = blockjob.load(project / "lab-no-jobs.xml")
    assert no_jobs.jobs == [] and no_jobs.domain_name == "golden"
    assert os.stat(project / "lab-out.xml").st_mode & 0o777 == 0o644

    pytester.runpytest().assert_outcomes(passed=3)
    assert REGENERATE_VARIABLE not in os.environ  # the option's switch ended with its session
