"""`blockjob recover`: exit codes, text and JSON output, progress on a terminal."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from blockjob.cli import main
from blockjob.recovery import recover, recover_file
from tests.support.qemu_fixtures import commit, needs_qemu, started, wait_concluded
from tests.test_recovery_plan import document


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.xml"
    assert main(["recover", str(missing)]) == 2
    assert capsys.readouterr().err == f"{missing}:0: cannot open: No such file or directory\n"


def test_file_without_jobs_needs_no_qemu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lab1.xml"
    path.write_bytes(document(None).dumps())
    assert main(["recover", str(path)]) == 0
    assert capsys.readouterr().out == f"lab1 ({path}): reconciled\n  no block jobs\n"


def test_unloadable_file_is_unusable_input_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "lab1.xml"
    good.write_bytes(document(None).dumps())
    bad = tmp_path / "lab2.xml"
    bad.write_bytes(b"<domstatus>\n<blockjobs>\n</domstatus>\n")
    assert main(["recover", "--json", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"{bad}:3: not well-formed XML")
    result = json.loads(captured.out)
    assert result["ok"] is False
    assert [d["status"] for d in result["domains"]] == ["reconciled", "attention"]
    assert result["domains"][1]["error"].startswith(f"{bad}:3: ")


def test_progress_goes_to_a_terminal_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lab1.xml"
    path.write_bytes(document(None).dumps())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["recover", str(path)]) == 0
    assert capsys.readouterr().err == "recover: lab1: reconciled\n"


@needs_qemu
def test_dry_run_prints_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with started(tmp_path) as tb:
        commit(tb)
        wait_concluded(tb)
        before = tb.status_path.read_bytes()
        assert main(["recover", "--dry-run", str(tb.status_path)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0] == f"lab1 ({tb.status_path}): planned"
        assert out[1] == "  commit-vda-libvirt-2-format: finish-completed (QEMU concluded)"
        assert out[2:] == [
            "    [-] record newstate=completed",
            "    [-] merge libvirt-2-format bitmaps into libvirt-3-format, re-enable chk1, chk0",
            "    [-] job-dismiss commit-vda-libvirt-2-format",
            "    [-] blockdev-del libvirt-2-format (format node, then storage node)",
            "    [-] drop job commit-vda-libvirt-2-format; disk vda chain is "
            "libvirt-1-format, libvirt-3-format",
        ]
        assert tb.status_path.read_bytes() == before


_NOT_POSITIVE = "is not a positive, finite number of seconds"
# 1e300 went through, and the socket refused the deadline: OverflowError, a traceback.
_OVER_A_DAY = "seconds is more than a day (86400)"


@pytest.mark.parametrize("option", ["--timeout", "--connect-timeout"])
@pytest.mark.parametrize(("value", "message"), [
    *((value, _NOT_POSITIVE) for value in ("0", "-1", "nan", "inf", "soon")),
    *((value, _OVER_A_DAY) for value in ("86401", "1e300")),
])
def test_timeouts_must_be_positive_and_at_most_a_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    path = tmp_path / "lab1.xml"
    path.write_bytes(document(None).dumps())
    with pytest.raises(SystemExit) as exit_info:
        main(["recover", f"{option}={value}", str(path)])
    assert exit_info.value.code == 2
    assert f"{value!r} {message}" in capsys.readouterr().err
    assert main(["recover", "--dry-run", f"{option}=86400", str(path)]) == 0


@pytest.mark.parametrize("keyword", ["timeout", "connect_timeout"])
@pytest.mark.parametrize(("value", "message"), [
    *((value, _NOT_POSITIVE) for value in (0.0, -1.0, math.nan, math.inf)),
    *((value, _OVER_A_DAY) for value in (86401.0, 1e300)),
])
@pytest.mark.parametrize("api", [recover, recover_file])
def test_the_api_bounds_timeouts_as_the_command_line_does(
    tmp_path: Path, api: Callable[..., object], keyword: str, value: float, message: str
) -> None:
    # The API took them unchecked: a file without jobs came out 'reconciled', and one with
    # a job hit the socket's OverflowError (a traceback) or waited no time at all.
    path = tmp_path / "lab1.xml"
    path.write_bytes(document(None).dumps())
    target = path if api is recover_file else [path]
    with pytest.raises(ValueError, match=re.escape(f"{keyword}={value!r} {message}")):
        api(target, **{keyword: value})
    limit: dict[str, Any] = {keyword: 86400.0}
    assert recover([path], dry_run=True, **limit).ok


def test_file_not_named_for_its_domain_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "copy-of-lab1.xml"
    data = document(None).dumps()
    path.write_bytes(data)
    assert main(["recover", str(path)]) == 1
    out = capsys.readouterr().out
    assert "file is named for domain 'copy-of-lab1' but holds domain 'lab1'" in out
    other = tmp_path / "lab1.status"
    other.write_bytes(data)
    assert main(["recover", str(other)]) == 1
    assert "a status file is named <domain>.xml; not recovered" in capsys.readouterr().out
    assert path.read_bytes() == data and other.read_bytes() == data
