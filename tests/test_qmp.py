"""The QMP adapter: typed replies and clear errors, against a real QEMU."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from blockjob.demo.qemu import QemuProcess
from blockjob.qemu import wire
from blockjob.qemu.monitor import (
    Monitor,
    MonitorBusyError,
    MonitorReplyError,
    MonitorUnavailableError,
    QMPCommandError,
    _node,
)
from tests.support.qemu_fixtures import BASE, CRAWL, commit, needs_qemu, started


def test_missing_socket_is_reported_with_its_path(tmp_path: Path) -> None:
    path = str(tmp_path / "gone.sock")
    with pytest.raises(MonitorUnavailableError) as caught:
        Monitor.connect(path, connect_timeout=0.1)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: QEMU monitor unavailable: ")


def test_node_reply_keeps_named_bitmaps_and_the_inconsistent_flag() -> None:
    # Shapes from QEMU.md: a job-internal bitmap has no name; a crashed one is inconsistent.
    node = _node({"node-name": "libvirt-3-format", "drv": "qcow2", "ro": True, "dirty-bitmaps": [
        {"recording": True, "persistent": False, "busy": False, "granularity": 65536,
         "count": 1048576},
        {"name": "bm", "recording": False, "persistent": True, "busy": False,
         "granularity": 65536, "count": 0, "inconsistent": True},
    ]})
    assert [b.name for b in node.bitmaps] == ["bm"]
    assert node.bitmaps[0].inconsistent and node.read_only
    assert node.bitmap("bm") is node.bitmaps[0] and node.bitmap("other") is None


def test_node_reply_keeps_the_options_a_reopen_must_repeat() -> None:
    node = _node({"node-name": "n", "drv": "qcow2", "ro": True, "detect_zeroes": "unmap",
                  "cache": {"writeback": True, "direct": True, "no-flush": False}})
    assert (node.direct, node.no_flush, node.detect_zeroes) == (True, False, "unmap")
    bare = _node({"node-name": "n", "drv": "qcow2", "ro": True})  # as QEMU's defaults
    assert (bare.direct, bare.no_flush, bare.detect_zeroes) == (False, False, "off")


@needs_qemu
def test_queries_and_command_errors(tmp_path: Path) -> None:
    with started(tmp_path) as tb, tb.connect() as monitor:
        base = monitor.query_nodes()[BASE]
        assert base.driver == "qcow2" and base.read_only
        assert {b.name: (b.recording, b.count) for b in base.bitmaps} == {
            "chk0": (True, 2 << 20), "chk1": (True, 1 << 20), "bm-off": (False, 0)}
        assert monitor.query_jobs() == {}
        with pytest.raises(QMPCommandError) as caught:
            monitor.job_dismiss("no-such-job")
        assert caught.value.command == "job-dismiss"
        assert caught.value.error_class == "GenericError"
        assert "no-such-job" in str(caught.value) or "not found" in str(caught.value)


@needs_qemu
def test_node_names_are_the_named_nodes_also_while_a_commit_adds_its_filter(
    tmp_path: Path,
) -> None:
    with started(tmp_path) as tb:
        with tb.connect() as monitor:
            assert monitor.node_names() == set(monitor.query_nodes())
        commit(tb, speed=CRAWL)
        with tb.connect() as monitor:
            names = monitor.node_names()
            assert names == set(monitor.query_nodes())
            assert any(name.startswith("#") for name in names), "the commit's filter node"


@needs_qemu
def test_busy_monitor_times_out_instead_of_hanging(tmp_path: Path) -> None:
    qemu = QemuProcess(tmp_path / "qemu.log")
    qemu.start()
    try:
        # QEMU serves one client at a time: the second one is never greeted.
        with qemu.connect(), pytest.raises(MonitorBusyError, match="busy: held by another client"):
            Monitor.connect(qemu.monitor_path, connect_timeout=0.3)
    finally:
        qemu.stop()


@needs_qemu
def test_a_request_qemu_cannot_parse_fails_at_once_and_the_connection_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # QEMU answers a request it cannot parse with errors that carry no id (one for a lone
    # surrogate's escape, two for a byte that is not UTF-8); the old client waited out its
    # whole timeout (here 20 s) for a reply that never came, then said 'timed out'.
    encode = wire._request

    def raw(ident: int, name: str, arguments: Mapping[str, object] | None) -> bytes:
        return encode(ident, name, arguments).replace(b"RAW", b"\xff")

    monkeypatch.setattr(wire, "_request", raw)
    qemu = QemuProcess(tmp_path / "qemu.log")
    qemu.start()
    try:
        with Monitor.connect(qemu.monitor_path, timeout=20.0, connect_timeout=10.0) as monitor:
            for bad in ("\ud800", "RAW"):
                with pytest.raises(QMPCommandError, match="JSON parse error") as caught:
                    monitor.execute_all([("query-status", None), ("job-dismiss", {"id": bad}),
                                         ("query-status", None)])
                assert caught.value.command == "job-dismiss"
                assert "running" in monitor.execute("query-status")
    finally:
        qemu.stop()


@needs_qemu
def test_qemu_dying_mid_session_is_monitor_unavailable(tmp_path: Path) -> None:
    qemu = QemuProcess(tmp_path / "qemu.log")
    qemu.start()
    try:
        monitor = qemu.connect()
        qemu.kill()
        with pytest.raises(MonitorUnavailableError):
            monitor.query_jobs()
        monitor.close()
    finally:
        qemu.stop()


@needs_qemu
def test_block_exports_follow_the_nbd_server(tmp_path: Path) -> None:
    with started(tmp_path) as tb, tb.connect() as monitor:
        assert monitor.block_exports() == {}
        monitor.execute("nbd-server-start", {"addr": {
            "type": "unix", "data": {"path": str(tmp_path / "nbd.sock")}}})
        monitor.execute("block-export-add", {"type": "nbd", "id": "e", "node-name": BASE})
        monitor.execute("block-export-add", {"type": "nbd", "id": "f", "node-name": BASE,
                                             "name": "f"})
        assert monitor.block_exports() == {"e": BASE, "f": BASE}
        monitor.block_export_del("f")
        assert monitor.block_exports() == {"e": BASE}
        monitor.nbd_server_stop()
        assert monitor.block_exports() == {}


def _answering(*replies: object) -> Monitor:
    """A monitor whose commands get `replies` in turn (an exception is raised)."""
    monitor = Monitor("/nowhere.sock")
    queue = list(replies)

    def execute(command: str, arguments: object = None) -> object:
        reply = queue.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    monitor.execute = execute  # type: ignore[method-assign]
    return monitor


def test_block_exports_on_a_qemu_without_them_are_none() -> None:
    missing = QMPCommandError("query-block-exports", "CommandNotFound", "not found")
    assert _answering(missing).block_exports() == {}
    refused = QMPCommandError("query-block-exports", "GenericError", "no")
    with pytest.raises(QMPCommandError):
        _answering(refused).block_exports()
    with pytest.raises(MonitorReplyError, match="unexpected reply to query-block-exports"):
        _answering([{"id": "e"}]).block_exports()
