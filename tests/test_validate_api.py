"""The validation library (blockjob.validation.check): reports, engines, fragments, leniency."""

from __future__ import annotations

import pytest

from blockjob import loads
from blockjob.errors import StatusXMLError
from blockjob.validation.check import validate_bytes
from tests.test_schema_support import JOBS, MINIMAL

FRAGMENT = b"<blockjobs active='yes'>\n" + JOBS + b"</blockjobs>\n"


def test_blockjobs_fragment_uses_blockjobs_schemas() -> None:
    assert validate_bytes(FRAGMENT).verdicts == {"rng": True, "xsd": True}
    broken = FRAGMENT.replace(b"state='pending'", b"state='paused'")
    report = validate_bytes(broken, "frag.xml")
    assert report.verdicts == {"rng": False, "xsd": False}
    [problem] = report.problems
    assert problem.format("frag.xml").startswith("frag.xml:21: /blockjobs/blockjob[4]: ")


def test_other_roots_are_judged_as_domstatus() -> None:
    report = validate_bytes(b"<domain type='kvm'/>", "d.xml")
    assert report.verdicts == {"rng": False, "xsd": False}
    assert report.problems[0].line == 1 and report.problems[0].path == "/domain"


def test_each_engine_alone() -> None:
    bad = MINIMAL.replace(b"jobflags='0x4'", b"jobflags='0X4'")
    for engine in ("rng", "xsd"):
        report = validate_bytes(bad, "f.xml", (engine,))
        assert report.verdicts == {engine: False}
        assert {p.engine for p in report.problems} == {engine}
        assert all(p.line == 6 for p in report.problems)


def test_both_engines_show_the_precise_messages_once() -> None:
    bad = MINIMAL.replace(b"jobflags='0x4'", b"jobflags='0X4'")
    report = validate_bytes(bad)
    assert [p.engine for p in report.problems] == ["xsd"]
    assert "0x[0-9a-f]+" in report.problems[0].message


def test_unusable_input_raises_typed_error() -> None:
    with pytest.raises(StatusXMLError) as info:
        validate_bytes(b"<domstatus>", "x.xml")
    assert info.value.file == "x.xml" and info.value.line == 1


def test_schema_invalid_document_still_loads() -> None:
    bad = MINIMAL.replace(b"type='pull'", b"type='stream'").replace(b"<topparent", b"<top")
    assert not validate_bytes(bad).valid
    document = loads(bad, "bad.xml")
    assert {job.name for job in document.jobs} >= {"pull", "commit"}
