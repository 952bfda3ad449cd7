"""The QEMU testbed's own error paths: tools and QEMU that are missing or fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from blockjob.cli import main
from blockjob.demo.images import ImageToolError, build_chain, host_offset, run_tool
from blockjob.demo.qemu import QemuProcess, QemuStartError
from blockjob.demo.story import chain
from blockjob.errors import BlockJobError
from tests.support.qemu_fixtures import needs_qemu


def test_missing_tool_is_a_typed_error() -> None:
    with pytest.raises(ImageToolError, match="no-such-qemu-tool: not installed"):
        run_tool(["no-such-qemu-tool", "info"])


def test_qemu_that_never_started_cannot_be_connected(tmp_path: Path) -> None:
    qemu = QemuProcess(tmp_path / "qemu.log")
    try:
        with pytest.raises(QemuStartError, match="is not running"):
            qemu.connect()
    finally:
        qemu.stop()


def test_demo_failure_is_reported_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> int:
        raise BlockJobError("qemu-img: not installed")

    monkeypatch.setattr("blockjob.cli.demo.run_demo", broken)
    assert main(["demo"]) == 2
    assert capsys.readouterr().err == "demo: qemu-img: not installed\n"


@needs_qemu
def test_failing_tool_and_unallocated_offset_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageToolError, match="qemu-img info"):
        run_tool(["qemu-img", "info", str(tmp_path / "missing.qcow2")])
    top, _, _ = build_chain(tmp_path, chain(), 16 << 20)
    assert host_offset(top, 12 << 20) > 0
    with pytest.raises(ImageToolError, match="not allocated in this image"):
        host_offset(top, 0)
