"""A `<mirror>` libvirt cannot load is reported by `show` and `validate`, with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from blockjob.cli import main

DATA = Path(__file__).parent / "data"
LINE = 138  # the `<mirror>` of disk vdb in every-type-in.xml


@pytest.fixture
def stale(tmp_path: Path) -> Path:
    text = (DATA / "every-type-in.xml").read_text()
    broken = text.replace("format='qcow2' job='copy' ready='yes'>", "format='qcow2' job=''>", 1)
    assert broken != text
    path = tmp_path / "lab1.xml"
    path.write_text(broken)
    return path


def test_validate_reports_an_empty_mirror_job_with_its_line(
    stale: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(stale)]) == 1
    out = capsys.readouterr()
    assert f"{stale}:{LINE}: /domstatus/domain/devices/disk[2]/mirror: <mirror job=''>" in out.err
    assert "libvirt invalid" in out.out


def test_show_reports_an_unknown_mirror_job_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (DATA / "every-type-in.xml").read_text()
    path = tmp_path / "lab1.xml"
    text = text.replace("job='copy' ready='yes'>", "job='bogus'>", 1)
    path.write_text(text)
    line = text[: text.index("job='bogus'")].count("\n") + 1
    assert main(["show", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:{line}: disk vdb: <mirror job='bogus'>: libvirt cannot load")


def test_a_loadable_mirror_is_no_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(DATA / "every-type-in.xml")]) == 0
    assert "<mirror" not in capsys.readouterr().err
