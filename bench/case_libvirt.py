"""The anchor: the same concluded commits finished by a libvirtd restart and by `recover`.

Under a private libvirt 9.0 daemon (`tests/support/libvirt_lab.py`, `../shared/libvirt-lab`)
each round defines N domains, starts a slow commit in each, kills the daemon, lets QEMU
conclude every commit unseen, and then hands the domains to one side:

- libvirt: the daemon is started again; it reconnects to every QEMU and finishes the job.
  Its time runs from launching the start script to the last write of a status file that
  no longer records a job (the files' mtimes; the files are polled until all are done).
- blockjob: with the daemon still down, `python -m blockjob recover --jobs J FILES...` runs
  as one process inside the QEMUs' mount namespace (`nsenter`): the same QEMUs, the same
  files. Its time is that process's wall time, start-up included, as libvirt's is.

Each side gets fresh domains every round, in turns. Both must leave every domain the same
way (checked here): no job in the status file or in QEMU, vda running on top <- base, and
base carrying the checkpoint bitmap that lived in mid.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.cpu import seconds_between, thread_times
from bench.table import Row
from bench.timing import Budget

# The harness is test scaffolding; the benchmark runs from a checkout, where it is at hand.
from tests.support.libvirt_lab import (
    UNAVAILABLE,
    LabDomain,
    LibvirtLab,
    format_node,
    node_bitmaps,
    qemu_chain,
    qemu_jobs,
    recorded_jobs,
    wait_for,
)

_TICK = os.sysconf("SC_CLK_TCK")
# Bytes per second for the commit while the daemon still runs: it must not finish first.
_CRAWL = "64"
# Domains set up at once: each costs libvirt about a second of the two cores.
_SETUP_WORKERS = 4
_LIMIT = 120.0


def skip_reason() -> str | None:
    """Why the anchor cannot run here (no root, no libvirt, no ../shared/libvirt-lab), or None."""
    return UNAVAILABLE


class AnchorError(RuntimeError):
    """The lab misbehaved, or a side left a domain in another state than expected."""


def libvirt_rows(budget: Budget, jobs: int) -> list[Row]:
    count = budget.libvirt_domains
    # A short path: the lab's socket paths must stay under 108 bytes.
    lab = LibvirtLab(Path(tempfile.mkdtemp(prefix="bj-vlab-")))
    times: dict[str, list[float]] = {"libvirt": [], "blockjob": []}
    notes: dict[str, list[str]] = {"libvirt": [], "blockjob": []}
    try:
        lab.start_daemon()
        startup = _blockjob_startup(lab)
        for number in range(budget.libvirt_rounds):
            for side, finish in (("libvirt", _by_libvirt), ("blockjob", _by_blockjob)):
                prefix = f"bj{number}{side[0]}"
                seconds, note = _round(lab, prefix, count, finish, jobs)
                times[side].append(seconds)
                notes[side].append(note)
    finally:
        lab.close()
    ours, theirs = (statistics.median(times[side]) for side in ("blockjob", "libvirt"))
    return [Row(f"finish {count} concluded commits: recover --jobs {jobs} vs libvirtd restart",
                "libvirt 9.0 lab domains", ours, "libvirtd restart", theirs, "<= 1.0",
                note=f"end states identical; blockjob: {notes['blockjob'][-1]}, of which "
                     f"start-up with recover's imports {startup * 1e3:.0f} ms; libvirt: "
                     f"{notes['libvirt'][-1]}")]


Finish = Callable[[LibvirtLab, list[LabDomain], int], tuple[float, str]]


def _round(
    lab: LibvirtLab, prefix: str, count: int, finish: Finish, jobs: int
) -> tuple[float, str]:
    domains = [LabDomain(lab, f"{prefix}{i:02d}") for i in range(count)]
    try:
        _each(domains, _create_with_commit)
        lab.kill_daemon()
        _each(domains, _conclude)
        seconds, note = finish(lab, domains, jobs)
        _each(domains, _check_finished)
        return seconds, note
    finally:
        if not lab.daemon_running:
            lab.start_daemon()
        _each(domains, lambda dom: dom.discard())


def _each(domains: Iterable[LabDomain], action: Callable[[LabDomain], object]) -> None:
    with ThreadPoolExecutor(_SETUP_WORKERS) as pool:
        for _ in pool.map(action, domains):
            pass  # re-raise the first failure


def _create_with_commit(dom: LabDomain) -> None:

    dom.create()
    image = dom.image
    dom.virsh("blockcommit", "vda", "--top", str(image("vda-mid")),
              "--base", str(image("vda-base")), "--bandwidth", _CRAWL, "--bytes")
    wait_for(lambda: list(recorded_jobs(dom).values()) == ["running"],
             "libvirt to record the commit running", limit=_LIMIT)


def _conclude(dom: LabDomain) -> None:
    """With the daemon gone: let QEMU run the commit at full speed until it concludes."""

    (name,) = recorded_jobs(dom)
    dom.qmp("block-job-set-speed", {"device": name, "speed": 0})
    wait_for(lambda: qemu_jobs(dom).get(name) == "concluded",
             "QEMU to conclude the commit", limit=_LIMIT)


def _by_libvirt(lab: LibvirtLab, domains: list[LabDomain], _jobs: int) -> tuple[float, str]:

    launched = time.time()
    lab.start_daemon()
    answered = time.time()
    deadline = time.monotonic() + _LIMIT
    while any(recorded_jobs(dom) for dom in domains):
        if time.monotonic() > deadline:
            raise AnchorError("libvirtd did not finish every commit")
        time.sleep(0.02)
    done = max(dom.status_path.stat().st_mtime for dom in domains)
    started = _process_start(lab.daemon_pid)
    return done - launched, (f"{(started - launched) * 1e3:.0f} ms to exec libvirtd, "
                             f"{(done - started) * 1e3:.0f} ms from there to the last file "
                             f"(virsh answered after {(answered - launched) * 1e3:.0f} ms)")


def _by_blockjob(_lab: LibvirtLab, domains: list[LabDomain], jobs: int) -> tuple[float, str]:
    paths = [dom.namespace_status_path for dom in domains]
    pids = [dom.qemu_pid for dom in domains if dom.qemu_pid is not None]
    qemu = thread_times(pids)
    ours = _children_cpu()
    start = time.perf_counter()
    _python_in(domains[0], "-m", "blockjob", "recover", "--jobs", str(jobs), *paths)
    seconds = time.perf_counter() - start
    ours = _children_cpu() - ours
    used = seconds_between(qemu, thread_times(pids))
    return seconds, (f"{seconds * 1e3:.0f} ms for the whole process ({ours * 1e3:.0f} ms of "
                     f"its CPU, {used * 1e3:.0f} ms of the QEMUs' CPU meanwhile)")


def _children_cpu() -> float:
    """CPU seconds of the waited-for child processes so far (nsenter passes its child's on)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _blockjob_startup(lab: LibvirtLab) -> float:
    """Median wall time, in the namespace, of a process that imports what `recover` imports
    and stops there: the start-up share of the blockjob side (the first run also fills
    the bytecode cache, as an installed package has one)."""
    dom = LabDomain(lab, "bjstart")
    samples = []
    try:
        dom.create()
        for _ in range(6):
            start = time.perf_counter()
            _python_in(dom, "-c", "import blockjob.cli.recover")
            samples.append(time.perf_counter() - start)
    finally:
        dom.discard()
    return statistics.median(samples[1:])


def _python_in(dom: LabDomain, *argv: str) -> subprocess.CompletedProcess[str]:
    # Without PYTHONDONTWRITEBYTECODE (set on this machine), so that the first run fills
    # the bytecode cache an installed package ships with; otherwise every run compiles.
    done = dom.run_in_namespace(["env", "-u", "PYTHONDONTWRITEBYTECODE", sys.executable, *argv])
    if done.returncode != 0:
        raise AnchorError(f"{' '.join(argv)} exited {done.returncode}: "
                          f"{done.stdout}{done.stderr}")
    return done


def _check_finished(dom: LabDomain) -> None:
    """No job left anywhere, vda on top <- base, the checkpoint bitmap now in base."""

    image = dom.image
    found = {
        "recorded": recorded_jobs(dom),
        "qemu jobs": dom.qmp("query-jobs"),
        "chain": qemu_chain(dom, "vda"),
        "base bitmaps": sorted(node_bitmaps(dom, format_node(dom, image("vda-base")))),
    }
    expected = {"recorded": {}, "qemu jobs": [],
                "chain": [str(image("vda-top")), str(image("vda-base"))],
                "base bitmaps": ["chk0"]}
    if found != expected:
        raise AnchorError(f"{dom.name}: {found} (expected {expected})")


def _process_start(pid: int | None) -> float:
    """When process `pid` started, in `time.time()` terms."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    since_boot = int(fields[19]) / _TICK
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - uptime + since_boot
