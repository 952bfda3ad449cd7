"""QMP adapter: the few QEMU monitor commands recovery needs, with typed replies.

`Monitor` is synchronous on purpose: recovery is a sequence of steps that each must
finish (and be saved) before the next one starts, so it speaks QMP over a blocking
socket (`wire`), one command at a time. Many domains at once each get their own thread.

Every failure surfaces as a `MonitorError`: `MonitorUnavailableError` when there is no
usable connection (socket gone, refused, busy with another client, timed out, or a peer
whose replies lack the shape QMP documents) and `QMPCommandError` when QEMU answered a
command with an error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from blockjob.errors import BlockJobError
from blockjob.qemu.wire import Connection, ProtocolError, ReplyError

_Parsed = TypeVar("_Parsed")
# The QEMU job status (QAPI JobStatus) of a job that has ended and waits for `job-dismiss`.
CONCLUDED = "concluded"
# How long a client waits for a QMP greeting: QEMU serves one client at a time, and a
# socket held by another client accepts the connection but stays silent. Long enough
# to ride out another tool's short query, short enough to report a held monitor.
GREETING_WAIT = 3.0
# The longest wait a caller may ask for: a day is far beyond any QMP command, and far
# below what a socket timeout can hold (a deadline past the platform's time_t stopped
# recovery with an OverflowError).
MAX_SECONDS = 24 * 3600
# Called ("before" | "after", command) around every QMP command (tests crash there).
CommandObserver = Callable[[str, str], None]
# Commands that cannot start a block-stream job (see `Monitor._stream_free`).
_START_NO_STREAM = frozenset({
    "query-jobs", "query-named-block-nodes", "x-debug-query-block-graph", "query-block",
    "job-dismiss", "job-finalize", "job-cancel", "job-complete", "blockdev-reopen",
    "blockdev-del", "transaction", "block-commit", "query-block-exports", "nbd-server-stop",
    "block-export-del", "query-block-jobs",
})
# Commands that take a concluded job out of QEMU (see `Monitor.concluded`).
_DISMISSING = frozenset({"job-dismiss", "block-job-dismiss"})


class MonitorError(BlockJobError):
    """Base class of everything that went wrong talking to a QEMU monitor."""


class MonitorUnavailableError(MonitorError):
    """No usable QMP connection: the socket is gone, refused, busy or silent."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: QEMU monitor unavailable: {reason}")
        self.path = path
        self.reason = reason


class MonitorBusyError(MonitorUnavailableError):
    """The socket accepted the connection but QEMU never greeted: another client holds it."""


class MonitorReplyError(MonitorUnavailableError):
    """A reply without the shape QMP documents for its command: the peer is not the QEMU
    it claims to be, and nothing it says can be acted on."""


class UnsafeQueryError(MonitorError):
    """A query was not sent because it would crash this QEMU."""


class QMPCommandError(MonitorError):
    """QEMU refused a command; `error_class` is QMP's class, e.g. GenericError."""

    def __init__(self, command: str, error_class: str, description: str) -> None:
        super().__init__(f"{command}: {error_class}: {description}")
        self.command = command
        self.error_class = error_class
        self.description = description


@dataclass(frozen=True)
class QemuJob:
    """One entry of `query-jobs`; `error` is set only for a job that concluded badly."""

    id: str
    type: str
    status: str
    current_progress: int = 0
    total_progress: int = 0
    error: str | None = None


def check_seconds(value: float, shown: str) -> float:
    """`value`, a wait in seconds, if it is positive, finite and at most `MAX_SECONDS`;
    else ValueError, whose message starts with `shown` (how the caller wrote it)."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{shown} is not a positive, finite number of seconds")
    if value > MAX_SECONDS:
        raise ValueError(f"{shown} seconds is more than a day ({MAX_SECONDS})")
    return value


def deadline_after(timeout: float) -> float:
    """The `time.monotonic()` deadline `timeout` seconds from now, for a wait that may be
    as long as the caller likes (`math.inf` too); NaN, which no wait ends, is refused."""
    if math.isnan(timeout):
        raise ValueError(f"timeout={timeout!r} is not a number of seconds")
    return time.monotonic() + timeout


def check_waits(timeout: float, connect_timeout: float | None) -> None:
    """ValueError for a command or connect timeout of the API that `check_seconds`
    refuses, as `recover --timeout` and `--connect-timeout` refuse it."""
    check_seconds(timeout, f"timeout={timeout!r}")
    if connect_timeout is not None:
        check_seconds(connect_timeout, f"connect_timeout={connect_timeout!r}")


def unsafe_streams(jobs: Mapping[str, QemuJob]) -> list[str]:
    """The concluded block-stream jobs not yet dismissed: while one exists, QEMU 7.2
    segfaults on the node graph queries (README `QEMU care`)."""
    return [job.id for job in jobs.values() if job.type == "stream" and job.status == CONCLUDED]


@dataclass(frozen=True)
class Bitmap:
    """One named dirty bitmap of a node (`query-named-block-nodes`)."""

    name: str
    recording: bool
    persistent: bool
    busy: bool
    count: int
    granularity: int
    inconsistent: bool = False


@dataclass(frozen=True)
class BlockNode:
    """One node of QEMU's block graph, as far as recovery cares."""

    node_name: str
    driver: str
    read_only: bool
    bitmaps: tuple[Bitmap, ...] = ()
    filename: str | None = None  # QEMU's `file`: the image's file (or a json: name)
    # Options a `blockdev-reopen` resets unless it repeats them (`blockjob.qemu.reopen`).
    direct: bool = False  # cache.direct
    no_flush: bool = False  # cache.no-flush
    detect_zeroes: str = "off"

    def bitmap(self, name: str) -> Bitmap | None:
        for bitmap in self.bitmaps:
            if bitmap.name == name:
                return bitmap
        return None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _refused(batch: Sequence[tuple[str, object]], exc: ReplyError) -> str:
    """The name of the command of `batch` QEMU refused."""
    return batch[exc.index][0]


# Parsers of replies. Each raises KeyError, TypeError, ValueError or OverflowError on a
# reply of another shape, which `Monitor._parsed` turns into a MonitorReplyError.

def _list(raw: object) -> list[Any]:
    if not isinstance(raw, list):
        raise TypeError(f"expected a list, got {type(raw).__name__}")
    return raw


def _mapping(raw: object) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise TypeError(f"expected an object, got {type(raw).__name__}")
    return raw


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise TypeError(f"'{key}' is a {type(value).__name__}, not a string")
    return value


def _exported(raw: object) -> dict[str, str]:
    return {_text(raw, "id"): _text(raw, "node-name") for raw in map(_mapping, _list(raw))}


def _job(item: object) -> QemuJob:
    raw = _mapping(item)
    error = raw.get("error")
    if error is not None and not isinstance(error, str):
        raise TypeError(f"'error' is a {type(error).__name__}, not a string")
    return QemuJob(
        id=_text(raw, "id"),
        type=_text(raw, "type"),
        status=_text(raw, "status"),
        current_progress=int(raw.get("current-progress", 0)),
        total_progress=int(raw.get("total-progress", 0)),
        error=error,
    )


def _jobs(raw: object) -> dict[str, QemuJob]:
    return {job.id: job for job in map(_job, _list(raw))}


def _io_failures(raw: object) -> dict[str, str]:
    # `device` is the job's id for a job started with one (every job libvirt starts).
    return {_text(job, "device"): _text(job, "io-status") for job in map(_mapping, _list(raw))
            if job.get("io-status", "ok") != "ok"}


def _bitmaps(raw: object) -> tuple[Bitmap, ...]:
    # Job-internal bitmaps (e.g. an active commit's) have no name: not ours to touch.
    return tuple(
        Bitmap(
            name=_text(item, "name"),
            recording=bool(item["recording"]),
            persistent=bool(item["persistent"]),
            busy=bool(item["busy"]),
            count=int(item["count"]),
            granularity=int(item["granularity"]),
            inconsistent=bool(item.get("inconsistent", False)),
        )
        for item in map(_mapping, _list(raw))
        if "name" in item
    )


def _nodes(raw: object) -> dict[str, BlockNode]:
    # Implicit filter nodes (commit_top, mirror_top) have generated names.
    return {node.node_name: node for node in map(_node, _list(raw))}


def _children(raw: object) -> tuple[dict[str, str], dict[str, str]]:
    """Each named node's `file` child and `backing` node, from one walk of the graph's
    edges."""
    graph = _mapping(raw)
    names = {node["id"]: node.get("name") for node in map(_mapping, _list(graph["nodes"]))}
    found: dict[str, dict[str, str]] = {"file": {}, "backing": {}}
    for edge in map(_mapping, _list(graph["edges"])):
        kind, parent, child = (found.get(edge["name"]), names.get(edge["parent"]),
                               names.get(edge["child"]))
        if kind is not None and parent and child:
            kind[str(parent)] = str(child)
    return found["file"], found["backing"]


def _graph_nodes(raw: object) -> set[str]:
    # The graph also has a node for each job and each device (block backend).
    return {str(node["name"]) for node in map(_mapping, _list(_mapping(raw)["nodes"]))
            if node.get("type") == "block-driver" and node.get("name")}


def _roots(raw: object) -> tuple[str, ...]:
    roots = []
    for device in map(_mapping, _list(raw)):
        inserted = device.get("inserted")
        if isinstance(inserted, Mapping) and "node-name" in inserted:
            roots.append(str(inserted["node-name"]))
    return tuple(roots)


def _node(item: object) -> BlockNode:
    raw = _mapping(item)
    cache = _mapping(raw.get("cache", {}))
    return BlockNode(
        node_name=_text(raw, "node-name"),
        driver=str(raw["drv"]),
        read_only=bool(raw["ro"]),
        bitmaps=_bitmaps(raw.get("dirty-bitmaps", [])),
        filename=_text(raw, "file") if "file" in raw else None,
        direct=bool(cache.get("direct", False)),
        no_flush=bool(cache.get("no-flush", False)),
        detect_zeroes=_text(raw, "detect_zeroes") if "detect_zeroes" in raw else "off",
    )


# The queries an observation is read from, one by one or in one batch (`view`, `observe`).
_JOBS: tuple[str, None] = ("query-jobs", None)
_NODES: tuple[str, Mapping[str, object]] = ("query-named-block-nodes", {"flat": True})
_GRAPH: tuple[str, None] = ("x-debug-query-block-graph", None)
_DEVICES: tuple[str, None] = ("query-block", None)
# The nodes by name, each named node's backing node and file child, the devices' root nodes.
View = tuple[dict[str, BlockNode], dict[str, str], dict[str, str], tuple[str, ...]]


class Monitor:
    """A synchronous QMP connection to one QEMU process.

    Use `Monitor.connect(path)` (or as a context manager) and `close()` when done.
    `timeout` bounds every command; `connect_timeout` bounds the whole connection
    attempt including retries while QEMU is still creating its socket.
    """

    def __init__(self, path: str, *, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._connection = Connection(path)
        self.observer: CommandObserver | None = None
        # The last `query-jobs` on this connection listed no block-stream job, and no
        # command sent since could start one. A job starts only by a QMP command and QEMU
        # serves this monitor to us alone, so no stream job can conclude meanwhile: the
        # graph queries need no `query-jobs` of their own (see `_refuse_if_unsafe`).
        self._stream_free = False
        # The jobs the last `query-jobs` saw concluded, while no dismiss was sent since
        # (see `concluded`).
        self._concluded: frozenset[str] = frozenset()

    @classmethod
    def connect(
        cls, path: str, *, timeout: float = 30.0, connect_timeout: float = GREETING_WAIT
    ) -> Monitor:
        monitor = cls(path, timeout=timeout)
        try:
            monitor._connect(connect_timeout)
        except BaseException:
            monitor.close()
            raise
        return monitor

    def _connect(self, connect_timeout: float) -> None:
        deadline = time.monotonic() + connect_timeout
        # A stopped or hung QEMU accepts and stays silent just the same.
        busy = MonitorBusyError(self.path, f"busy: held by another client, or QEMU is not "
                                           f"answering (no QMP greeting within "
                                           f"{connect_timeout:g} s)")
        while True:
            try:
                # QEMU serves one client at a time: a busy socket accepts the
                # connection but never greets, so the handshake is bounded too.
                self._connection.open(max(deadline, time.monotonic() + 0.05))
                return
            except TimeoutError:
                raise busy from None
            except BlockingIOError:  # QEMU's queue of waiting clients is full
                if time.monotonic() >= deadline:
                    raise busy from None
            except (ProtocolError, ReplyError) as exc:  # something that is not QEMU's QMP
                raise MonitorUnavailableError(self.path, _reason(exc)) from None
            except (OSError, EOFError) as exc:
                if time.monotonic() >= deadline:
                    raise MonitorUnavailableError(self.path, _reason(exc)) from None
            # The socket may not exist yet while QEMU starts.
            time.sleep(0.02)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        """Run one QMP command and return its `return` value."""
        (reply,) = self.execute_all([(command, arguments)])
        return reply

    def execute_all(self, batch: Sequence[tuple[str, Mapping[str, object] | None]]
                    ) -> list[Any]:
        """Run the commands of `batch`, sent at once (QEMU runs them in order), and
        return their `return` values; the first refusal raises once all replies are in."""
        for command, _ in batch:
            if self.observer is not None:
                self.observer("before", command)
            if command not in _START_NO_STREAM:
                self._stream_free = False
            if command in _DISMISSING:
                self._concluded = frozenset()
        try:
            replies = self._connection.commands(
                [(command, arguments or None) for command, arguments in batch],
                time.monotonic() + self.timeout)
        except ReplyError as exc:
            raise QMPCommandError(_refused(batch, exc), exc.error_class,
                                  exc.description) from None
        except TimeoutError:
            raise MonitorUnavailableError(
                self.path, f"timed out after {self.timeout:g} s") from None
        except (OSError, EOFError, ProtocolError) as exc:
            raise MonitorUnavailableError(self.path, _reason(exc)) from None
        for command, _ in batch:
            if self.observer is not None:
                self.observer("after", command)
        return replies

    def next_event(self, timeout: float) -> Mapping[str, Any] | None:
        """The next QMP event QEMU sent (queued since the connection was made), or None
        when none arrives within `timeout` seconds. Events only reach this
        connection: QEMU does not replay those sent while nobody was connected.
        MonitorUnavailableError once the connection is lost (QEMU gone): a follower
        must hear of it at once, not after waiting out its timeout for nothing."""
        deadline = deadline_after(timeout)
        try:
            return self._connection.event(deadline)
        except (OSError, EOFError, ProtocolError) as exc:
            raise MonitorUnavailableError(self.path, _reason(exc)) from None

    # -- queries ---------------------------------------------------------------

    def _parsed(self, command: str, parse: Callable[[object], _Parsed], raw: object) -> _Parsed:
        try:
            return parse(raw)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # int(Infinity)
            reason = f"no member {exc}" if isinstance(exc, KeyError) else _reason(exc)
            raise MonitorReplyError(
                self.path, f"unexpected reply to {command}: {reason}") from None

    def query_jobs(self) -> dict[str, QemuJob]:
        return self._seen_jobs(self.execute(*_JOBS))

    def _seen_jobs(self, raw: object) -> dict[str, QemuJob]:
        """The jobs of a `query-jobs` reply, noted for `_stream_free` and `concluded`."""
        jobs = self._parsed(_JOBS[0], _jobs, raw)
        self._stream_free = all(job.type != "stream" for job in jobs.values())
        self._concluded = frozenset(name for name, job in jobs.items() if job.status == CONCLUDED)
        return jobs

    def concluded(self, job_id: str) -> bool:
        """Whether job `job_id` is in QEMU, concluded, known without asking: the last
        `query-jobs` on this connection saw it concluded and no dismiss was sent since. A
        concluded job leaves QEMU only by a dismiss, and QEMU serves this monitor to us
        alone (the premise of `_stream_free` too)."""
        return job_id in self._concluded

    def io_failures(self) -> dict[str, str]:
        """The block jobs an I/O error stopped (`query-block-jobs`' `io-status`: `failed`
        or `nospace`), by job id: `query-jobs` shows them only `paused` or `standby`."""
        return self._parsed("query-block-jobs", _io_failures, self.execute("query-block-jobs"))

    def _refuse_if_unsafe(self, command: str) -> None:
        if not self._stream_free:
            self._check_safe(self.query_jobs(), command)

    def _check_safe(self, jobs: Mapping[str, QemuJob], command: str) -> None:
        # QEMU 7.2 segfaults on `query-named-block-nodes` while a concluded block-stream
        # job is not dismissed (README section `recovery`); the graph queries wait for it.
        unsafe = unsafe_streams(jobs)
        if unsafe:
            raise UnsafeQueryError(
                f"{self.path}: {command} not sent: block-stream job '{unsafe[0]}' is "
                f"concluded and not dismissed (QEMU 7.2 crashes on the node graph queries then)")

    def query_nodes(self) -> dict[str, BlockNode]:
        """The node graph (UnsafeQueryError while that would crash QEMU)."""
        self._refuse_if_unsafe(_NODES[0])
        return self._parsed(_NODES[0], _nodes, self.execute(*_NODES))

    def backing_of(self) -> dict[str, str]:
        """Each named node's backing node, from the graph's edges. QEMU has no stable
        query for them; `x-debug-query-block-graph` exists since QEMU 4.0."""
        return self.children_of()[1]

    def children_of(self) -> tuple[dict[str, str], dict[str, str]]:
        """Each named node's file child and backing node, from one graph query."""
        self._refuse_if_unsafe(_GRAPH[0])
        return self._parsed(_GRAPH[0], _children, self.execute(*_GRAPH))

    def node_names(self) -> set[str]:
        """The names of the graph's nodes: what `query_nodes()` lists, for a third of
        QEMU's CPU (it builds no image information)."""
        self._refuse_if_unsafe(_GRAPH[0])
        return self._parsed(_GRAPH[0], _graph_nodes, self.execute(*_GRAPH))

    def device_roots(self) -> tuple[str, ...]:
        """The node each block device (`query-block`) runs on, for devices with a medium."""
        return self._parsed(_DEVICES[0], _roots, self.execute(*_DEVICES))

    def block_exports(self) -> dict[str, str]:
        """The node each block export serves, by export id (a pull backup's NBD export);
        none on a QEMU without `query-block-exports` (before 5.2)."""
        try:
            raw = self.execute("query-block-exports")
        except QMPCommandError as exc:
            if exc.error_class == "CommandNotFound":
                return {}
            raise
        return self._parsed("query-block-exports", _exported, raw)

    def view(self) -> View:
        """`query_nodes()`, `children_of()` (backing, then file) and `device_roots()`,
        asked in one batch when no stream job can conclude meanwhile (see `_stream_free`),
        one by one else."""
        if not self._stream_free:
            nodes, (files, backing) = self.query_nodes(), self.children_of()
            return nodes, backing, files, self.device_roots()
        nodes, graph, devices = self.execute_all([_NODES, _GRAPH, _DEVICES])
        return self._view(nodes, graph, devices)

    def _view(self, nodes: object, graph: object, devices: object) -> View:
        files, backing = self._parsed(_GRAPH[0], _children, graph)
        return (self._parsed(_NODES[0], _nodes, nodes), backing, files,
                self._parsed(_DEVICES[0], _roots, devices))

    def observe(self) -> tuple[dict[str, QemuJob], *View]:
        """`query_jobs()`, then `view()`: one batch of four when no stream job can exist
        (see `_stream_free`), else the jobs first; UnsafeQueryError, with nothing of the
        graph asked, when they hold a concluded stream job."""
        if not self._stream_free:
            jobs = self.query_jobs()
            self._check_safe(jobs, _NODES[0])
            return (jobs, *self.view())
        jobs, nodes, graph, devices = self.execute_all([_JOBS, _NODES, _GRAPH, _DEVICES])
        return (self._seen_jobs(jobs), *self._view(nodes, graph, devices))

    # -- commands --------------------------------------------------------------

    def transaction(self, actions: Sequence[Mapping[str, object]]) -> None:
        self.execute("transaction", {"actions": list(actions)})

    def block_commit(
        self,
        job_id: str,
        *,
        device: str,
        base_node: str,
        top_node: str | None = None,
        speed: int = 0,
        auto_finalize: bool = True,
    ) -> None:
        # auto-dismiss off: a job that ends while nobody listens stays visible (concluded).
        arguments: dict[str, object] = {
            "job-id": job_id,
            "device": device,
            "base-node": base_node,
            "auto-finalize": auto_finalize,
            "auto-dismiss": False,
        }
        if top_node is not None:
            arguments["top-node"] = top_node
        if speed:
            arguments["speed"] = speed
        self.execute("block-commit", arguments)

    def job_finalize(self, job_id: str) -> None:
        self.execute("job-finalize", {"id": job_id})

    def job_dismiss(self, job_id: str) -> None:
        self.execute("job-dismiss", {"id": job_id})

    def job_cancel(self, job_id: str) -> None:
        self.execute("job-cancel", {"id": job_id})

    def job_complete(self, job_id: str) -> None:
        self.execute("job-complete", {"id": job_id})

    def blockdev_reopen(self, options: Sequence[Mapping[str, object]]) -> None:
        self.execute("blockdev-reopen", {"options": list(options)})

    def nbd_server_stop(self) -> None:
        self.execute("nbd-server-stop")

    def block_export_del(self, export_id: str) -> None:
        # `hard`: NBD clients are cut off, as nbd-server-stop cuts them off.
        self.execute("block-export-del", {"id": export_id, "mode": "hard"})

    def blockdev_del(self, node_name: str) -> None:
        self.execute("blockdev-del", {"node-name": node_name})
