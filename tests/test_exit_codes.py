"""The exit-code table of the README, per command and per class of outcome.

0 ok; 1 a document was read and is invalid (`validate`), holds a `<mirror>` libvirt cannot
load (`show`, `validate`) or its domain needs attention (`recover`, `demo`); 2 bad usage or
an input that cannot be used.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from blockjob.cli import common, main
from blockjob.cli import demo as demo_command
from blockjob.errors import BlockJobError
from tests.test_recovery_plan import document

DATA = Path(__file__).parent / "data"
COMMANDS = ("show", "roundtrip", "validate", "recover")

Maker = Callable[[Path], Path]


def _copy(name: str) -> Maker:
    def make(tmp_path: Path) -> Path:
        target = tmp_path / "lab1.xml"
        shutil.copyfile(DATA / name, target)
        return target
    return make


def _write(data: bytes) -> Maker:
    def make(tmp_path: Path) -> Path:
        target = tmp_path / "lab1.xml"
        target.write_bytes(data)
        return target
    return make


def _no_jobs(tmp_path: Path) -> Path:
    return _write(document(None).dumps())(tmp_path)


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nope.xml"


def _directory_as_file(tmp_path: Path) -> Path:
    (tmp_path / "d.xml").mkdir()
    return tmp_path / "d.xml"


# class: (input, {command: exit code}, what stderr starts with after the path)
CASES: dict[str, tuple[Maker, dict[str, int], str]] = {
    "ok": (_no_jobs, dict.fromkeys(COMMANDS, 0), ""),
    "missing file": (_missing, dict.fromkeys(COMMANDS, 2), ":0: cannot open: No such file"),
    "directory given as a file": (
        _directory_as_file, {"show": 2, "roundtrip": 2, "validate": 2},
        ":0: not a regular file (a directory)"),
    # Refused as a device whatever its name (`recover` checks the kind before the name).
    "a device": (lambda _: Path(os.devnull), dict.fromkeys(COMMANDS, 2),
                 ":0: not a regular file (a device)"),
    "not well-formed": (
        _write(b"<domstatus>\n<blockjobs>\n</domstatus>\n"), dict.fromkeys(COMMANDS, 2),
        ":3: not well-formed XML"),
    "refused for safety": (
        _write(b"<!DOCTYPE d [<!ENTITY e 'x'>]>\n<domstatus>&e;</domstatus>\n"),
        dict.fromkeys(COMMANDS, 2), ":1: document type declarations"),
    "refused by the loader": (
        _write((DATA / "every-type-in.xml").read_bytes().replace(
            b"name='broken-one'", b"name='pull-vdc-libvirt-7-format'")),
        dict.fromkeys(COMMANDS, 2), ":"),
    # Loaded leniently, as libvirt does; only `validate` judges it, and `recover` cannot
    # reach the QEMU its jobs name.
    "invalid document": (
        _copy("invalid-jobs-in.xml"), {"show": 0, "roundtrip": 0, "validate": 1, "recover": 1},
        ""),
    "needs attention": (_copy("every-type-in.xml"), {"recover": 1}, ""),
    # A <mirror> libvirt 9.0 cannot load (it would lose the domain): its line is named.
    "mirror libvirt cannot load": (
        _write((DATA / "every-type-in.xml").read_bytes().replace(
            b"job='copy' ready='yes'>", b"job=''>", 1)),
        {"show": 1, "validate": 1}, ":"),
}


def _params() -> list[object]:
    return [pytest.param(name, command, id=f"{command}-{name}")
            for name, (_, codes, _) in CASES.items() for command in codes]


@pytest.mark.parametrize(("case", "command"), _params())
def test_exit_code(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, codes, message = CASES[case]
    path = make(tmp_path)
    assert main([command, str(path)]) == codes[command]
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if message:
        assert err.startswith(f"{path}{message}"), err


@pytest.mark.parametrize("command", [*COMMANDS, "demo"])
def test_usage_error_exits_2(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command, "--no-such-option"] + ([] if command == "demo" else ["x.xml"])
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_no_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


@pytest.mark.parametrize("command", ["show", "validate", "recover"])  # roundtrip takes one
def test_worst_outcome_wins(command: str, tmp_path: Path) -> None:
    good = _no_jobs(tmp_path)
    assert main([command, str(good), str(tmp_path / "nope.xml")]) == 2
    assert main([command, str(tmp_path / "nope.xml"), str(good)]) == 2


@pytest.mark.parametrize("command", COMMANDS)
def test_size_limit_option(command: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    path = _no_jobs(tmp_path)
    assert main([command, "--max-size", "100", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"{path}:0: ")
    assert main([command, "--max-size", "1M", str(path)]) == 0


@pytest.mark.parametrize("value", ["0", "-5", "lots", "12Q"])
def test_a_bad_size_is_a_usage_error(value: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["show", "--max-size", value, "x.xml"])
    assert caught.value.code == 2


def test_sizes_accept_units() -> None:
    assert [common.size(t) for t in ("65536", "512K", "64M", "64MiB", "1g")] == [
        65536, 512 << 10, 64 << 20, 64 << 20, 1 << 30]


def test_recover_refuses_standard_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recover", "-"]) == 2
    assert capsys.readouterr().err == (
        "<stdin>:0: recover needs status files, not standard input\n")


@pytest.mark.parametrize(
    ("outcome", "code"),
    [(0, 0), (1, 1), (BlockJobError("qemu-img failed"), 2), (OSError(28, "No space"), 2)],
    ids=["ok", "checks-failed", "cannot-run", "no-space"],
)
def test_demo_exit_codes(
    outcome: int | Exception, code: int, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fake() -> int:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    monkeypatch.setattr(demo_command, "run_demo", fake)
    assert main(["demo"]) == code
    err = capsys.readouterr().err
    assert err.startswith("demo: ") if code == 2 else err == ""


def test_readme_states_the_table() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "xmllint" not in readme.split("## Exit codes")[1].split("\n## ")[0]
    for code, constant in ((0, common.EXIT_OK), (1, common.EXIT_REJECTED),
                           (2, common.EXIT_UNUSABLE), (130, common.EXIT_INTERRUPTED),
                           (141, common.EXIT_OUTPUT_CLOSED)):
        assert code == constant
        assert f"\n| {code} |" in readme


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(path: str, max_bytes: int = 0) -> int:
        raise KeyboardInterrupt
    monkeypatch.setattr("blockjob.cli.roundtrip.load_document", interrupted)
    assert main(["roundtrip", os.fspath(_no_jobs(tmp_path))]) == 130


def test_a_closed_output_exits_141_whatever_stdout_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # main() called with a stdout that is no file (a caller's StringIO) has no exit flush
    # to protect, and must not fail looking for its descriptor.
    def closed(path: str, max_bytes: int = 0) -> int:
        raise BrokenPipeError
    monkeypatch.setattr("blockjob.cli.roundtrip.load_document", closed)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["roundtrip", os.fspath(_no_jobs(tmp_path))]) == common.EXIT_OUTPUT_CLOSED


def test_interrupt_while_the_command_is_imported_exits_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ctrl-C during the imports (lxml, the schema engine: tenths of a second) was a
    # traceback.
    def interrupted(name: str) -> object:
        raise KeyboardInterrupt
    monkeypatch.setattr("blockjob.cli.importlib.import_module", interrupted)
    try:
        code = main(["validate", "x.xml"])
    except KeyboardInterrupt:
        pytest.fail("the interrupt left main() as a traceback")
    assert code == 130
