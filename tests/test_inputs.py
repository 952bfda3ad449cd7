"""The input policy (`blockjob.inputs`) in every command and in the API: size limit,
regular files only, `-` as standard input, unreadable paths as exit 2 with the path."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import blockjob
from blockjob import inputs
from blockjob.errors import InputError
from blockjob.recovery import recover
from blockjob.validation.check import validate_file
from tests.test_recovery_plan import document
from tests.test_store_support import without_dac_override

REPO = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
COMMANDS = ("show", "roundtrip", "validate", "recover")
# A guard against a hang (the bug this file tests for), not a speed claim.
CHILD_TIMEOUT = 60


def _cli(*argv: str, stdin: bytes = b"", drop_dac_override: bool = False
         ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "blockjob", *argv], input=stdin, capture_output=True,
        timeout=CHILD_TIMEOUT, check=False, cwd=REPO,
        preexec_fn=without_dac_override if drop_dac_override else None,
    )


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "lab1.xml"
    path.write_bytes(document(None).dumps())
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_a_fifo_is_refused_at_once(command: str, tmp_path: Path) -> None:
    fifo = tmp_path / "lab1.xml"
    os.mkfifo(fifo)
    result = _cli(command, str(fifo))
    assert result.returncode == 2
    assert result.stderr.decode() == f"{fifo}:0: not a regular file (a FIFO)\n"


def test_the_api_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "lab1.xml"
    os.mkfifo(fifo)
    code = (f"import blockjob\ntry:\n    blockjob.load({str(fifo)!r})\n"
            "except blockjob.InputError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=CHILD_TIMEOUT, check=True, cwd=REPO)
    assert result.stdout == f"{fifo}:0: not a regular file (a FIFO)\n"


@pytest.mark.parametrize("command", ["show", "roundtrip", "validate"])
def test_dash_reads_standard_input(command: str) -> None:
    data = (DATA / "every-type-in.xml").read_bytes()
    result = _cli(command, "-", stdin=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == _cli(command, str(DATA / "every-type-in.xml")).stdout.replace(
        str(DATA / "every-type-in.xml").encode(), b"<stdin>")


def test_errors_on_standard_input_name_it() -> None:
    result = _cli("show", "-", stdin=b"<domstatus>\n<blockjobs>\n")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("<stdin>:3: not well-formed XML")


@pytest.mark.parametrize("command", ["show", "roundtrip", "validate"])
def test_standard_input_has_the_size_limit(command: str) -> None:
    result = _cli(command, "--max-size", "1K", "-", stdin=b" " * 2048)
    assert result.returncode == 2
    assert result.stderr.decode() == (
        "<stdin>:0: more bytes than that, larger than 1024, the size limit\n")


def test_default_limit_is_64_mib(tmp_path: Path) -> None:
    assert inputs.MAX_INPUT_BYTES == 64 * 1024 * 1024
    sparse = tmp_path / "big.xml"
    with sparse.open("wb") as out:
        out.truncate(inputs.MAX_INPUT_BYTES + 1)
    for command in COMMANDS:
        result = _cli(command, str(sparse))
        assert result.returncode == 2, command
        assert result.stderr.decode() == (
            f"{sparse}:0: {inputs.MAX_INPUT_BYTES + 1} bytes, larger than "
            f"{inputs.MAX_INPUT_BYTES}, the size limit\n"), command
    with pytest.raises(InputError, match="the size limit"):
        blockjob.load(sparse)


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = _good(tmp_path)
    size = path.stat().st_size
    assert blockjob.load(path, max_bytes=size).domain_name == "lab1"
    with pytest.raises(InputError, match="larger than"):
        blockjob.load(path, max_bytes=size - 1)


def test_the_limit_is_adjustable_in_the_api(tmp_path: Path) -> None:
    path = _good(tmp_path)
    with pytest.raises(InputError, match=r"larger than 100, the size limit"):
        blockjob.load(path, max_bytes=100)
    with pytest.raises(InputError, match="the size limit"):
        validate_file(path, max_bytes=100)
    with pytest.raises(blockjob.StoreError, match="the size limit"):
        blockjob.StatusStore(tmp_path, max_bytes=100).load("lab1")
    report = recover([path], max_bytes=100)
    [domain] = report.domains
    assert domain.unusable and "the size limit" in str(domain.error)
    assert report.unusable_input and not report.ok


def test_a_stream_is_read_no_further_than_the_limit() -> None:
    stream = io.BytesIO(b"x" * 1000)
    with pytest.raises(InputError, match="more bytes than that, larger than 100"):
        inputs.read_input("-", max_bytes=100, stdin=stream)
    assert stream.tell() == 101
    assert inputs.read_input("-", max_bytes=100, stdin=io.BytesIO(b"y" * 100)) == b"y" * 100


PROC_FILE = Path("/proc/self/cmdline")  # its size says 0; what it holds only a read tells


@pytest.mark.skipif(not PROC_FILE.is_file(), reason="no /proc")
def test_a_file_whose_size_says_nothing_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # A file's reads ask for its size and one byte more; these ask for 4 bytes at a time.
    expected = PROC_FILE.read_bytes()
    assert PROC_FILE.stat().st_size == 0 and len(expected) > 8
    monkeypatch.setattr(inputs, "_MIN_CHUNK", 4)
    assert inputs.read_file(PROC_FILE) == expected
    with pytest.raises(InputError, match="more bytes than that, larger than 8"):
        inputs.read_file(PROC_FILE, max_bytes=8)


def test_load_of_a_directory_or_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r":0: not a regular file \(a directory\)"):
        blockjob.load(tmp_path)
    with pytest.raises(InputError, match=r"nope.xml:0: cannot open: No such file"):
        blockjob.load(tmp_path / "nope.xml")


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may list or enter, holding a status file; skipped where the
    tests cannot give up the capabilities that bypass file permissions."""
    folder = tmp_path / "locked"
    folder.mkdir()
    _good(folder)
    folder.chmod(0)
    probe = subprocess.run([sys.executable, "-c", f"import os; os.listdir({str(folder)!r})"],
                           capture_output=True, timeout=CHILD_TIMEOUT, check=False,
                           preexec_fn=without_dac_override)
    if probe.returncode == 0:
        folder.chmod(0o700)
        pytest.skip("this process cannot drop CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH")
    yield folder
    folder.chmod(0o700)


def test_recover_on_an_unreadable_directory(locked: Path) -> None:
    result = _cli("recover", str(locked), drop_dac_override=True)
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode() == f"{locked}:0: cannot list directory: Permission denied\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_path_inside_an_unreadable_directory(command: str, locked: Path) -> None:
    path = locked / "lab1.xml"
    result = _cli(command, str(path), drop_dac_override=True)
    assert result.returncode == 2
    assert result.stderr.decode() == f"{path}:0: cannot open: Permission denied\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreadable_file(command: str, tmp_path: Path, locked: Path) -> None:
    del locked  # only for its skip: this process can give up the bypass
    path = _good(tmp_path)
    path.chmod(0)
    result = _cli(command, str(path), drop_dac_override=True)
    assert result.returncode == 2
    assert result.stderr.decode() == f"{path}:0: cannot open: Permission denied\n"


def test_a_path_with_a_nul_byte_is_an_input_error() -> None:
    # os.open's ValueError went through as it was, not the documented InputError.
    for call in (blockjob.load, validate_file):
        with pytest.raises(InputError, match=r"^lab\x001\.xml:0: cannot open: embedded null"):
            call("lab\x001.xml")
    # `recover` reports it as an unusable domain, as any named path it cannot look at.
    [domain] = recover(["lab\x001.xml"], dry_run=True).domains
    assert domain.unusable
    assert (domain.error or "").startswith("lab\x001.xml:0: cannot open: embedded null")


def test_loads_takes_any_bytes_and_names_anything_else() -> None:
    data = document(None).dumps()
    for same in (bytearray(data), memoryview(data)):
        assert blockjob.loads(same).dumps() == data  # type: ignore[arg-type]
    # A str failed with "must be str, not bytes" from inside the parser, None with an
    # AttributeError.
    with pytest.raises(TypeError, match=r"takes the document's bytes, not str: encode it"):
        blockjob.loads(data.decode())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes the document's bytes, not NoneType$"):
        blockjob.loads(None)  # type: ignore[arg-type]


def test_a_file_read_whole_is_read_though_closing_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A close error after the read was a bare OSError (a traceback from `recover`).
    path = _good(tmp_path)
    real_close = os.close

    def close(fd: int) -> None:
        real_close(fd)
        raise OSError(5, os.strerror(5))

    monkeypatch.setattr(os, "close", close)
    data = inputs.read_file(path)
    monkeypatch.undo()
    assert data == path.read_bytes()
