"""SIGTERM and SIGHUP end the demo the way Ctrl-C does: by an exception raised in the main
thread, which unwinds every `with` block, so QEMU is stopped and temporary files go.

Without this, either signal kills the process at once (the default action) and leaves QEMU
running, since QEMU runs in its own session and never sees the signal. The exception is
held back where it would cut a step in two: inside `deferred` blocks, and during a QMP
exchange (bounded by the monitor's timeout, whose reply an exception would leave unread);
a timer looks again every few milliseconds. Nor is a stop ever lost: one raised where
Python cannot pass it on (a `__del__`, a weakref callback) is raised again soon after, and
a block that ends normally after a stop signal raises it at its end.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType

from blockjob.qemu.wire import exchanging

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_RECHECK_SECONDS = 0.01


class Stopped(BaseException):
    """A stop signal arrived; like KeyboardInterrupt, not an error `except Exception` sees."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


class _Pending:
    depth = 0  # how many `deferred` blocks the main thread is in
    signum: int | None = None  # the stop signal not raised yet
    received: int | None = None  # the stop signal that arrived in this block, raised or not


def _raise_when_safe() -> None:
    if _Pending.signum is None or _Pending.depth:
        return  # nothing to raise, or the end of the `deferred` block raises it
    if exchanging():
        signal.setitimer(signal.ITIMER_REAL, _RECHECK_SECONDS)
        return
    signum, _Pending.signum = _Pending.signum, None
    raise Stopped(signum)


def _stop(signum: int, frame: FrameType | None) -> None:
    del frame
    # The first signal starts the clean-up; later ones must not interrupt it.
    for each in SIGNALS:
        signal.signal(each, signal.SIG_IGN)
    _Pending.signum = _Pending.received = signum
    _raise_when_safe()


def _recheck(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    _raise_when_safe()


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[None]:
    """Within the block (main thread), SIGINT, SIGTERM and SIGHUP raise `Stopped`."""
    previous = {each: signal.signal(each, _stop) for each in SIGNALS}
    previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, _recheck)
    unraisable = sys.unraisablehook

    def raise_again(hook: sys.UnraisableHookArgs) -> None:
        # Python drops an exception a finalizer raises: re-arm the stop instead.
        if isinstance(hook.exc_value, Stopped):
            _Pending.signum = hook.exc_value.signum
            signal.setitimer(signal.ITIMER_REAL, _RECHECK_SECONDS)
        else:
            unraisable(hook)

    sys.unraisablehook = raise_again
    try:
        yield
        if _Pending.received is not None:  # swallowed by someone, or came after the last check
            raise Stopped(_Pending.received)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _Pending.signum = _Pending.received = None
        sys.unraisablehook = unraisable
        for each, handler in previous.items():
            signal.signal(each, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold back `Stopped` until the block ends: for a step that must not be cut in two,
    like starting a process and recording its pid (else nobody would stop it)."""
    _Pending.depth += 1
    try:
        yield
    finally:
        _Pending.depth -= 1
        _raise_when_safe()
