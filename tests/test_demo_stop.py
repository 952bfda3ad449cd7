"""A stop signal during the demo is never lost (`blockjob.demo.signals`), wherever it lands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from blockjob.demo.images import run_tool
from blockjob.demo.qemu import QemuProcess
from blockjob.demo.signals import Stopped, stopping_on_signals


class _SignalledWhileCollected:
    """Sends SIGTERM to this process from its finalizer: the handler runs there."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # bytecodes, so the handler runs inside this finalizer
            pass


def _spin(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.001)


def test_a_stop_raised_inside_a_finalizer_is_raised_again_outside(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reached_the_end = False
    with pytest.raises(Stopped) as stopped, stopping_on_signals():
        _SignalledWhileCollected()  # collected at once: its finalizer gets the signal
        _spin(30)  # a hang guard: the re-armed stop ends this well before
        reached_the_end = True
    assert stopped.value.signum == signal.SIGTERM
    assert not reached_the_end
    assert "Exception ignored" not in capsys.readouterr().err


def test_a_stop_someone_swallowed_is_raised_when_the_block_ends() -> None:
    with pytest.raises(Stopped) as stopped, stopping_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            _spin(30)
        except BaseException:  # the careless code under test
            pass
    assert stopped.value.signum == signal.SIGHUP


def test_after_the_block_nothing_is_left_armed() -> None:
    hook, term = sys.unraisablehook, signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped), stopping_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        _spin(30)
    assert sys.unraisablehook is hook
    assert signal.getsignal(signal.SIGTERM) is term
    with stopping_on_signals():
        pass  # a block without a signal ends normally: no stop is carried over


# A guard against a hang (the bug tested below), not a speed claim.
HANG_GUARD = 30


class _SignalledHolding:
    """A Popen's waitpid lock that SIGTERM reaches just after it is taken: the handler then
    runs between `acquire` and the `try` that would release it."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.signalled = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking and timeout == -1:  # where the demo hung: fail instead
            if not self.lock.acquire(timeout=HANG_GUARD):
                raise AssertionError("the waitpid lock was kept: wait() would block forever")
            return True
        taken = self.lock.acquire(blocking, timeout)
        if taken and not self.signalled:
            self.signalled = True
            os.kill(os.getpid(), signal.SIGTERM)
        return taken

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Popen(subprocess.Popen[bytes]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        state = vars(self)  # `_waitpid_lock` is the Popen's own, unknown to typeshed
        self.watched = _SignalledHolding(state["_waitpid_lock"])
        state["_waitpid_lock"] = self.watched


def test_a_stop_never_cuts_into_the_qemu_process(tmp_path: Path) -> None:
    # It kept the Popen's lock: the clean-up's `wait()` then blocked forever, QEMU a zombie
    # (`blockjob demo` hung after Ctrl-C about once in twenty).
    qemu = QemuProcess(tmp_path / "qemu.log")
    process = _Popen(["sleep", "600"])  # stands for QEMU: only the process matters here
    qemu._proc = process
    try:
        with pytest.raises(Stopped), stopping_on_signals():
            qemu.connect()
        assert process.watched.signalled and not process.watched.lock.locked()
        qemu.stop()  # returns: the process is reaped
        assert qemu.pid is None and process.returncode is not None
    finally:
        process.kill()  # nothing is left behind, whatever failed above


def test_a_stop_never_cuts_into_an_image_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[_Popen] = []

    def popen(*args: Any, **kwargs: Any) -> _Popen:
        made.append(_Popen(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    with pytest.raises(Stopped), stopping_on_signals():
        run_tool(["true"])
    [tool] = made
    assert tool.watched.signalled and not tool.watched.lock.locked()
    assert tool.returncode == 0
