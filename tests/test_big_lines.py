"""Problems past line 65,535 name their true line.

libxml2 keeps an element's line in 16 bits unless blank text stays in the tree (which
the loader drops, for speed): past LAST_LINE every element said 65535, so a bad job on
line 70,000 of a big status file was reported on line 65,535. The true line is counted
in the bytes then, only for an element from that line on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import blockjob
from blockjob.errors import StatusXMLError
from blockjob.statusxml.mirrors import mirror_problems
from blockjob.statusxml.spans import LAST_LINE
from blockjob.validation.check import validate_bytes
from tests.support.docs import DEFAULT_DISKS, status

REPO = Path(__file__).resolve().parent.parent
# Blank lines (and a comment holding look-alike tags) push what follows past LAST_LINE.
PADDING = "\n" * 70_000 + "  <!-- <blockjob name='x'> -->\n"
GOOD = "<blockjob name='good' type='copy' state='ready'><disk dst='vdb'/></blockjob>"


def _big(*jobs: str, disks: str = DEFAULT_DISKS) -> bytes:
    body = "\n    ".join(jobs)
    return status(f"{PADDING}  <blockjobs active='yes'>\n    {body}\n  </blockjobs>", disks)


def _line(data: bytes, text: str) -> int:
    """The line holding the `>` ending the start tag that begins with `text`."""
    start = data.index(text.encode())
    return data.count(b"\n", 0, data.index(b">", start)) + 1


def test_a_bad_job_past_the_last_line_names_its_own_line() -> None:
    bad = "<blockjob name='bad' type='pull'\n  state='bogus'><disk dst='nope'/></blockjob>"
    data = _big(GOOD, "<blockjob type='pull' state='ready'/>", bad)
    doc = blockjob.loads(data, "big.xml")
    (job,) = (job for job in doc.jobs if job.name == "bad")
    assert job.problems == (
        f"line {_line(data, '<blockjob name=' + repr('bad'))}: unknown job state 'bogus'",
        f"line {_line(data, '<disk dst=' + repr('nope'))}: disk 'nope' not found in the domain")
    assert doc.warnings == (f"big.xml:{_line(data, '<blockjob type=')}: block job without a "
                            "name dropped",)
    assert _line(data, "<blockjob name='bad'") > LAST_LINE


def test_a_duplicate_job_past_the_last_line_names_both_lines() -> None:
    data = _big(GOOD, GOOD.replace("vdb", "vda"))
    with pytest.raises(StatusXMLError) as caught:
        blockjob.loads(data, "big.xml")
    first, second = (data.count(b"\n", 0, at) + 1 for at in (
        data.index(b"<blockjob name='good'"), data.rindex(b"<blockjob name='good'")))
    assert caught.value.line == second
    assert f"(first at line {first})" in str(caught.value)


def test_an_unloadable_mirror_past_the_last_line_names_its_own_line() -> None:
    data = _big(GOOD, disks=DEFAULT_DISKS.replace("job='copy'", "job=''"))
    doc = blockjob.loads(data, "big.xml")
    (problem,) = mirror_problems(doc.disks, "big.xml")
    assert problem.startswith(f"big.xml:{_line(data, '<mirror ')}: disk vdb:")


def test_validation_problems_past_the_last_line_name_their_own_lines() -> None:
    data = _big(GOOD, "<blockjob name='bad' type='pull' state='bogus'/>")
    line = _line(data, "<blockjob name='bad'")
    for engines in (("rng",), ("xsd",)):
        report = validate_bytes(data, "big.xml", engines)
        assert [problem.line for problem in report.problems] == [line], report.problems


def test_validate_cli_past_the_last_line_names_the_true_line(tmp_path: Path) -> None:
    data = _big(GOOD, "<blockjob name='bad' type='pull' state='bogus'/>")
    path = tmp_path / "big.xml"
    path.write_bytes(data)
    done = subprocess.run([sys.executable, "-m", "blockjob", "validate", str(path)],
                          capture_output=True, text=True, cwd=REPO, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1
    assert f"{path}:{_line(data, '<blockjob name=' + repr('bad'))}: " in done.stderr
    assert f":{LAST_LINE}:" not in done.stderr
