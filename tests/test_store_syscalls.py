"""Every system call of a save, under strace's fault injection: SIGKILL on entering it, or an
error in its place. The file is the old version or the new one, a scan leaves no leftover
and no failure, the next owner locks and saves at once, and an error is a StoreError.

A forked child, already importing everything, waits for strace to attach (`strace -p`), so
each run costs a fork and a strace, not a Python start-up; the system calls are counted
from the attach, per name, as strace's `when=` counts them. `make test` runs a one-off save
with SIGKILL and EIO; `make fuzz` (BLOCKJOB_SYSCALL_FULL=1) also an owner that loads and
saves twice, and ENOSPC.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from blockjob.store import StatusStore, StoreError
from tests.test_store_support import child_process, exit_code, scratch_files, version

STRACE = shutil.which("strace")
FULL = os.environ.get("BLOCKJOB_SYSCALL_FULL", "") not in ("", "0")
VERSIONS = [version("vm1", note, 16 * 1024) for note in ("old", "new", "newer")]

pytestmark = [pytest.mark.fuzz,
              pytest.mark.skipif(STRACE is None, reason="strace is not installed")]


def _save(store: StatusStore) -> None:
    store.save(VERSIONS[1])


def _owner_saves_twice(store: StatusStore) -> None:
    with store.owned("vm1") as owner:
        owner.load()
        owner.save(VERSIONS[1])
        owner.save(VERSIONS[2])


FLOWS: dict[str, Callable[[StatusStore], None]] = {"save": _save}
INJECTIONS = ["signal=KILL", "error=EIO"]
if FULL:
    FLOWS["owner saves twice"] = _owner_saves_twice
    INJECTIONS.append("error=ENOSPC")


def run_traced(directory: Path, flow: Callable[[StatusStore], object], log: Path,
         inject: str | None) -> tuple[int, str]:
    """Run `flow` in a forked child under strace (injecting `inject`); its exit code (-9 if
    killed) and, if it raised, the exception's type and message."""
    said_read, said_write = os.pipe()
    ready_read, ready_write = os.pipe()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])  # the child inherits it

    def child() -> None:
        os.close(said_read)
        store = StatusStore(directory)
        gc.collect()  # a leaked file of the parent's, closed by the collector mid-flow,
        gc.disable()  # would be one more close: strace's counts would hit another call
        # strace attaches once this is said, and nothing but the wait comes between: a
        # system call the flows never make, so their counts do not depend on it.
        os.write(ready_write, b"r")
        signal.sigwait([signal.SIGUSR1])
        try:
            flow(store)
        except Exception as exc:  # reported to the test, which judges it
            os.getppid()  # marks the end of the flow in the trace
            os.write(said_write, f"{type(exc).__name__}: {exc}".encode())
            raise
        os.getppid()

    with contextlib.ExitStack() as stack:
        try:
            pid = stack.enter_context(child_process(child))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
        os.close(said_write)
        os.close(ready_write)
        with os.fdopen(ready_read, "rb") as ready:
            assert ready.read(1) == b"r"
        options = ["-e", "trace=all"] if inject is None else ["-e", f"inject={inject}"]
        # As a context manager, so its pipe is closed: every child gets the same descriptors.
        with subprocess.Popen([str(STRACE), "-o", str(log), *options, "-p", str(pid)],
                              stderr=subprocess.PIPE, text=True) as tracer:
            assert tracer.stderr is not None
            attached = tracer.stderr.readline()
            assert "attached" in attached, attached
            os.kill(pid, signal.SIGUSR1)
            code = exit_code(pid)
        with os.fdopen(said_read, "rb") as said:
            return code, said.read().decode()


def _plan(log: Path) -> list[tuple[str, int, str]]:
    """The flow's system calls in the trace: (name, how many of that name so far, line)."""
    counts: collections.Counter[str] = collections.Counter()
    plan = []
    for line in log.read_text().splitlines():
        found = re.match(r"(\w+)\(", line)
        if found is None or found.group(1) == "rt_sigtimedwait":  # the go-ahead
            continue
        name = found.group(1)
        if name == "getppid":
            break
        counts[name] += 1
        plan.append((name, counts[name], line))
    assert plan, log.read_text()
    return plan


def _hit(log: Path) -> str:
    """The system call the injection hit: the one failed, or the last one entered."""
    lines = [line for line in log.read_text().splitlines() if re.match(r"\w+\(", line)]
    failed = [line for line in lines if line.endswith("(INJECTED)")]
    return failed[0] if failed else lines[-1]


def _shape(line: str) -> str:
    """A system call as another run makes it: its name and first path (scratch token left
    out). Not its descriptors: the child inherits what the parent has open at the fork."""
    name, _, arguments = line.partition("(")
    path = re.search(r'"(/[^"]*)"', arguments)
    return f"{name} {re.sub(r'[.][0-9a-f]{16}[.]', '.*.', path.group(1)) if path else ''}"


def _fresh(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    StatusStore(directory).save(VERSIONS[0])


@pytest.mark.parametrize("inject", INJECTIONS)
@pytest.mark.parametrize("flow", FLOWS)
def test_a_save_killed_or_failed_at_any_system_call_leaves_a_whole_file(
    tmp_path: Path, flow: str, inject: str
) -> None:
    directory, log = tmp_path / "status", tmp_path / "strace.log"
    _fresh(directory)
    code, said = run_traced(directory, FLOWS[flow], log, None)
    if code != 0:
        pytest.skip(f"strace cannot trace here: {said or log.read_text()[-300:]}")
    plan = _plan(log)
    whole = {doc.data for doc in VERSIONS}
    seen = set()
    for name, count, line in plan:
        where = f"{inject} at {name} #{count}: {line}"
        _fresh(directory)
        code, said = run_traced(directory, FLOWS[flow], log, f"{name}:{inject}:when={count}")
        assert _shape(_hit(log)) == _shape(line), f"{where}: hit {_hit(log)}"
        if inject == "signal=KILL":
            assert code == -9, where
        else:
            assert code in (0, 1), where  # an error that does not matter, or a StoreError
            assert code == 0 or said.startswith(("StoreError:", "StoreConflictError:")), \
                f"{where}: {said}"
        path = directory / "vm1.xml"
        data = path.read_bytes()
        assert data in whole, f"torn file after {where}"
        seen.add(data)
        store = StatusStore(directory)
        report = store.scan()
        assert report.failures == [], where
        assert scratch_files(directory) == [], where
        try:
            with store.owned("vm1", timeout=0) as owner:
                assert owner.load().dumps() == data
                owner.save(VERSIONS[0])
        except StoreError as exc:
            pytest.fail(f"after {where}: {exc}")
    print(f"\n{flow}, {inject}: {len(plan)} system calls, each one hit")
    assert len(seen) > 1, "no injection fell after the new version was in place"
