"""The schemas against real documents: libvirt's files, our golden outputs, our invalid corpus."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from blockjob import loads
from blockjob.validation.check import validate_file
from tests.support.corpus import status_files
from tests.support.docs import jobs
from tests.test_schema_support import CORRUPT, DATA, INVALID, MINIMAL, SCHEMAS, UNMODELLED, both

ENGINES = ("rng", "xsd")


def _invalid_files() -> list[Path]:
    return sorted(INVALID.glob("*.xml"))


def _golden_outputs() -> list[Path]:
    return sorted(DATA.glob("*-out.xml"))


def _marked_line(path: Path) -> int:
    """The line carrying `<!-- broken: RULE -->`: where the broken rule sits."""
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if b"<!-- broken: " + path.stem.encode() + b" -->" in line:
            return number
    raise AssertionError(f"{path.name} has no marker comment naming its rule")


@pytest.mark.parametrize("document", [MINIMAL, UNMODELLED], ids=["minimal", "unmodelled"])
def test_own_documents_are_valid(document: bytes) -> None:
    report = both(document)
    assert report.verdicts == {"rng": True, "xsd": True}
    assert report.problems == ()


def test_brokentype_on_any_job_type_is_valid_as_libvirt_writes_it() -> None:
    # libvirt reads `brokentype` on any job and writes it back: the loader's own output
    # of such a job was invalid under both schemas.
    data = loads(jobs("<blockjob name='p' type='pull' state='running' brokentype='commit'>"
                      "<disk dst='vda'/></blockjob>")).dumps()
    assert b"brokentype='commit'" in data
    report = both(data)
    assert report.verdicts == {"rng": True, "xsd": True}, report.problems


@pytest.mark.parametrize("engine", ENGINES)
def test_libvirt_status_files(engine: str) -> None:
    files = status_files()
    verdicts = {path.name: validate_file(path, (engine,)).valid for path in files}
    expected = {path.name: path.name not in CORRUPT for path in files}
    assert verdicts == expected
    assert len(files) == 42


def test_corrupt_file_is_rejected_for_its_bogus_type() -> None:
    corrupt = next(path for path in status_files() if path.name in CORRUPT)
    report = validate_file(corrupt)
    assert report.verdicts == {"rng": False, "xsd": False}
    assert [(p.line, p.path) for p in report.problems] == [
        (228, "/domstatus/blockjobs/blockjob[1]")
    ]
    assert "type='bogus'" in report.problems[0].message


def test_invalid_documents_still_load() -> None:
    # Validation never gates loading: recovery must not refuse a domain over a schema rule.
    for path in _invalid_files():
        assert not validate_file(path).valid
        loads(path.read_bytes(), str(path))


def test_golden_outputs_are_valid() -> None:
    outputs = _golden_outputs()
    if not outputs:
        pytest.skip("no golden outputs (tests/data/*-out.xml) yet")
    for output in outputs:
        report = validate_file(output)
        if report.valid:
            continue
        # Jobs libvirt could not parse are written back as they were read, so an invalid
        # input may give an invalid output, but writing must add no problem of its own.
        source = validate_file(output.with_name(output.name.replace("-out.xml", "-in.xml")))
        assert not source.valid, f"{output.name} is invalid but its input is valid"
        added = {p.message for p in report.problems} - {p.message for p in source.problems}
        assert not added, f"{output.name}: written problems not in its input: {added}"


def test_invalid_corpus_is_not_empty() -> None:
    assert len(_invalid_files()) >= 60


@pytest.mark.parametrize("path", _invalid_files(), ids=lambda path: path.stem)
def test_invalid_document_rejected_by_both(path: Path) -> None:
    for engine in ENGINES:
        report = validate_file(path, (engine,))
        assert report.verdicts == {engine: False}
        assert report.problems, f"{engine} gave no problem"
        for problem in report.problems:
            assert problem.line >= 1 and problem.path.startswith("/domstatus")
            assert problem.message
    # xmlschema places each problem exactly; libxml2 only roughly (see blockjob.validation.rng).
    xsd_lines = [p.line for p in validate_file(path, ("xsd",)).problems]
    assert _marked_line(path) in xsd_lines


def _xmllint_verdicts(paths: list[Path]) -> dict[str, bool]:
    xmllint = shutil.which("xmllint")
    if xmllint is None:
        pytest.skip("xmllint not installed (Debian: libxml2-utils)")
    result = subprocess.run(
        [xmllint, "--noout", "--relaxng", str(SCHEMAS / "domstatus.rng"), *map(str, paths)],
        capture_output=True, text=True, check=False,
    )
    verdicts: dict[str, bool] = {}
    for line in result.stderr.splitlines():
        for suffix, valid in ((" validates", True), (" fails to validate", False)):
            if line.endswith(suffix):
                verdicts[line.removesuffix(suffix)] = valid
    return verdicts


def test_xmllint_agrees_with_validate(tmp_path: Path) -> None:
    minimal = tmp_path / "minimal.xml"
    minimal.write_bytes(MINIMAL)
    try:
        shared = status_files()
    except pytest.skip.Exception:
        shared = []
    paths = [minimal, *shared, *_golden_outputs(), *_invalid_files()]
    expected = {str(path): validate_file(path, ("rng",)).valid for path in paths}
    assert _xmllint_verdicts(paths) == expected
    assert sum(expected.values()) >= 1 and not all(expected.values())


def test_module_runs_as_cli() -> None:
    # The same check from the outside, through `python -m blockjob`.
    result = subprocess.run(
        [sys.executable, "-m", "blockjob", "validate", str(_invalid_files()[0])],
        capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent,
    )
    assert result.returncode == 1, result.stderr
