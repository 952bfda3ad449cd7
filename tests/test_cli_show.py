"""`blockjob show` and `blockjob roundtrip`: output, exit codes, errors as FILE:LINE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blockjob.cli import main
from blockjob.testing import assert_golden

DATA = Path(__file__).parent / "data"
JOB_KEYS = {
    "name", "type", "state", "newstate", "brokentype", "jobflags", "errmsg", "disk", "mirror",
    "invalid", "problems", "base", "top", "topparent", "delete_committed_images",
    "disabled_base_bitmaps", "shallownew", "create_mode", "bitmap",
}


def test_show_json_has_exactly_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--json", str(DATA / "every-type-in.xml")]) == 0
    [out] = json.loads(capsys.readouterr().out)["documents"]
    assert set(out) == {"file", "error", "domain", "active", "jobs"}
    assert out["error"] is None
    assert out["domain"] == "golden" and out["active"] is True
    assert all(set(job) == JOB_KEYS for job in out["jobs"])
    commit = next(job for job in out["jobs"] if job["type"] == "commit")
    assert commit["disabled_base_bitmaps"] == ["chk1", "a&b <c>", "it's", 'say "hi"']
    assert commit["topparent"] == "libvirt-3-storage" and commit["jobflags"] == 0
    create = next(job for job in out["jobs"] if job["type"] == "create")
    assert create["create_mode"] == "storage" and create["disk"] is None


def test_show_json_lists_invalid_jobs_with_problems(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--json", str(DATA / "invalid-jobs-in.xml"),
                 str(DATA / "orphan-chains-in.xml")]) == 0
    captured = capsys.readouterr()
    documents = json.loads(captured.out)["documents"]
    assert [doc["domain"] for doc in documents] == ["golden", "golden"]
    invalid = {job["name"]: job for job in documents[0]["jobs"] if job["invalid"]}
    # libvirt keeps no unresolved node name; the problem names it.
    assert invalid["unresolved-node"]["base"] is None
    assert "'libvirt-99-format' not found" in invalid["unresolved-node"]["problems"][0]
    assert invalid["unresolved-node"]["disabled_base_bitmaps"] == ["must-survive"]
    assert "block job without a name dropped (warning)" in captured.err


@pytest.mark.parametrize("count", [1, 2])
def test_show_json_has_one_shape_and_keeps_files_that_fail(
    count: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<domstatus>\n<blockjobs>\n")
    files = [str(broken), str(DATA / "every-type-in.xml")][:count]
    assert main(["show", "--json", *files]) == 2
    documents = json.loads(capsys.readouterr().out)["documents"]
    assert [doc["file"] for doc in documents] == files
    assert all(set(doc) == {"file", "error", "domain", "active", "jobs"} for doc in documents)
    assert documents[0]["error"]["line"] == 3
    assert documents[0]["error"]["message"].startswith("not well-formed XML")
    assert (documents[0]["domain"], documents[0]["active"], documents[0]["jobs"]) == (
        None, None, [])
    assert [doc["error"] for doc in documents[1:]] == [None] * (count - 1)


def test_show_json_names_a_missing_file_without_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--json", str(tmp_path / "nope.xml")]) == 2
    [doc] = json.loads(capsys.readouterr().out)["documents"]
    assert doc["error"] == {"line": None, "message": "cannot open: No such file or directory"}


def test_show_table_marks_invalid_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(DATA / "invalid-jobs-in.xml")]) == 0
    out = capsys.readouterr().out
    assert "unknown-type" in out and "INVALID" in out
    assert "! unknown-state: line 23: unknown job state 'sleeping'" in out


def test_show_table_quotes_what_would_break_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A name or errmsg read from `&#10;` started a line of its own, which looked like
    # another job; DEL and C1 controls went to the terminal raw.
    text = (DATA / "every-type-in.xml").read_text()
    path = tmp_path / "lab1.xml"
    path.write_text(text.replace("name='pull-vdc-libvirt-7-format'",
                                 "name='pull&#10;  fake-job  copy  ready  vdz'", 1)
                    .replace("<errmsg>only child</errmsg>",
                             "<errmsg>only\x7f\u009b31m&#10;child</errmsg>", 1))
    assert main(["show", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 7  # the file's line, the header, one line per job
    assert any(line.startswith("  'pull\\n  fake-job  copy  ready  vdz'  pull    running ")
               for line in lines)
    assert any(line.endswith("errmsg='only\\x7f\\x9b31m\\nchild'") for line in lines)
    assert all(line.isprintable() for line in lines)


def test_show_reports_unloadable_files_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<domstatus>\n<blockjobs>\n")
    code = main(["show", str(broken), str(DATA / "every-type-in.xml")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith(f"{broken}:3: not well-formed XML")
    assert "Traceback" not in captured.err
    assert "domain golden" in captured.out


def test_missing_file_is_an_io_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(tmp_path / "nope.xml")]) == 2
    assert f"{tmp_path / 'nope.xml'}:0: cannot open: No such file" in capsys.readouterr().err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["show"])
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_roundtrip_prints_the_golden_output(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["roundtrip", str(DATA / "reserialized-in.xml")]) == 0
    assert_golden(capsysbinary.readouterr().out, DATA / "reserialized-out.xml")


def test_roundtrip_refuses_duplicate_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (DATA / "every-type-in.xml").read_text().replace(
        "name='broken-one'", "name='pull-vdc-libvirt-7-format'")
    path = tmp_path / "dup.xml"
    path.write_text(text)
    assert main(["roundtrip", str(path)]) == 2
    assert "duplicate block job name 'pull-vdc-libvirt-7-format'" in capsys.readouterr().err
