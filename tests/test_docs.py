"""The README's Python examples run as written, and the docs the code points to exist."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import blockjob
from tests.support.qemu_fixtures import JOB, needs_qemu, started, wait_concluded
from tests.test_recovery_plan import COMMIT, document

REPO = Path(__file__).parent.parent
README = REPO / "README.md"
# Where the examples say status files live; the tests put a directory of their own there.
EXAMPLE_DIRECTORY = "/run/libvirt/qemu"
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_CITED = re.compile(r"docs/([\w.-]+\.md)(?:#([\w-]+))?")


def examples() -> list[str]:
    """The README's Python snippets; a test module (the golden-file kit's example) is run
    by pytester in tests/test_testing_plugin.py instead."""
    found = [code for code in _PYTHON.findall(README.read_text()) if "def test_" not in code]
    assert len(found) >= 3, "the README lost its Python examples"
    return found


def _run(example: str, directory: Path) -> str:
    code = example.replace(EXAMPLE_DIRECTORY, str(directory))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    return out.getvalue()


@pytest.mark.parametrize("job", [None, COMMIT], ids=["no-jobs", "a-running-commit"])
def test_examples_without_qemu_run_as_written(job: blockjob.BlockJob | None,
                                              tmp_path: Path) -> None:
    (tmp_path / "lab1.xml").write_bytes(document(job).dumps())
    ran = 0
    for example in examples():
        if "start_commit" not in example:  # that one needs QEMU: below
            _run(example, tmp_path)
            ran += 1
    assert ran >= 2
    # The store example saved the document back; its jobs are all still there.
    assert [j.name for j in blockjob.load(tmp_path / "lab1.xml").jobs] == (
        [job.name] if job is not None else [])


@needs_qemu
def test_every_example_runs_as_written_on_a_real_qemu(tmp_path: Path) -> None:
    with started(tmp_path / "lab") as tb:
        assert tb.status_path == tmp_path / "lab" / "lab1.xml"
        for example in examples():
            _run(example, tb.directory)
        # The example recovers at once; the commit may still have been running then, and
        # was adopted. Once QEMU concludes it, the next recovery finishes it.
        left = {job.name: job.state for job in blockjob.load(tb.status_path).jobs}
        assert left in ({}, {JOB: blockjob.JobState.RUNNING})
        wait_concluded(tb)
        assert blockjob.recover([tb.status_path]).ok
        assert blockjob.load(tb.status_path).jobs == []  # committed, then recovered


def test_docs_cited_in_code_and_readme_exist() -> None:
    sources = [README, *(REPO / "docs").glob("*.md"),
               *(path for folder in ("blockjob", "tests", "bench")
                 for path in (REPO / folder).rglob("*.py"))]
    cited = 0
    for path in sources:
        text = path.read_text()
        assert "SPEC.md" not in text or path == Path(__file__), f"{path} cites SPEC.md"
        for name, anchor in _CITED.findall(text):
            target = REPO / "docs" / name
            assert target.exists(), f"{path} cites docs/{name}"
            if anchor:
                assert f'<a id="{anchor}">' in target.read_text(), f"{path}: #{anchor}"
            cited += 1
    assert cited > 5
