"""A stop signal during the demo is never lost (`blockjob.demo.signals`), wherever it lands."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

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
