"""`blockjob validate`: exit codes, message format, --schema and --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blockjob.cli import main
from tests.test_schema_support import INVALID, JOBS, MINIMAL


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    path = tmp_path / "valid.xml"
    path.write_bytes(MINIMAL)
    return path


INVALID_DOC = INVALID / "topparent-on-active-commit.xml"


def test_valid_file_exits_0(valid: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(valid)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{valid}: valid (rng valid, xsd valid)\n"
    assert err == ""


def test_invalid_file_exits_1_with_place_and_expectation(
    valid: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(valid), str(INVALID_DOC)]) == 1
    out, err = capsys.readouterr()
    assert f"{INVALID_DOC}: invalid (rng invalid, xsd invalid)" in out
    assert err == (
        f"{INVALID_DOC}:10: /domstatus/blockjobs/blockjob/topparent: element <topparent> is not "
        "allowed here (after <top>); expected children in this order: errmsg, disk, chains, "
        "base, top, deleteCommittedImages, disabledBaseBitmaps\n"
    )


@pytest.mark.parametrize("schema", ["rng", "xsd"])
def test_one_schema(schema: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = INVALID / "state-unknown.xml"
    assert main(["validate", "--schema", schema, str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{path}: invalid ({schema} invalid)\n"
    # One problem, on the job's line, whichever engine found it; no libxml2 cascade.
    [line] = err.splitlines()
    assert line.startswith(f"{path}:6: /domstatus/blockjobs/blockjob: ")
    assert "state" in line and "interleave" not in line


def test_missing_file_exits_2(valid: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(INVALID_DOC), "/nonexistent/x.xml"]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent/x.xml:0: cannot open: No such file or directory" in err


@pytest.mark.parametrize(
    ("content", "expected", "code"),
    [
        (b"<domstatus>\n  <blockjobs active='no'>\n</domstatus>\n", ":3: not well-formed XML", 2),
        # Refused for safety: unusable input (2), as in every command.
        (b"<!DOCTYPE d [<!ENTITY e 'x'>]>\n<domstatus>&e;</domstatus>\n",
         ":1: document type declarations", 2),
    ],
    ids=["not-well-formed", "doctype"],
)
def test_unusable_or_refused_xml_exits_with_line(
    content: bytes, expected: str, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "unusable.xml"
    path.write_bytes(content)
    assert main(["validate", str(path)]) == code
    assert capsys.readouterr().err.startswith(f"{path}{expected}")


def test_json_one_object_per_file(valid: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", str(valid), str(INVALID_DOC), "/nonexistent"]) == 2
    out, err = capsys.readouterr()
    assert err == ""
    first, second, third = (json.loads(line) for line in out.splitlines())
    assert first == {
        "file": str(valid), "valid": True, "schemas": {"rng": True, "xsd": True}, "problems": [],
    }
    assert second["valid"] is False and second["schemas"] == {"rng": False, "xsd": False}
    [problem] = second["problems"]
    assert problem["line"] == 10 and problem["schema"] == "xsd"
    assert problem["path"] == "/domstatus/blockjobs/blockjob/topparent"
    assert third == {
        "file": "/nonexistent", "valid": None,
        "error": "/nonexistent:0: cannot open: No such file or directory",
    }


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["validate"], ["validate", "--schema", "dtd", "x.xml"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


# Rules of the loader no schema states (RelaxNG cannot say "unique"): `validate` refuses
# such a file as every command does, with the loader's message.
REFUSED = {
    "duplicate-name": (
        b"<blockjob name='pull' type='commit' state='running'/>",
        ":80: duplicate block job name 'pull' (first at line 76)"),
    "second-job-on-disk": (
        b"<blockjob name='second' type='pull' state='running'><disk dst='vda'/></blockjob>",
        ":80: disk 'vda' already has block job 'active' assigned"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_by_the_loader_exits_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job, message = REFUSED[case]
    path = tmp_path / "refused.xml"
    path.write_bytes(MINIMAL.replace(b"  </blockjobs>", b"    " + job + b"\n  </blockjobs>"))
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"{path}{message}\n")
    assert main(["validate", "--json", str(path)]) == 2
    assert json.loads(capsys.readouterr().out) == {
        "file": str(path), "valid": None, "error": f"{path}{message}"}


def test_blockjobs_part_alone_is_judged_by_the_schemas_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The loader reads whole <domstatus> files only, and without the domain's disks it
    # cannot tell a second job on one disk from a repeated disk target.
    job, _ = REFUSED["duplicate-name"]
    path = tmp_path / "part.xml"
    path.write_bytes(b"<blockjobs active='yes'>\n" + JOBS + b"    " + job + b"\n</blockjobs>\n")
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: valid (rng valid, xsd valid)\n"
