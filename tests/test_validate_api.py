"""The validation library (blockjob.validation.check): reports, engines, fragments, leniency."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

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


# Comments and processing instructions are not content in either schema language;
# xmlschema took one inside <errmsg> for a child element.
@pytest.mark.parametrize("inside", [b"<!-- c -->", b"<?pi x?>"], ids=["comment", "pi"])
def test_comment_inside_text_is_ignored(inside: bytes) -> None:
    with_comment = MINIMAL.replace(b"<errmsg>it broke</errmsg>",
                                   b"<errmsg>it " + inside + b"broke</errmsg>")
    assert with_comment != MINIMAL
    assert validate_bytes(with_comment).verdicts == {"rng": True, "xsd": True}


def test_comment_does_not_hide_unicode_space_after_it() -> None:
    hidden = MINIMAL.replace(b"<deleteCommittedImages/>",
                             "<deleteCommittedImages><!-- c -->\u00a0</deleteCommittedImages>"
                             .encode())
    report = validate_bytes(hidden, "h.xml")
    assert report.verdicts == {"rng": False, "xsd": False}
    assert {(p.line, p.path) for p in report.problems} == {
        (10, "/domstatus/blockjobs/blockjob[1]/deleteCommittedImages")}


@pytest.mark.parametrize("document", [MINIMAL, FRAGMENT], ids=["domstatus", "blockjobs"])
def test_xsi_type_naming_no_type_is_a_problem_not_a_crash(document: bytes) -> None:
    # xmlschema raises KeyError for it inside <blockjobs> instead of reporting it.
    typed = document.replace(
        b"<disk dst='vdf'/>",
        b"<disk xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xsi:type='x' dst='vdf'/>")
    assert typed != document
    report = validate_bytes(typed, "t.xml")
    assert report.verdicts == {"rng": False, "xsd": False}
    [problem] = report.problems
    assert problem.path.endswith("/blockjob[8]/disk") and problem.line == typed[
        :typed.index(b"xsi:type='x'")].count(b"\n") + 1
    assert "xsi:type names no type" in problem.message


def test_assertion_names_the_element_and_the_rule() -> None:
    spaced = MINIMAL.replace(b"<disk dst='vdf'/>", "<disk dst='vdf'/>\u2028".encode())
    [problem] = validate_bytes(spaced, "s.xml", ("xsd",)).problems
    assert problem.format("s.xml") == (
        "s.xml:76: /domstatus/blockjobs/blockjob[8]: xsi:* attributes (XML Schema instance) "
        "and white space other than XML's (#x20 #x9 #xA #xD) between elements are not allowed "
        "here")


_WATCHED_EVENTS = frozenset({"open", "urllib.Request", "socket.connect", "socket.getaddrinfo"})


@cache
def _audit_listeners() -> list[list[str]]:
    """Python cannot remove an audit hook: one for the session, feeding whoever listens."""
    listeners: list[list[str]] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event in _WATCHED_EVENTS:
            for listener in listeners:
                listener.append(f"{event} {args!r}")

    sys.addaudithook(hook)
    return listeners


def test_schema_location_hints_are_never_followed(tmp_path: Path) -> None:
    hint = tmp_path / "hint.xsd"
    hint.write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'/>\n")
    places = " ".join(f"urn:x{n} {where}" for n, where in enumerate(
        [hint, hint.as_uri(), "http://127.0.0.1:9/hint.xsd"]))
    hints = (f"xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' "
             f"xsi:schemaLocation='{places}' xsi:noNamespaceSchemaLocation='{hint.as_uri()}'")
    # Where the schemas reject xsi:* (<domstatus>, <blockjobs>) and where they skip it.
    document = (MINIMAL.replace(b"<domstatus ", f"<domstatus {hints} ".encode())
                .replace(b"<blockjobs ", f"<blockjobs {hints} ".encode())
                .replace(b"<domain ", f"<domain {hints} ".encode()))
    seen: list[str] = []
    _audit_listeners().append(seen)
    try:
        report = validate_bytes(document, str(tmp_path / "status.xml"))
    finally:
        _audit_listeners().remove(seen)
    assert report.verdicts == {"rng": False, "xsd": False}
    assert [entry for entry in seen if "hint.xsd" in entry or "127.0.0.1" in entry] == []
