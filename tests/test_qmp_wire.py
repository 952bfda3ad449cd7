"""QMP on the wire (`blockjob.qemu.wire`) and the monitor's errors, against a scripted peer.

The real-QEMU behaviour (greeting, replies, a held monitor, QEMU dying) is in
`test_qmp.py`; here a socket server plays QEMU's part exactly as a test needs it: events
between replies, a reply late after its command timed out, garbage, a refusal, a hang-up.
"""

from __future__ import annotations

import json
import math
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from blockjob.qemu import wire
from blockjob.qemu.monitor import (
    Monitor,
    MonitorBusyError,
    MonitorReplyError,
    MonitorUnavailableError,
    QMPCommandError,
    UnsafeQueryError,
)

# Only keeps a broken client from hanging the suite; nothing here is timed.
LIMIT = 10.0
GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""},
                    "capabilities": []}}
# Answers the peer gives to one request: the raw lines to send back, in turn.
Script = Callable[[dict[str, Any]], Iterable[bytes]]


def _line(message: object) -> bytes:
    return json.dumps(message).encode() + b"\n"


def answer(value: object) -> Script:
    return lambda request: [_line({"return": value, "id": request["id"]})]


class Peer:
    """A one-client QMP server: greets (unless told not to), then answers each request
    by `scripts[command]`; records the commands it was sent."""

    def __init__(self, path: Path, scripts: dict[str, Script], *, greet: bool = True) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.scripts = {"qmp_capabilities": answer({}), **scripts}
        self.greet = greet
        self.hang_up_after: str | None = None
        self.before_greeting: list[bytes] = []
        self.commands: list[str] = []
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn, conn.makefile("rb") as lines:
            if not self.greet:
                self.release.wait(LIMIT)
                return
            conn.sendall(b"".join(self.before_greeting) + _line(GREETING))
            for raw in lines:
                request = json.loads(raw)
                self.commands.append(request["execute"])
                script = self.scripts.get(request["execute"])
                if script is None:
                    return  # hang up
                for reply in script(request):
                    conn.sendall(reply)
                if request["execute"] == self.hang_up_after:
                    return

    def close(self) -> None:
        self.release.set()
        self.server.close()
        self.thread.join(LIMIT)


@contextmanager
def peer(tmp_path: Path, scripts: dict[str, Script], *, greet: bool = True) -> Iterator[Peer]:
    server = Peer(tmp_path / "qmp.sock", scripts, greet=greet)
    try:
        yield server
    finally:
        server.close()


def connect(server: Peer, *, timeout: float = LIMIT) -> Monitor:
    return Monitor.connect(str(server.server.getsockname()), timeout=timeout,
                           connect_timeout=LIMIT)


def test_events_between_replies_are_kept_in_order_for_next_event(tmp_path: Path) -> None:
    def jobs_with_events(request: dict[str, Any]) -> list[bytes]:
        return [_line({"event": "JOB_STATUS_CHANGE", "data": {"id": "j", "status": "ready"}}),
                _line({"event": "BLOCK_JOB_READY", "data": {"device": "j"}}),
                _line({"return": [], "id": request["id"]})]

    with peer(tmp_path, {"query-jobs": jobs_with_events}) as server, \
            connect(server) as monitor:
        assert monitor.query_jobs() == {}
        first, second = monitor.next_event(LIMIT), monitor.next_event(LIMIT)
        assert first is not None and first["event"] == "JOB_STATUS_CHANGE"
        assert second is not None and second["event"] == "BLOCK_JOB_READY"


def test_a_wait_longer_than_the_socket_takes_is_served_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`next_event(math.inf)` waits for the event (the socket refuses a timeout past a
    day, OverflowError at inf); a piece of the wait ending is not the wait ending."""
    monkeypatch.setattr(wire, "_LONGEST_WAIT", 0.01)

    def event_later(request: dict[str, Any]) -> Iterator[bytes]:
        yield _line({"return": {}, "id": request["id"]})
        threading.Event().wait(0.3)  # many pieces of the wait pass first
        yield _line({"event": "BLOCK_JOB_READY", "data": {"device": "j"}})

    with peer(tmp_path, {"query-status": event_later}) as server, \
            connect(server) as monitor:
        assert monitor.execute("query-status") == {}
        event = monitor.next_event(math.inf)
        assert event is not None and event["event"] == "BLOCK_JOB_READY"
        with pytest.raises(ValueError, match="timeout=nan is not a number of seconds"):
            monitor.next_event(math.nan)


def test_an_event_before_the_greeting_is_kept_as_an_event(tmp_path: Path) -> None:
    # Seen from QEMU 7.2: what it queued for the previous client reaches the next one.
    with peer(tmp_path, {}) as server:
        server.before_greeting = [_line({"event": "BLOCK_JOB_COMPLETED", "data": {}})]
        with connect(server) as monitor:
            event = monitor.next_event(LIMIT)
            assert event is not None and event["event"] == "BLOCK_JOB_COMPLETED"


def test_a_reply_to_a_killed_client_before_the_greeting_is_dropped(tmp_path: Path) -> None:
    # Seen from QEMU 7.2 in the tracker's random-instant kills: the reply to the dead
    # daemon's last command reached the next client first, whose open then failed with
    # "expected the QMP greeting, got {'return': {}, 'id': 10}".
    with peer(tmp_path, {"query-jobs": answer([])}) as server:
        server.before_greeting = [_line({"return": {}, "id": 10}),
                                  _line({"error": {"class": "GenericError", "desc": "x"},
                                         "id": 11})]
        with connect(server) as monitor:
            assert monitor.query_jobs() == {}
            assert monitor.next_event(0.01) is None  # a reply is no event


def test_a_reply_split_across_reads_and_one_line_holding_two_are_both_read(
    tmp_path: Path,
) -> None:
    def split(request: dict[str, Any]) -> list[bytes]:
        whole = _line({"return": {"x": "y" * 70_000}, "id": request["id"]})
        return [whole[:10], whole[10:40_000], whole[40_000:]]

    def doubled(request: dict[str, Any]) -> list[bytes]:
        return [_line({"event": "X"}) + _line({"return": 7, "id": request["id"]})]

    with peer(tmp_path, {"query-status": split, "query-version": doubled}) as server, \
            connect(server) as monitor:
        assert monitor.execute("query-status") == {"x": "y" * 70_000}
        assert monitor.execute("query-version") == 7
        event = monitor.next_event(LIMIT)
        assert event is not None and event["event"] == "X"


def test_the_late_reply_of_a_timed_out_command_is_not_taken_for_the_next(
    tmp_path: Path,
) -> None:
    held: list[dict[str, Any]] = []

    def hold(request: dict[str, Any]) -> list[bytes]:
        held.append(request)
        return []  # no reply until the next command

    def late_then_own(request: dict[str, Any]) -> list[bytes]:
        return [_line({"return": "late", "id": held[0]["id"]}),
                _line({"return": "own", "id": request["id"]})]

    with peer(tmp_path, {"query-status": hold, "query-version": late_then_own}) as server, \
            connect(server, timeout=0.2) as monitor:
        with pytest.raises(MonitorUnavailableError, match=r"timed out after 0\.2 s"):
            monitor.execute("query-status")
        monitor.timeout = LIMIT  # the next reply is not timed: only which one it takes
        assert monitor.execute("query-version") == "own"


# What QEMU 7.2 sends back for `{"execute": "x", "arguments": {"y": "\xff"}}`: a request
# it cannot parse gets errors without an id, here two (the rest of the line is stray too).
UNPARSED = [_line({"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"'"}}),
            _line({"error": {"class": "GenericError", "desc": "JSON parse error, expecting "
                                                          "value"}})]


def test_a_request_qemu_could_not_parse_fails_at_once_and_names_its_command(
    tmp_path: Path,
) -> None:
    # The monitor's timeout is LIMIT: the old client waited it out, then said 'timed out'.
    scripts = {"query-status": answer("s"), "query-version": answer("v"),
               "job-dismiss": lambda request: UNPARSED}
    with peer(tmp_path, scripts) as server, connect(server) as monitor:
        with pytest.raises(QMPCommandError) as caught:
            monitor.execute_all([("query-status", None), ("job-dismiss", {"id": "x"}),
                                 ("query-status", None)])
        assert str(caught.value) == "job-dismiss: GenericError: JSON parse error, stray '\"'"
        with pytest.raises(QMPCommandError, match=r"job-dismiss: .* stray"):
            monitor.job_dismiss("x")
        assert monitor.execute("query-status") == "s", "the second stray error is not taken"
        # The marker that ends each wait is query-version, sent after the batch.
        assert server.commands[1:] == ["query-status", "job-dismiss", "query-status",
                                       "query-version", "job-dismiss", "query-version",
                                       "query-status"]


def test_an_error_without_id_left_by_a_timed_out_request_is_taken_by_none(
    tmp_path: Path,
) -> None:
    def unparsed_then_own(request: dict[str, Any]) -> list[bytes]:
        return [*UNPARSED, _line({"return": "own", "id": request["id"]})]

    scripts = {"query-status": lambda request: [], "query-jobs": unparsed_then_own,
               "query-version": answer("v")}
    with peer(tmp_path, scripts) as server, connect(server, timeout=0.2) as monitor:
        with pytest.raises(MonitorUnavailableError, match="timed out"):
            monitor.execute("query-status")
        monitor.timeout = LIMIT  # the next reply is not timed: only which one it takes
        assert monitor.execute("query-jobs") == "own"


def test_a_refused_command_is_a_command_error_with_qemus_class(tmp_path: Path) -> None:
    def refuse(request: dict[str, Any]) -> list[bytes]:
        return [_line({"error": {"class": "GenericError", "desc": "Job 'x' not found"},
                       "id": request["id"]})]

    with peer(tmp_path, {"job-dismiss": refuse}) as server, connect(server) as monitor:
        with pytest.raises(QMPCommandError) as caught:
            monitor.job_dismiss("x")
        assert (caught.value.command, caught.value.error_class) == ("job-dismiss", "GenericError")
        assert str(caught.value) == "job-dismiss: GenericError: Job 'x' not found"


@pytest.mark.parametrize(("reply", "reason"), [
    (b"not json\n", "not a JSON message"),
    (b"[1, 2]\n", "not a JSON object"),
    (b'{"id": ID}\n', "neither return nor error"),
    (b"\xff\xfe\n", "not a JSON message"),
])
def test_what_is_not_qmp_makes_the_monitor_unavailable(
    tmp_path: Path, reply: bytes, reason: str
) -> None:
    # ID: the command's own id (the client counts from a random start).
    def answer_with(request: dict[str, Any]) -> list[bytes]:
        return [reply.replace(b"ID", str(request["id"]).encode())]

    with peer(tmp_path, {"query-jobs": answer_with}) as server, \
            connect(server) as monitor, pytest.raises(MonitorUnavailableError, match=reason):
        monitor.query_jobs()


@pytest.mark.parametrize(("command", "reply", "reason"), [
    ("query-jobs", {}, "expected a list, got dict"),
    ("query-jobs", None, "expected a list, got NoneType"),
    ("query-jobs", [{"type": "commit", "status": "running"}], "'id'"),
    ("query-jobs", [{"id": 7, "type": "commit", "status": "running"}], "'id' is a int"),
    ("query-jobs", [{"id": "j", "type": "commit", "status": "concluded", "error": 5}],
     "'error' is a int"),
    ("query-jobs", ["commit"], "expected an object, got str"),
    ("query-jobs", [{"id": "j", "type": "commit", "status": "running",
                     "current-progress": float("inf")}], "cannot convert float infinity"),
    ("query-named-block-nodes", [{"node-name": "n", "ro": True}], "'drv'"),
    ("query-named-block-nodes", [{"node-name": "n", "drv": "qcow2", "ro": False,
                                  "dirty-bitmaps": {}}], "expected a list, got dict"),
    ("query-named-block-nodes", [{"node-name": "n", "drv": "qcow2", "ro": False,
                                  "cache": "none"}], "expected an object, got str"),
    ("query-named-block-nodes", [{"node-name": "n", "drv": "qcow2", "ro": False,
                                  "detect_zeroes": True}], "'detect_zeroes' is a bool"),
    ("query-block", [17], "expected an object, got int"),
    ("x-debug-query-block-graph", {"nodes": []}, "'edges'"),
    ("query-block-jobs", [{"device": "j", "io-status": 5}], "'io-status' is a int"),
])
def test_a_reply_of_another_shape_makes_the_monitor_unavailable(
    tmp_path: Path, command: str, reply: object, reason: str
) -> None:
    # A peer that answers, but not as QMP documents: nothing it said is acted on.
    queries: dict[str, Callable[[Monitor], object]] = {
        "query-jobs": Monitor.query_jobs, "query-named-block-nodes": Monitor.query_nodes,
        "query-block": Monitor.device_roots, "x-debug-query-block-graph": Monitor.backing_of,
        "query-block-jobs": Monitor.io_failures,
    }
    scripts = {"query-jobs": answer([]), command: answer(reply)}
    with peer(tmp_path, scripts) as server, connect(server) as monitor, \
            pytest.raises(MonitorReplyError, match=f"unexpected reply to {command}: .*{reason}"):
        queries[command](monitor)


def test_a_message_without_end_is_refused_once_over_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "MAX_MESSAGE", 4096)
    endless = [b'{"return": "' + b"x" * 8192]  # 8 KB and no newline, sent at once
    with peer(tmp_path, {"query-jobs": lambda request: endless}) as server, \
            connect(server) as monitor, \
            pytest.raises(MonitorUnavailableError, match="a message over 4096 bytes"):
        monitor.query_jobs()


def test_a_peer_that_hangs_up_makes_the_monitor_unavailable(tmp_path: Path) -> None:
    with peer(tmp_path, {}) as server, connect(server) as monitor, \
            pytest.raises(MonitorUnavailableError, match="QEMU closed the connection"):
        monitor.query_jobs()  # unscripted: the peer hangs up
    with pytest.raises(MonitorUnavailableError, match="closed"):
        monitor.query_jobs()


def test_next_event_on_a_lost_connection_raises(tmp_path: Path) -> None:
    """A follower waiting for events hears at once that QEMU is gone (README `Live
    tracking`), instead of waiting out its timeout as if nothing happened."""
    with peer(tmp_path, {"query-jobs": answer([])}) as server, connect(server) as monitor:
        server.hang_up_after = "query-jobs"
        assert monitor.query_jobs() == {}
        with pytest.raises(MonitorUnavailableError, match="QEMU closed the connection"):
            monitor.next_event(5)


def test_no_greeting_is_a_busy_monitor_within_the_connect_timeout(tmp_path: Path) -> None:
    with peer(tmp_path, {}, greet=False) as server, \
            pytest.raises(MonitorBusyError, match=r"held by another client, or QEMU is not "
                                                   r"answering .*within 0\.2 s"):
        Monitor.connect(str(server.server.getsockname()), connect_timeout=0.2)


def test_a_greeting_that_is_not_qmp_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(_line({"hello": "world"}))
            conn.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(MonitorUnavailableError, match="expected the QMP greeting"):
            Monitor.connect(str(path), connect_timeout=0.1)
    finally:
        server.close()
        thread.join(LIMIT)


def _jobs(*types: tuple[str, str]) -> Script:
    return answer([{"id": f"j{number}", "type": kind, "status": status}
                   for number, (kind, status) in enumerate(types)])


def test_graph_queries_ask_for_jobs_only_while_a_stream_job_may_conclude(
    tmp_path: Path,
) -> None:
    scripts = {"query-jobs": _jobs(("commit", "concluded")),
               "query-named-block-nodes": answer([]),
               "x-debug-query-block-graph": answer({"nodes": [], "edges": []}),
               "block-stream": answer({})}
    with peer(tmp_path, scripts) as server, connect(server) as monitor:
        monitor.query_nodes()  # nothing known yet: asks
        monitor.query_nodes()  # no stream job, and nothing sent since that starts one
        monitor.backing_of()
        monitor.execute("block-stream", {"device": "x"})  # may have started one
        monitor.query_nodes()
        assert server.commands[1:] == [
            "query-jobs", "query-named-block-nodes", "query-named-block-nodes",
            "x-debug-query-block-graph", "block-stream", "query-jobs",
            "query-named-block-nodes"]


def test_a_running_stream_job_is_looked_at_before_every_graph_query(tmp_path: Path) -> None:
    states = iter(["running", "concluded"])

    def stream(request: dict[str, Any]) -> Iterable[bytes]:
        return _jobs(("stream", next(states)))(request)

    scripts = {"query-jobs": stream, "query-named-block-nodes": answer([])}
    with peer(tmp_path, scripts) as server, connect(server) as monitor:
        monitor.query_nodes()
        with pytest.raises(UnsafeQueryError, match="block-stream job 'j0' is concluded"):
            monitor.query_nodes()
        assert server.commands[1:] == ["query-jobs", "query-named-block-nodes", "query-jobs"]


def test_a_signal_handler_sees_the_exchange_it_interrupted(tmp_path: Path) -> None:
    # The demo holds a stop signal back while a reply is unread (blockjob/demo/signals.py).
    seen: list[bool] = []
    interrupted = threading.Event()

    def handler(signum: int, frame: object) -> None:
        seen.append(wire.exchanging())
        interrupted.set()

    def reply_once_interrupted(request: dict[str, Any]) -> Iterable[bytes]:
        assert interrupted.wait(LIMIT)
        return answer("done")(request)

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        with peer(tmp_path, {"query-status": reply_once_interrupted}) as server, \
                connect(server) as monitor:
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            assert monitor.execute("query-status") == "done"
            handler(signal.SIGALRM, None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert seen == [True, False]


def test_a_batch_is_answered_in_order_and_a_refusal_names_its_command(tmp_path: Path) -> None:
    def refuse(request: dict[str, Any]) -> list[bytes]:
        return [_line({"error": {"class": "GenericError", "desc": "no"}, "id": request["id"]})]

    scripts = {"query-status": answer("s"), "query-version": answer("v"), "job-dismiss": refuse}
    with peer(tmp_path, scripts) as server, connect(server) as monitor:
        seen: list[str] = []
        monitor.observer = lambda when, command: seen.append(f"{when} {command}")
        assert monitor.execute_all([("query-status", None), ("query-version", None)]) == [
            "s", "v"]
        with pytest.raises(QMPCommandError) as caught:
            monitor.execute_all([("query-status", None), ("job-dismiss", {"id": "x"}),
                                 ("query-version", None)])
        assert caught.value.command == "job-dismiss"
        assert monitor.execute("query-version") == "v", "the replies after it were read"
        assert seen[:4] == ["before query-status", "before query-version",
                            "after query-status", "after query-version"]


def test_replies_are_matched_by_id_whatever_their_order(tmp_path: Path) -> None:
    held: list[dict[str, Any]] = []

    def hold(request: dict[str, Any]) -> list[bytes]:
        held.append(request)
        return []

    def both_reversed(request: dict[str, Any]) -> list[bytes]:
        return [_line({"return": "second", "id": request["id"]}),
                _line({"return": "first", "id": held[0]["id"]})]

    with peer(tmp_path, {"query-status": hold, "query-version": both_reversed}) as server, \
            connect(server) as monitor:
        assert monitor.execute_all([("query-status", None), ("query-version", None)]) == [
            "first", "second"]


def test_view_asks_in_one_batch_only_while_no_stream_job_can_conclude(tmp_path: Path) -> None:
    graph = {"nodes": [{"id": 1, "name": "top"}, {"id": 2, "name": "base"},
                       {"id": 3, "name": "base-storage"}],
             "edges": [{"parent": 1, "child": 2, "name": "backing"},
                       {"parent": 2, "child": 3, "name": "file"}]}
    devices = [{"device": "vda", "inserted": {"node-name": "top"}}, {"device": "cd"}]
    nodes = [{"node-name": "top", "drv": "qcow2", "ro": False},
             {"node-name": "base", "drv": "qcow2", "ro": True}]
    asked: list[int] = []

    def jobs(request: dict[str, Any]) -> Iterable[bytes]:
        asked.append(1)  # a commit at first, then a stream job that runs
        return _jobs(("commit", "concluded") if len(asked) == 1 else ("stream", "running"))(
            request)

    scripts = {"query-jobs": jobs, "query-named-block-nodes": answer(nodes),
               "x-debug-query-block-graph": answer(graph), "query-block": answer(devices)}
    with peer(tmp_path, scripts) as server, connect(server) as monitor:
        seen: list[str] = []
        monitor.observer = lambda when, command: seen.append(f"{when} {command}")
        monitor.query_jobs()
        found, backing, files, roots = monitor.view()
        assert sorted(found) == ["base", "top"] and found["base"].read_only
        assert backing == {"top": "base"} and files == {"base": "base-storage"}
        assert roots == ("top",)
        assert seen[2:] == [  # sent at once, then read
            "before query-named-block-nodes", "before x-debug-query-block-graph",
            "before query-block", "after query-named-block-nodes",
            "after x-debug-query-block-graph", "after query-block"]
        monitor.query_jobs()  # a stream job runs now: each graph query looks first
        assert monitor.view()[1:] == (backing, files, roots)
        assert server.commands[5:] == [
            "query-jobs", "query-jobs", "query-named-block-nodes", "query-jobs",
            "x-debug-query-block-graph", "query-block"]


def test_observe_asks_jobs_and_graph_in_one_batch_only_while_no_stream_job_can_exist(
    tmp_path: Path,
) -> None:
    states = iter(["commit", "commit", "stream"])

    def jobs(request: dict[str, Any]) -> Iterable[bytes]:
        return _jobs((next(states), "concluded"))(request)

    scripts = {"query-jobs": jobs, "query-named-block-nodes": answer([]),
               "x-debug-query-block-graph": answer({"nodes": [], "edges": []}),
               "query-block": answer([]), "block-stream": answer({})}
    graph = ["query-named-block-nodes", "x-debug-query-block-graph", "query-block"]
    with peer(tmp_path, scripts) as server, connect(server) as monitor:
        seen: list[str] = []
        monitor.observer = lambda when, command: seen.append(f"{when} {command}")
        assert monitor.observe()[0]["j0"].type == "commit"  # nothing known: the jobs first
        assert monitor.observe()[1:] == ({}, {}, {}, ())  # no stream job: all four at once
        assert seen[8:12] == [f"before {command}" for command in ["query-jobs", *graph]]
        monitor.execute("block-stream", {"device": "x"})  # may have started one
        with pytest.raises(UnsafeQueryError, match="block-stream job 'j0' is concluded"):
            monitor.observe()
        assert server.commands[1:] == ["query-jobs", *graph, "query-jobs", *graph,
                                       "block-stream", "query-jobs"]


def test_a_job_seen_concluded_is_known_to_be_there_until_a_dismiss_is_sent(
    tmp_path: Path,
) -> None:
    scripts = {"query-jobs": _jobs(("commit", "concluded"), ("mirror", "running")),
               "job-dismiss": answer({}), "query-block": answer([])}
    with peer(tmp_path, scripts) as server, connect(server) as monitor:
        assert not monitor.concluded("j0")  # nothing seen yet
        monitor.query_jobs()
        assert monitor.concluded("j0") and not monitor.concluded("j1")  # j1 may end any time
        monitor.device_roots()  # no dismiss: j0 waits for one
        assert monitor.concluded("j0")
        monitor.job_dismiss("j1")  # any dismiss: what QEMU has is asked again
        assert not monitor.concluded("j0")
        assert server.commands[1:] == ["query-jobs", "query-block", "job-dismiss"]


def test_only_the_jobs_an_io_error_stopped_are_io_failures(tmp_path: Path) -> None:
    # A job paused by job-pause says io-status ok; a job without one (not a block job) none.
    jobs = [{"device": "paused-by-hand", "io-status": "ok", "status": "paused"},
            {"device": "stopped", "io-status": "failed", "status": "paused"},
            {"device": "full", "io-status": "nospace", "status": "standby"},
            {"device": "other", "status": "running"}]
    with peer(tmp_path, {"query-block-jobs": answer(jobs)}) as server, \
            connect(server) as monitor:
        assert monitor.io_failures() == {"stopped": "failed", "full": "nospace"}
