"""`recover --jobs N` over fleets of real QEMUs the way the field breaks it: a process short
of descriptors or threads, SIGKILL and Ctrl-C at any instant, QEMUs dead, stopped, silent
or killed mid-run, broken files beside good ones, two recoveries at once, a tracker holding
a domain.

Every outcome is checked against a fresh observation: each QEMU asked again
(`bench.fleet.reconciled`, `end_state`: jobs, nodes, bitmaps and their recording state) and
each status file read again. `make test` runs one round of each; `make fuzz` runs
`BLOCKJOB_SCALE_ROUNDS` rounds of the kill and interrupt campaigns at random instants, and
the mixed fleet at --jobs 1 and 16.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pytest

import blockjob
from bench.fleet import Templates, end_state, fleet, reconciled
from blockjob.demo.lab import Lab
from blockjob.qemu.monitor import MonitorUnavailableError
from blockjob.recovery import recover
from blockjob.store.status_store import StatusStore
from blockjob.tracker import JobTracker
from tests.support.campaign import fuzz_only
from tests.support.qemu_fixtures import QEMU_MARKS, wait_until
from tests.test_recovery_parallel_qemu import silent_monitor
from tests.test_store_support import status_bytes

pytestmark = QEMU_MARKS
REPO = Path(__file__).resolve().parent.parent
# Only keeps a broken implementation from hanging the suite; nothing here is timed.
LIMIT = 120.0
ROUNDS = int(os.environ.get("BLOCKJOB_SCALE_ROUNDS", "10"))

# `recover` in a child whose limits are set once its imports are done: `spare` descriptors
# above those open then (none given: the limit as inherited), and only `threads` worker
# threads started (none given: all), the rest refused as at RLIMIT_NPROC. It says "ready"
# on stdout when `main` is about to start: a Ctrl-C during the imports before it would stop
# this script, not `recover`.
READY = "ready\n"
_CHILD = f"""
import os, resource, signal, sys, threading
import blockjob.cli.recover
from blockjob.cli import main

# Ctrl-C as from a terminal: a test run started as a background job (`make test &`)
# inherits SIGINT ignored, and Python then leaves it so.
signal.signal(signal.SIGINT, signal.default_int_handler)

spare, threads, *argv = sys.argv[1:]
if spare:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd")) - 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + int(spare), hard))
if threads:
    started, start = [], threading.Thread.start
    def refusing(thread):
        if thread.name.startswith("recover_"):
            if len(started) >= int(threads):
                raise RuntimeError("can't start new thread")
            started.append(thread)
        start(thread)
    threading.Thread.start = refusing
sys.stdout.write({READY!r})
sys.stdout.flush()
sys.exit(main(argv))
"""


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates(tmp_path_factory.mktemp("templates") / "images")


@contextmanager
def _recover(*argv: str, spare: int | None = None,
             threads: int | None = None) -> Iterator[subprocess.Popen[str]]:
    """`blockjob recover ARGV` running in a child process; killed if still there at the end."""
    command = [sys.executable, "-c", _CHILD, "" if spare is None else str(spare),
               "" if threads is None else str(threads), "recover", *argv]
    child = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def _run(*argv: str, spare: int | None = None,
         threads: int | None = None) -> tuple[int, str, str]:
    with _recover(*argv, spare=spare, threads=threads) as child:
        out, err = child.communicate(timeout=LIMIT)
    assert out.startswith(READY), err
    return child.returncode, out.removeprefix(READY), err


def _directories(labs: list[Lab]) -> list[str]:
    return [str(lab.directory) for lab in labs]


def _assert_all_reconciled(labs: list[Lab]) -> None:
    """Fresh looks at every QEMU and file: each domain finished, and all alike (the
    domains are copies of one, so alike is what an uninterrupted run leaves)."""
    assert [lab.name for lab in labs if not reconciled(lab)] == []
    assert len({end_state(lab, []) for lab in labs}) == 1


def _statuses(out: str) -> list[str]:
    return [domain["status"] for domain in json.loads(out)["domains"]]


def test_a_low_descriptor_limit_costs_parallelism_not_domains(
    tmp_path: Path, templates: Templates
) -> None:
    # 12 domains in flight needed 36 descriptors; with 20 spare, one domain in three
    # failed ("Too many open files") and needed a rerun. Now fewer run at once.
    with fleet(tmp_path / "domains", 12, templates) as labs:
        code, out, err = _run("--json", "--jobs", "1000",
                              *[str(lab.status_path) for lab in labs], spare=20)
        assert (code, err) == (0, "")
        assert _statuses(out) == ["reconciled"] * 12
        _assert_all_reconciled(labs)


@pytest.mark.parametrize("spare", [1, 2])
def test_descriptors_short_for_one_domain_leave_each_domain_reported_and_a_rerun_finishes(
    tmp_path: Path, templates: Templates, spare: int
) -> None:
    # One spare descriptor: the lock is taken, the status file cannot be read; two: the
    # domain is read and QEMU reached, the save cannot open its scratch file. Either way
    # each domain needs attention (exit 1: the files are fine, not unusable), says why,
    # and its lock is let go: a rerun with descriptors finishes every one.
    with fleet(tmp_path / "domains", 3, templates) as labs:
        paths = [str(lab.status_path) for lab in labs]
        code, out, err = _run("--json", "--jobs", "16", *paths, spare=spare)
        assert (code, err) == (1, "")
        domains = json.loads(out)["domains"]
        assert [(d["file"], d["status"], d["unusable"]) for d in domains] == [
            (path, "attention", False) for path in paths]
        for domain in domains:
            errors = [domain["error"]] + [job["error"] for job in domain["jobs"]]
            assert any(error and "Too many open files" in error for error in errors), domain
        assert _run("--jobs", "16", *paths)[0] == 0
        _assert_all_reconciled(labs)


@pytest.mark.parametrize("threads", [0, 2])
def test_threads_refused_leave_the_domains_to_the_threads_started(
    tmp_path: Path, templates: Templates, threads: int
) -> None:
    # A refused thread ended the run with a traceback, most domains never started.
    with fleet(tmp_path / "domains", 6, templates) as labs:
        code, out, err = _run("--json", "--jobs", "16", *_directories(labs), threads=threads)
        assert (code, err) == (0, "")
        assert _statuses(out) == ["reconciled"] * 6
        _assert_all_reconciled(labs)


@contextmanager
def _stopped(lab: Lab) -> Iterator[None]:
    """QEMU stopped (SIGSTOP: it accepts connections and never greets), continued after."""
    pid = lab.qemu.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_stopped_qemu_is_reported_as_not_answering_and_the_others_are_recovered(
    tmp_path: Path, templates: Templates
) -> None:
    # It was reported only as "held by another client", which sends an operator looking
    # for a client that does not exist.
    with fleet(tmp_path / "domains", 3, templates) as labs:
        with _stopped(labs[1]):
            # The default wait: the healthy QEMUs must greet within it on a loaded host.
            code, out, err = _run("--json", "--connect-timeout", "3", "--jobs", "16",
                                  *_directories(labs))
        assert (code, err) == (1, "")
        domains = json.loads(out)["domains"]
        assert [d["status"] for d in domains] == ["reconciled", "attention", "reconciled"]
        assert "QEMU is not answering (no QMP greeting within 3 s)" in domains[1]["error"]
        _assert_all_reconciled([labs[0], labs[2]])


def _saved(labs: list[Lab], before: list[int]) -> bool:
    """Whether some status file was saved (a save renames a new inode over the name)."""
    return any(lab.status_path.stat().st_ino != inode
               for lab, inode in zip(labs, before, strict=True))


def _interrupted_then_rerun(tmp_path: Path, templates: Templates, how: signal.Signals,
                            count: int, delay: float | None) -> None:
    """Signal a `recover --jobs 16` over `count` domains after the first save (or after
    `delay` seconds), check what it says, then rerun: every domain as an uninterrupted run
    leaves it, and the rerun, run again, changes nothing."""
    with fleet(tmp_path / "domains", count, templates) as labs:
        before = [lab.status_path.stat().st_ino for lab in labs]
        with _recover("--jobs", "16", *_directories(labs)) as child:
            assert child.stdout is not None and child.stdout.readline() == READY
            if delay is None:
                wait_until(lambda: _saved(labs, before) or child.poll() is not None,
                           "a first save", LIMIT, interval=0.001)
            else:
                time.sleep(delay)
            child.send_signal(how)
            _, err = child.communicate(timeout=LIMIT)
        if how is signal.SIGINT:
            assert child.returncode in (130, 0, -signal.SIGINT), err  # 0: done first
            assert "Traceback" not in err
        code, out, err = _run("--json", "--jobs", "16", *_directories(labs))
        assert (code, err) == (0, "")
        assert _statuses(out) == ["reconciled"] * count
        _assert_all_reconciled(labs)
        states = [end_state(lab, []) for lab in labs]
        assert _run("--jobs", "16", *_directories(labs))[0] == 0
        assert [end_state(lab, []) for lab in labs] == states, "a rerun changes nothing"


SIGNALS = pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT],
                                  ids=["SIGKILL", "SIGINT"])


@SIGNALS
def test_a_signal_mid_run_then_a_rerun_ends_as_an_uninterrupted_run(
    tmp_path: Path, templates: Templates, how: signal.Signals
) -> None:
    _interrupted_then_rerun(tmp_path, templates, how, 12, None)


def test_a_second_ctrl_c_ends_the_run_while_domains_hang_in_flight(
    tmp_path: Path, templates: Templates
) -> None:
    # The first Ctrl-C lets the domains in flight finish; two of them wait on monitors
    # that never answer (each bounded by --timeout, here 600 s). The second Ctrl-C stopped
    # the wait for one thread only: the other, not a daemon, kept the process alive until
    # its own timeout.
    with fleet(tmp_path / "domains", 3, templates) as labs:
        servers = []
        with ExitStack() as stack:
            for number, lab in enumerate(labs[:2]):
                sock = tmp_path / f"silent{number}.sock"
                lab.status_path.write_bytes(lab.status_path.read_bytes().replace(
                    lab.monitor_path.encode(), str(sock).encode()))
                # Hung to the end of the test, however long a loaded machine takes.
                servers.append(stack.enter_context(silent_monitor(sock, hold=600)))
            with _recover("--timeout", "600", "--jobs", "4", *_directories(labs)) as child:
                assert child.stdout is not None and child.stdout.readline() == READY
                for server in servers:
                    assert server.asked.wait(LIMIT)
                wait_until(lambda: reconciled(labs[2]), "the third domain", LIMIT)
                child.send_signal(signal.SIGINT)
                # The first lets the hung domains finish: still there. The pause also
                # keeps the two Ctrl-Cs from landing as one.
                with pytest.raises(subprocess.TimeoutExpired):
                    child.communicate(timeout=2)
                child.send_signal(signal.SIGINT)
                # Gone well before the hung domains' 600 s.
                _, err = child.communicate(timeout=LIMIT)
        assert child.returncode == 130, err
        assert "Traceback" not in err


@fuzz_only
@SIGNALS
def test_signals_at_random_instants_then_a_rerun_end_as_an_uninterrupted_run(
    tmp_path: Path, templates: Templates, how: signal.Signals
) -> None:
    chance = random.Random(f"{how.name}")
    for round_ in range(ROUNDS):
        _interrupted_then_rerun(tmp_path / str(round_), templates, how, 20,
                                chance.uniform(0, 0.5))


def test_two_parallel_recoveries_of_one_fleet_do_each_domain_once(
    tmp_path: Path, templates: Templates
) -> None:
    with fleet(tmp_path / "domains", 12, templates) as labs:
        directories = _directories(labs)
        with _recover("--json", "--jobs", "16", *directories) as first, \
                _recover("--json", "--jobs", "16", *directories[::-1]) as second:
            runs = [child.communicate(timeout=LIMIT) for child in (first, second)]
        assert [first.returncode, second.returncode] == [0, 0], runs
        done: dict[str, int] = {}
        for out, _ in runs:
            for domain in json.loads(out.removeprefix(READY))["domains"]:
                assert domain["status"] == "reconciled"
                if any(job["done"] for job in domain["jobs"]):
                    done[domain["file"]] = done.get(domain["file"], 0) + 1
        assert sorted(done) == sorted(str(lab.status_path) for lab in labs)
        assert set(done.values()) == {1}, "each domain's steps were run by one process"
        _assert_all_reconciled(labs)


def test_a_parallel_recovery_reports_the_domain_a_tracker_holds_and_finishes_the_rest(
    tmp_path: Path, templates: Templates
) -> None:
    with fleet(tmp_path / "domains", 6, templates) as labs:
        held = labs[2]
        with JobTracker(StatusStore(held.directory), held.name, lock_timeout=LIMIT):
            # The tracker caught the domain's job up as it opened; the run meets its lock.
            before = held.status_path.read_bytes()
            report = recover([lab.status_path for lab in labs], jobs=16, owner_timeout=0.2)
            assert held.status_path.read_bytes() == before
        assert [d.status for d in report.domains] == ["reconciled"] * 2 + ["attention"] + [
            "reconciled"] * 3
        assert "is owned by another process or thread" in (report.domains[2].error or "")
        _assert_all_reconciled(labs)
        again = recover([lab.status_path for lab in labs], jobs=16)
        assert again.ok and all(domain.jobs == [] for domain in again.domains)


def _qemu_killed_mid_run(tmp_path: Path, templates: Templates, chance: random.Random) -> bool:
    """SIGKILL one domain's QEMU at a random QMP command or save of an 8-domain, 8-thread
    run. Fresh looks: every other domain reported reconciled and finished in QEMU; the
    victim reported reconciled only if its file was done with before the kill, else in
    attention with its file still loadable. Whether the run got as far as the kill."""
    with fleet(tmp_path / "domains", 8, templates) as labs:
        victim = labs[chance.randrange(len(labs))]
        at = chance.randint(1, 120)
        calls = []
        lock = threading.Lock()

        def probe(when: str, what: str) -> None:
            with lock:
                calls.append(what)
                if len(calls) == at:
                    victim.qemu.kill()

        report = recover([lab.status_path for lab in labs], jobs=8, probe=probe)
        for lab, domain in zip(labs, report.domains, strict=True):
            if lab is not victim or len(calls) < at:
                assert domain.status == "reconciled" and reconciled(lab), domain
            elif domain.status == "reconciled":
                assert blockjob.load(lab.status_path).jobs == []
            else:
                assert "QEMU monitor unavailable" in str(domain.lines()), domain
                blockjob.load(lab.status_path)
        return len(calls) >= at


def test_a_qemu_killed_mid_run_costs_its_domain_alone(
    tmp_path: Path, templates: Templates
) -> None:
    assert _qemu_killed_mid_run(tmp_path, templates, random.Random(7))


@fuzz_only
def test_qemus_killed_at_random_commands_cost_their_domain_alone(
    tmp_path: Path, templates: Templates
) -> None:
    chance = random.Random("qemu")
    for round_ in range(ROUNDS):
        _qemu_killed_mid_run(tmp_path / str(round_), templates, chance)


def _mixed_fleet(root: Path, templates: Templates, jobs: int) -> tuple[int, str, list[bytes]]:
    """A fleet the field leaves behind, recovered with `--jobs JOBS`: a QEMU gone (socket
    refused), one whose socket is gone too, one stopped (accepts, never greets), a monitor
    that greets then answers nothing, a domain named twice and by another spelling, and a
    directory of an empty, a broken, a directory and a symlinked status file beside a good
    one. Returns the exit code, the JSON report with per-run paths replaced, and the status
    files of the domains that cannot be recovered, as left."""
    with fleet(root / "domains", 8, templates) as labs:
        extra = root / "extra"
        extra.mkdir()
        (extra / "vm1.xml").write_bytes(status_bytes("vm1"))
        (extra / "empty.xml").write_bytes(b"")
        (extra / "broken.xml").write_bytes(b"<domstatus>\n<blockjobs>\n</domstatus>\n")
        (extra / "dir.xml").mkdir()
        (extra / "link.xml").symlink_to(labs[5].status_path)
        labs[0].qemu.kill()
        labs[1].qemu.kill()
        os.unlink(labs[1].monitor_path)
        silent = root / "silent.sock"
        labs[3].status_path.write_bytes(labs[3].status_path.read_bytes().replace(
            labs[3].monitor_path.encode(), str(silent).encode()))
        stuck = labs[:4]
        before = [lab.status_path.read_bytes() for lab in stuck]
        paths = [str(lab.status_path) for lab in labs]
        again = labs[5].directory / ".." / labs[5].directory.name / labs[5].status_path.name
        argv = [str(extra), *paths[:5], paths[4], str(labs[4].directory), *paths[5:], str(again)]
        with _stopped(labs[2]), silent_monitor(silent):
            # Waits the healthy domains' commands and greetings keep well within, even on
            # a loaded host; the stopped and silent QEMUs take them once each.
            code, out, err = _run("--json", "--timeout", "10", "--connect-timeout", "3",
                                  "--jobs", str(jobs), *argv)
        assert "Traceback" not in err
        _assert_all_reconciled(labs[4:])
        after = [lab.status_path.read_bytes() for lab in stuck]
        assert after == before, "a domain that could not be recovered keeps its file"
        for number, lab in enumerate(labs):
            out = out.replace(lab.monitor_path, f"@MONITOR{number}")
        out = re.sub(r"\.\d{8}T\d{6}\.\d{6}Z", ".@TIME", out.replace(str(root), "@ROOT"))
        return code, out.replace(str(silent), "@SILENT"), after


@fuzz_only
def test_a_mixed_fleet_is_reported_in_order_with_the_worst_exit_code_whatever_the_jobs(
    tmp_path: Path, templates: Templates
) -> None:
    one = _mixed_fleet(tmp_path / "one", templates, 1)
    sixteen = _mixed_fleet(tmp_path / "sixteen", templates, 16)
    assert one[:2] == sixteen[:2]
    code, out, _ = one
    assert code == 2  # unusable files, beside domains that need attention
    statuses = [(Path(d["file"]).name, d["status"]) for d in json.loads(out)["domains"]]
    assert statuses == [
        ("broken.xml", "attention"), ("dir.xml", "attention"), ("empty.xml", "attention"),
        ("link.xml", "attention"), ("vm1.xml", "reconciled"),
        ("dom0000.xml", "attention"), ("dom0001.xml", "attention"),
        ("dom0002.xml", "attention"), ("dom0003.xml", "attention"),
        ("dom0004.xml", "reconciled"), ("dom0004.xml", "reconciled"),
        ("dom0004.xml", "reconciled"), *[(f"dom000{n}.xml", "reconciled") for n in (5, 6, 7)],
        ("dom0005.xml", "reconciled")]


def test_a_fleet_set_up_attempt_that_fails_leaves_no_qemu_behind(
    tmp_path: Path, templates: Templates, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A QEMU that did not greet in time (a loaded host) failed the domain's first set-up
    # attempt inside `Lab.start`, outside the clean-up: the retry started another QEMU,
    # and the first one lived on after the fleet was gone.
    pids: list[int] = []
    launch = Lab.launch

    def stalling_once(lab: Lab) -> None:
        launch(lab)
        assert lab.qemu.pid is not None
        pids.append(lab.qemu.pid)
        if len(pids) == 1:
            raise MonitorUnavailableError(lab.monitor_path, "no greeting (injected)")

    monkeypatch.setattr(Lab, "launch", stalling_once)
    try:
        with fleet(tmp_path / "domains", 1, templates):
            assert len(pids) == 2, "the second attempt set the domain up"
        with pytest.raises(ProcessLookupError):
            os.kill(pids[0], 0)
    finally:
        with suppress(ProcessLookupError):
            os.kill(pids[0], signal.SIGKILL)
