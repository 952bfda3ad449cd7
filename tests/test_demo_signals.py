"""`blockjob demo` stopped by SIGTERM or SIGHUP (or SIGINT) cleans up as at its end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import blockjob
from tests.support.qemu_fixtures import needs_qemu

REPO = Path(blockjob.__file__).resolve().parent.parent


def _processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        if text.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def _left_killed_on_failure(temp: Path) -> Iterator[None]:
    """A failed check leaves no process behind: whatever still names `temp` (the demo's
    QEMU, which a SIGKILLed demo cannot stop) is killed before the failure goes on."""
    try:
        yield
    except BaseException:
        for pid in _processes_mentioning(str(temp)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise


# (signal, the output line after which it is sent): QEMU just up; the commit running.
MOMENTS = [(signal.SIGTERM, "QEMU "), (signal.SIGHUP, "QEMU "), (signal.SIGINT, "QEMU "),
           (signal.SIGTERM, "The daemon started"), (signal.SIGHUP, "The daemon started")]


@needs_qemu
@pytest.mark.parametrize(("stop", "after"), MOMENTS,
                         ids=[f"{s.name}-{m.split()[-1]}" for s, m in MOMENTS])
def test_a_stopped_demo_leaves_no_qemu_and_no_temporary_directory(
    tmp_path: Path, stop: signal.Signals, after: str
) -> None:
    temp = tmp_path / "tmp"  # the demo's TMPDIR: its directory and QEMU's socket directory
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    with _left_killed_on_failure(temp):
        demo = subprocess.Popen([sys.executable, "-m", "blockjob", "demo"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, text=True)
        try:
            assert demo.stdout is not None
            first = demo.stdout.readline()  # QEMU is up and the story has begun
            assert first.startswith("QEMU "), first
            qemu = int(first.split()[1])
            # QEMU is seen where the last check looks (the demo's qemu-img and qemu-io runs
            # may be there too for a moment)
            assert qemu in _processes_mentioning(str(temp))
            while not first.startswith(after):
                first = demo.stdout.readline()
                assert first, "the demo ended before the moment to stop it"
            demo.send_signal(stop)
            _, errors = demo.communicate(timeout=120)  # a hang guard, not a speed claim
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
        assert demo.returncode == 128 + stop, errors
        assert f"stopped by {stop.name}" in errors and "Traceback" not in errors
        assert _processes_mentioning(str(temp)) == []
        assert list(temp.iterdir()) == []
