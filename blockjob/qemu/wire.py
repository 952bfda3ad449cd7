"""QMP on the wire: one synchronous connection to a QEMU monitor's Unix socket.

QMP is JSON objects, one per line: QEMU greets (`{"QMP": ...}`), the client negotiates
(`qmp_capabilities`), then every command gets a reply carrying the command's `id`, and
events (`{"event": ...}`) may arrive in between. Recovery sends one command (or a batch
of queries) at a time and waits for the replies, so a blocking socket with a deadline per
call is all it needs: a command costs one `sendall` and, usually, one `recv` (about 25 us
of our CPU, where an asyncio client spends about 450 us; docs/performance.md) and the
connection needs neither asyncio nor a QMP library at start-up.

Errors are plain Python ones, which `monitor` turns into its typed errors: `OSError` from
the socket (missing, refused, reset), `TimeoutError` when the deadline passes, `EOFError`
when QEMU closes the connection, `ProtocolError` for what is not QMP, `ReplyError` for a
command QEMU refused or could not parse.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

# Bytes asked of the socket at a time; a `query-named-block-nodes` reply of a small
# domain is a few KB, so one read usually holds a whole reply. Below glibc's mmap
# threshold (128 KiB): `recv` allocates this much for every read, and a larger buffer is
# mapped and unmapped each time (25 us a read, against 3 us).
_CHUNK = 1 << 16
# One message beyond this is no QMP reply we could use (a domain's node graph is KBs to a
# few MBs): refused rather than buffered without end.
MAX_MESSAGE = 64 << 20
_LONGEST_WAIT = 86400.0
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode


class ProtocolError(Exception):
    """The peer sent something that is not a QMP message."""


class ReplyError(Exception):
    """QEMU answered a command with an error; `index`: the command's place in its batch."""

    def __init__(self, error_class: str, description: str, index: int = 0) -> None:
        super().__init__(description)
        self.error_class = error_class
        self.description = description
        self.index = index


class _Exchanging(threading.local):
    depth = 0


_EXCHANGING = _Exchanging()


def exchanging() -> bool:
    """Whether this thread is between sending a QMP message and reading its reply (a
    signal handler asks: raising there would leave the reply unread)."""
    return _EXCHANGING.depth > 0


@contextmanager
def _exchange() -> Iterator[None]:
    _EXCHANGING.depth += 1
    try:
        yield
    finally:
        _EXCHANGING.depth -= 1


class Connection:
    """One client connection to a QMP socket (QEMU serves one client at a time).

    Every call takes a `deadline` (`time.monotonic()` terms) that bounds all of its
    socket operations. A reply whose command already timed out is recognised by its id
    and skipped; events are kept, in order, for `event()`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer known to hold no newline
        self._events: deque[dict[str, Any]] = deque()
        # Ids from a random start: a reply QEMU still owes a client killed meanwhile (its
        # ids counted from anywhere) is then never taken for one of ours. (`os.urandom`,
        # as `secrets` uses, without that module's imports: hmac, base64, random.)
        self._last_id = int.from_bytes(os.urandom(5), "big")

    def open(self, deadline: float) -> None:
        """Connect, read the greeting and negotiate capabilities before `deadline`.

        A socket another client holds accepts the connection and stays silent: that
        is a `TimeoutError` here, as is any other missing greeting."""
        if self._sock is not None:
            raise ProtocolError("already connected")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(_remaining(deadline))
            with _exchange():
                sock.connect(self.path)
                self._sock = sock
                greeting = self._receive(deadline)
                # An event, or the reply to a command of a client killed meanwhile, can
                # come first: QEMU may still be sending what it queued as that client left.
                while "event" in greeting or _is_reply(greeting):
                    if "event" in greeting:
                        self._events.append(greeting)
                    greeting = self._receive(deadline)
                if not isinstance(greeting.get("QMP"), Mapping):
                    raise ProtocolError(f"expected the QMP greeting, got {_brief(greeting)}")
            self.command("qmp_capabilities", None, deadline)
        except BaseException:
            self.close()
            sock.close()
            raise

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._buffer.clear()
        self._scanned = 0

    def command(self, name: str, arguments: Mapping[str, object] | None,
                deadline: float) -> Any:
        """Send command `name` and return its reply's `return` value (ReplyError when
        QEMU refused it)."""
        (result,) = self.commands([(name, arguments)], deadline)
        return result

    def commands(self, batch: Sequence[tuple[str, Mapping[str, object] | None]],
                 deadline: float) -> list[Any]:
        """Send every command of `batch` at once and return their `return` values in
        order. QEMU runs a connection's commands one after another in the order sent, so
        this is the sequence of `command` calls with one wait instead of one each. The
        first refusal raises ReplyError once every reply is in."""
        first = self._last_id + 1
        self._last_id += len(batch)
        data = b"".join(_request(first + offset, name, arguments)
                        for offset, (name, arguments) in enumerate(batch))
        replies: dict[int, dict[str, Any]] = {}
        awaited = set(range(first, self._last_id + 1))
        unparsed: dict[str, Any] = {}  # the first error without an id, if any
        with _exchange():
            sock = self._connected()
            sock.settimeout(_remaining(deadline))
            sock.sendall(data)
            while awaited:
                reply = self._receive(deadline)
                ident = reply.get("id")
                if "event" in reply:
                    self._events.append(reply)
                elif "id" not in reply and "error" in reply and not unparsed:
                    unparsed = reply
                    awaited = {self._send_marker(sock)}
                elif isinstance(ident, int):
                    replies[ident] = reply
                    awaited.discard(ident)
                # else: a further error for a request QEMU could not parse
        # A late reply to a command that timed out earlier is in `replies` under its own
        # id, never taken for one of these.
        return [_result(name, replies.get(first + offset, unparsed), offset)
                for offset, (name, _) in enumerate(batch)]

    def _send_marker(self, sock: socket.socket) -> int:
        """Send a harmless request and return its id. QEMU answers a request it cannot
        parse (bad JSON or UTF-8) with errors that carry no id, one or more of them, so
        no reply of that batch would ever name it. QEMU answers in the order it reads,
        so once the marker's reply is in, every request of the batch is answered by id
        or was never parsed: those take the first id-less error. An id-less error left
        from a request that timed out earlier is taken by none."""
        self._last_id += 1
        sock.sendall(_request(self._last_id, "query-version", None))
        return self._last_id

    def event(self, deadline: float) -> dict[str, Any] | None:
        """The next event (kept from earlier or read now), None once `deadline` passes."""
        if self._events:
            return self._events.popleft()
        with _exchange():
            while True:
                try:
                    message = self._receive(deadline)
                except TimeoutError:
                    if time.monotonic() < deadline:
                        continue  # a day of the wait served; the rest follows
                    return None
                if "event" in message:
                    return message

    def _connected(self) -> socket.socket:
        if self._sock is None:
            raise EOFError("the connection is closed")
        return self._sock

    def _receive(self, deadline: float) -> dict[str, Any]:
        """The next message; a partial one stays buffered when the deadline passes."""
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(self._buffer)
                if self._scanned > MAX_MESSAGE:
                    raise ProtocolError(f"a message over {MAX_MESSAGE} bytes")
                self._fill(deadline)
                continue
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._scanned = 0
            if not line.strip():
                continue
            try:
                message = _DECODE(line.decode())
            except ValueError as exc:  # UnicodeDecodeError is a ValueError too
                raise ProtocolError(f"not a JSON message: {exc}") from None
            if not isinstance(message, dict):
                raise ProtocolError(f"not a JSON object: {_brief(message)}")
            return message

    def _fill(self, deadline: float) -> None:
        sock = self._connected()
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(_CHUNK)
        if not chunk:
            raise EOFError("QEMU closed the connection")
        self._buffer += chunk


def _is_reply(message: Mapping[str, Any]) -> bool:
    return "id" in message and ("return" in message or "error" in message)


def _request(ident: int, name: str, arguments: Mapping[str, object] | None) -> bytes:
    message: dict[str, object] = {"execute": name, "id": ident}
    if arguments is not None:
        message["arguments"] = arguments
    return _ENCODE(message).encode() + b"\n"


def _result(name: str, reply: Mapping[str, Any], index: int) -> Any:
    if "return" in reply:
        return reply["return"]
    error = reply.get("error")
    if isinstance(error, Mapping):
        raise ReplyError(str(error.get("class", "")), str(error.get("desc", "")), index)
    raise ProtocolError(f"{name}: a reply with neither return nor error: {_brief(reply)}")


def _remaining(deadline: float) -> float:
    """Seconds to `deadline`, at most a day: the socket takes no longer timeout (an
    event's wait may be endless), so a longer wait is served a day at a time."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return min(remaining, _LONGEST_WAIT)


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
