"""Randomized recovery scenarios against a real QEMU, judged by an independent oracle
(`tests.support.recovery_oracle`, which shares no code with `blockjob.recovery`).

Each seed builds a domain of two disks (vda, vdb: top <- mid <- base, checkpoints in
each base), gives vda's commit of mid into base a random end (running, paused, ready,
pending, completed, cancelled, failed, forgotten by QEMU, never started, an active commit
pivoted or cancelled behind the file's back, QEMU crashed mid-commit; or one of libvirt
9.0's newest finishing flows: backups, a pull, a commit deleting its files, create jobs),
then tampers at
random: listed bitmaps removed, enabled early, unknown or non-persistent; a job of vdb
QEMU never had (its disk missing from the file, its bitmap busy in a foreign backup, its
id a QEMU job of another type); a foreign job; a node of the file renamed or gone from
QEMU; a `<mirror>` no job owns; the VM stopped; the monitor held by a second client, QEMU
frozen (SIGSTOP) before the run or stopped at one of its QMP commands. Then `blockjob
recover` (CLI or API, random) runs:

- `--dry-run` changes nothing (file bytes, QEMU);
- exit 0 implies the oracle finds the state right; a non-zero exit names the domain and
  a reason; a listed bitmap never leaves the file unless it records again (or is
  acknowledged as reported);
- a second run is idempotent: same exit code, file bytes, QEMU state.

`make test` runs a few seeds; `make fuzz` (`BLOCKJOB_ORACLE_SEEDS`) many more.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from blockjob.demo.lab import Lab
from blockjob.jobs.active_commit import start_active_commit
from blockjob.jobs.commit import CrashPoint
from blockjob.model import StorageSource
from blockjob.qemu.monitor import Monitor
from blockjob.qemu.reopen import Children, reopen_options
from blockjob.qemu.wire import Connection
from blockjob.recovery import recover
from blockjob.recovery.execute import Probe
from blockjob.statusxml.document import load
from blockjob.store.status_store import StatusStore
from tests.support import recovery_oracle as oracle
from tests.support.campaign import fuzz_only
from tests.support.finish_lab import (
    COPY,
    PULL,
    add_image,
    copy_pivoted,
    copy_ready,
    pull_mid,
    record_pull,
    start_pull,
)
from tests.support.finish_lab import FLOWS as ALL_FLOWS
from tests.support.qemu_fixtures import (
    BASE,
    JOB,
    MID,
    QEMU_MARKS,
    TOP,
    base_image,
    commit,
    crash_qemu_and_restart,
    job_status,
    started,
    wait_concluded,
    wait_until,
)
from tests.support.scenario import (
    EXPECTED_AFTER_COMMIT,
    EXPECTED_AFTER_PIVOT,
    EXPECTED_UNCHANGED,
)

pytestmark = QEMU_MARKS
REPO = Path(__file__).resolve().parent.parent
DOMAIN = "lab1"
VDB_BASE = "libvirt-6-format"
PHANTOM = "commit-vdb-libvirt-5-format"
FOREIGN = "foreign-backup"
BUSY = "busy-backup"
# libvirt 9.0's newest finishing steps, ended in QEMU (`tests.support.finish_lab`); a copy
# adds its image as node 4, which is vdb's here.
FLOWS = {name: flow for name, flow in ALL_FLOWS.items() if not name.startswith("copy")}
ENDS = ("none", "running", "paused", "ready", "pending", "completed", "cancelled", "failed",
        "vanished", "unstarted", "started-unsaved", "pivoted", "pivoted-dismissed",
        "ready-cancelled", "qemu-crashed", *(f"flow:{name}" for name in FLOWS))
# Ends of an active commit made ready (the file says so), then completed or cancelled by
# someone else: only the device tells which.
ACTIVE = frozenset({"ready", "pivoted", "pivoted-dismissed", "ready-cancelled"})
BEFORE_QEMU_JOB = (CrashPoint.JOB_PERSISTED, CrashPoint.BASE_WRITABLE,
                   CrashPoint.BITMAPS_DISABLED, CrashPoint.BASE_READ_ONLY)
# Ends whose job still runs in QEMU: its writes may dirty a bitmap enabled early.
RUNNING = frozenset({"running", "paused", "ready", "started-unsaved"})


@dataclass
class Scenario:
    seed: int
    end: str
    crash: CrashPoint
    bitmaps: dict[str, str]  # listed bitmap of vda's base -> none, removed, enabled
    extra: tuple[str, ...]  # ghost (listed, never in QEMU), np (non-persistent, disabled)
    phantom: str  # vdb job QEMU never had: none, plain, no-disk, busy; same-id: QEMU
                  # runs a backup job of its id
    foreign: bool
    rename: bool
    vm_stopped: bool
    holder: str  # none, client, sigstop, freeze (QEMU stopped at a QMP command of the run)
    cli: bool
    acknowledge: bool
    devices: bool  # a virtio device per disk (`query-block` shows what it runs on)
    freeze_at: int  # holder freeze: QEMU is stopped before the run's nth QMP command
    stale_mirror: bool  # vdb has a `<mirror job='copy'>` no job owns
    drop_top: bool  # QEMU lost vdb's top node (blockdev-del), which the file still names


def scenario(seed: int) -> Scenario:
    rng = random.Random(seed)
    end = rng.choice(ENDS)
    # A job QEMU still runs holds its base: a bitmap of it cannot be removed then (nor is
    # the graph asked while a pull waits concluded); one a QEMU crash left inconsistent
    # cannot be enabled.
    removable = end not in RUNNING and end not in ("pending", "flow:pull-bitmaps")
    enabled = end != "qemu-crashed"
    return Scenario(
        seed, end, rng.choice(BEFORE_QEMU_JOB),
        {name: rng.choice(("none", "none", "removed" if removable else "none",
                           "enabled" if enabled else "none"))
         for name in ("chk0", "chk1")},
        tuple(extra for extra in ("ghost", "np") if rng.random() < 0.25),
        rng.choice(("none", "none", "plain", "no-disk", "busy", "same-id")),
        rng.random() < 0.25, rng.random() < 0.2, rng.random() < 0.2,
        rng.choice(("none", "none", "none", "client", "sigstop", "freeze")),
        rng.random() < 0.5, rng.random() < 0.2,
        end in ACTIVE or end.startswith("flow:") or rng.random() < 0.3,
        rng.randint(1, 12), rng.random() < 0.2, rng.random() < 0.15)


# --- building the scenario ------------------------------------------------------------


def _end_vda(tb: Lab, sc: Scenario) -> None:
    """vda's commit, ended as the scenario says."""
    if sc.end == "none":
        return
    if sc.end in ACTIVE:
        _active_commit(tb, sc.end)
        return
    if sc.end.startswith("flow:"):
        FLOWS[sc.end.removeprefix("flow:")](tb)
        return
    if sc.end == "qemu-crashed":  # the listed bitmaps of base are left inconsistent
        commit(tb, speed=1)
        crash_qemu_and_restart(tb)
        return
    if sc.end in ("unstarted", "pending"):
        commit(tb, crash=sc.crash if sc.end == "unstarted" else CrashPoint.BASE_READ_ONLY)
        if sc.end == "pending":
            with tb.connect() as monitor:
                monitor.block_commit(JOB, device=TOP, top_node=MID, base_node=BASE,
                                     auto_finalize=False)
                wait_until(lambda: job_status(monitor) == "pending", "pending")
        return
    slow = sc.end in RUNNING or sc.end == "cancelled"
    commit(tb, speed=1 if slow else 0,
           crash=CrashPoint.COMMIT_STARTED if sc.end == "started-unsaved" else None)
    with tb.connect() as monitor:
        if sc.end == "paused":
            monitor.execute("job-pause", {"id": JOB})
            wait_until(lambda: job_status(monitor) == "paused", "paused")
        if sc.end == "cancelled":
            monitor.job_cancel(JOB)
    if sc.end not in RUNNING:
        wait_concluded(tb)
    if sc.end == "vanished":
        with tb.connect() as monitor:
            monitor.job_dismiss(JOB)


def _active_commit(tb: Lab, end: str) -> None:
    """vda's active commit, ready; then someone else pivots or cancels it."""
    with StatusStore(tb.directory).owned(tb.name) as owner:
        name = start_active_commit(owner, owner.load(), "vda", BASE, speed=0).name
    with tb.connect() as monitor:
        wait_until(lambda: job_status(monitor, name) == "ready", "ready")
        if end == "ready":
            return
        if end == "ready-cancelled":
            monitor.job_cancel(name)
        else:
            monitor.job_complete(name)
        wait_until(lambda: job_status(monitor, name) == "concluded", "concluded")
        if end == "pivoted-dismissed":
            monitor.job_dismiss(name)


def _tamper_bitmaps(tb: Lab, sc: Scenario, monitor: Monitor) -> None:
    for name, how in sc.bitmaps.items():
        if how == "enabled":
            monitor.execute("block-dirty-bitmap-enable", {"node": BASE, "name": name})
        elif how == "removed":  # a base read-only is made writable for it a moment
            base = base_image(tb, "vda")
            read_only = monitor.query_nodes()[BASE].read_only
            if read_only:
                _set_read_only(monitor, base, False)
            monitor.execute("block-dirty-bitmap-remove", {"node": BASE, "name": name})
            if read_only:
                _set_read_only(monitor, base, True)
    if "np" in sc.extra:
        monitor.execute("block-dirty-bitmap-add", {"node": BASE, "name": "np",
                                                   "persistent": False, "disabled": True})


def _list_more(text: str, names: tuple[str, ...]) -> str:
    """Add `names` to vda's job's `<disabledBaseBitmaps>`."""
    bitmaps = "".join(f"<bitmap name='{name}'/>" for name in names)
    return text.replace("</disabledBaseBitmaps>", bitmaps + "</disabledBaseBitmaps>", 1)


PHANTOM_XML = (f"<blockjob name='{PHANTOM}' type='commit' state='running' jobflags='0x0'>"
               "<disk dst='vdb'/><base node='libvirt-6-storage'/>"
               "<top node='libvirt-5-storage'/><topparent node='libvirt-4-storage'/>"
               "<disabledBaseBitmaps><bitmap name='chk0'/></disabledBaseBitmaps></blockjob>")


STALE_MIRROR = ("<mirror type='file' file='/stale.qcow2' format='qcow2' job='copy'>"
                "<format type='qcow2'/><source file='/stale.qcow2'/></mirror>\n        ")


def _without_vdb(text: str) -> str:
    start = text.index("<disk type='file' device='disk'>", text.index("vda/base.qcow2"))
    end = text.index("</disk>", start) + len("</disk>")
    return text[:start].rstrip(" ") + text[end:].lstrip("\n")


def _tamper_file(tb: Lab, sc: Scenario) -> None:
    text = tb.status_path.read_text()
    if sc.extra and "</disabledBaseBitmaps>" in text:  # vda's job lists bitmaps
        text = _list_more(text, sc.extra)
    if sc.phantom != "none":
        text = text.replace("<blockjobs active='no'/>", "<blockjobs active='yes'></blockjobs>")
        text = text.replace("</blockjobs>", PHANTOM_XML + "</blockjobs>", 1)
    if sc.phantom == "no-disk":
        text = _without_vdb(text)
    if sc.rename:
        text = text.replace("libvirt-5-format", "libvirt-50-format")
    if sc.stale_mirror and "<target dev='vdb'" in text:
        text = text.replace("<target dev='vdb'", STALE_MIRROR + "<target dev='vdb'")
    tb.status_path.write_text(text)


def _tamper_qemu(tb: Lab, sc: Scenario) -> None:
    with tb.connect() as monitor:
        _tamper_bitmaps(tb, sc, monitor)
        if sc.phantom != "none":
            monitor.execute("block-dirty-bitmap-disable", {"node": VDB_BASE, "name": "chk0"})
        if sc.phantom == "busy":
            _busy_backup(tb, monitor)
        if sc.foreign:
            _foreign_backup(monitor, tb, FOREIGN, 21)
        if sc.phantom == "same-id":
            _foreign_backup(monitor, tb, PHANTOM, 22)
        if sc.vm_stopped:
            monitor.execute("stop")
        # Only a top no device and no job holds can go.
        if sc.drop_top and not (sc.devices or sc.foreign or sc.phantom in ("busy", "same-id")):
            monitor.blockdev_del("libvirt-4-format")
            monitor.blockdev_del("libvirt-4-storage")


def _busy_backup(tb: Lab, monitor: Monitor) -> None:
    """An incremental backup of vdb's base by chk0, left pending (auto-finalize off): the
    bitmap stays busy until it is finalized. (A rate-limited one instead can hold QEMU's
    main loop for minutes in the drain of a `blockdev-reopen`.)"""
    add_image(monitor, tb, "busy", 20, None)
    base = base_image(tb, "vdb")
    _set_read_only(monitor, base, False)
    monitor.execute("blockdev-backup", {
        "job-id": BUSY, "device": VDB_BASE, "target": "libvirt-20-format",
        "sync": "incremental", "bitmap": "chk0", "auto-finalize": False,
        "auto-dismiss": False})
    _set_read_only(monitor, base, True)
    wait_until(lambda: job_status(monitor, BUSY) == "pending", "the backup pending")


def _set_read_only(monitor: Monitor, image: StorageSource, read_only: bool) -> None:
    """Reopen `image` linked to the children the file names: the scenario's own set-up,
    where the file is right, may leave a concluded pull that keeps the graph from being
    asked (recovery's own reopens ask it, after dismissing pulls first)."""
    backing = image.backing.format_node if image.backing is not None else None
    monitor.blockdev_reopen([reopen_options(
        image, read_only=read_only, children=Children(image.storage_node, backing), kept={})])


def _foreign_backup(monitor: Monitor, tb: Lab, job: str, index: int) -> None:
    """A backup job of vdb's top the file does not record, into a new image `index`."""
    add_image(monitor, tb, f"foreign-{index}", index, None)
    monitor.execute("blockdev-backup", {
        "job-id": job, "device": "libvirt-4-format", "target": f"libvirt-{index}-format",
        "sync": "none", "auto-dismiss": False})


@contextlib.contextmanager
def _held(tb: Lab, how: str) -> Iterator[Callable[[], None]]:
    """The monitor held by a second client, or QEMU frozen; the callable lets go."""
    connection = Connection(tb.monitor_path)
    pid = tb.qemu.pid or 0

    def release() -> None:
        connection.close()
        if how in ("sigstop", "freeze"):
            os.kill(pid, signal.SIGCONT)

    if how == "client":
        connection.open(time.monotonic() + 10)
    elif how == "sigstop":
        os.kill(pid, signal.SIGSTOP)
    try:
        yield release
    finally:
        release()


# --- running recovery -----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    text: str  # what the operator reads

    def said(self) -> dict[str, list[str]]:
        """The problems (and acknowledged ones) the text gives for each job."""
        found: dict[str, list[str]] = {}
        job = ""
        for line in self.text.splitlines():
            if line.startswith("  ") and not line.startswith("   "):
                job = line.strip().split(":")[0]
            elif line.strip().startswith(("problem:", "acknowledged:")):
                found.setdefault(job, []).append(line.strip())
        return found


def _freezer(pid: int, at: int) -> Probe:
    """A probe that stops QEMU (SIGSTOP) just before the run's `at`th QMP command."""
    sent = [0]

    def probe(when: str, what: str) -> None:
        if when == "before" and what != "save":
            sent[0] += 1
            if sent[0] == at:
                os.kill(pid, signal.SIGSTOP)
    return probe


def _run(tb: Lab, sc: Scenario, *, dry_run: bool = False, freeze: bool = False) -> Outcome:
    options = ["--connect-timeout", "0.5", "--timeout", "20"]
    options += ["--dry-run"] if dry_run else []
    options += ["--acknowledge"] if sc.acknowledge and not dry_run else []
    if freeze:  # the probe is the API's: QEMU stops mid-run, each command waits 1 s
        report = recover([tb.status_path], timeout=1.0, acknowledge=sc.acknowledge,
                         probe=_freezer(tb.qemu.pid or 0, sc.freeze_at))
        return Outcome(0 if report.ok else 1,
                       "\n".join(line for d in report.domains for line in d.lines()))
    if sc.cli:
        done = subprocess.run(
            [sys.executable, "-m", "blockjob", "recover", *options, str(tb.status_path)],
            capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        assert "Traceback" not in done.stderr, done.stderr
        return Outcome(done.returncode, done.stdout + done.stderr)
    report = recover([tb.status_path], dry_run=dry_run, connect_timeout=0.5, timeout=20,
                     acknowledge=sc.acknowledge and not dry_run)
    lines = [line for domain in report.domains for line in domain.lines()]
    return Outcome(0 if report.ok else 1, "\n".join(lines))


def _snapshot(tb: Lab, sc: Scenario) -> tuple[bytes, object]:
    qemu = oracle.observe(tb.monitor_path)
    running = sc.end in RUNNING or sc.phantom == "same-id" or sc.foreign
    return tb.status_path.read_bytes(), qemu.fingerprint(counts=not running)


def _says_why(outcome: Outcome) -> bool:
    """A non-zero exit names the domain and a reason."""
    reasons = ("problem:", "error:", "check failed:", "attention: ")
    return DOMAIN in outcome.text and any(reason in outcome.text for reason in reasons)


def _expected_counts(sc: Scenario) -> dict[str, int]:
    """Dirty bytes of vda's base bitmaps libvirt's merge leaves (untampered ones only)."""
    if sc.end in RUNNING or sc.end in ("none", "pending", "qemu-crashed") \
            or sc.end.startswith("flow:"):
        return {}
    done = (EXPECTED_AFTER_PIVOT if sc.end.startswith("pivoted") else EXPECTED_AFTER_COMMIT
            if sc.end in ("completed", "vanished") else EXPECTED_UNCHANGED)
    return {name: count for name, count in done.items()
            if sc.bitmaps.get(name, "none") == "none"}


def _judge(tb: Lab, sc: Scenario, before: oracle.FileFacts, outcome: Outcome,
           earlier: Outcome | None = None) -> None:
    """`earlier`: a run before `outcome`'s, whose report counts as said too."""
    after = oracle.read_file(tb.status_path)
    qemu = oracle.observe(tb.monitor_path)
    said = outcome.said()
    for job, lines in (earlier.said() if earlier is not None else {}).items():
        said.setdefault(job, []).extend(lines)
    lost = oracle.lost_bitmaps(before, after, qemu, said)
    assert not lost, (sc, outcome.text, lost)
    if outcome.code != 0:
        assert _says_why(outcome), (sc, outcome.text)
        return
    if not before.jobs and not any(disk.mirror for disk in before.disks.values()):
        # Nothing to recover: QEMU is not asked (README), so nothing of it is judged.
        assert "no block jobs" in outcome.text, (sc, outcome.text)
        return
    wrong = oracle.wrong_state(before, after, qemu, said)
    base = qemu.nodes[BASE].bitmaps
    wrong += [f"{BASE} bitmap {name}: {base[name].count if name in base else None} dirty "
              f"bytes, libvirt's merge leaves {count}"
              for name, count in _expected_counts(sc).items()
              if name not in base or base[name].count != count]
    assert not wrong, (sc, outcome.text, wrong)


def run_scenario(tmp_path: Path, seed: int) -> None:
    sc = scenario(seed)
    with started(tmp_path, fail_commit=sc.end == "failed", second_disk=True,
                 devices=sc.devices) as tb:
        _end_vda(tb, sc)
        _tamper_qemu(tb, sc)
        _tamper_file(tb, sc)
        before = oracle.read_file(tb.status_path)
        with _held(tb, sc.holder) as release:
            if sc.holder == "none":
                state = _snapshot(tb, sc)
                dry = _run(tb, sc, dry_run=True)
                assert _snapshot(tb, sc) == state, (sc, dry.text)
                assert dry.code == 0 or _says_why(dry), (sc, dry.text)
            first = _run(tb, sc, freeze=sc.holder == "freeze")
            held = None  # the run while QEMU was held, if any
            if sc.holder != "none":
                # Without a job QEMU is not asked (README), so nothing waits for it; a
                # run may end before the command QEMU was to stop at.
                assert first.code != 0 or not before.jobs or sc.holder == "freeze", (
                    sc, first.text)
                release()
                _judge(tb, sc, before, first)
                held, first = first, _run(tb, sc)
            _judge(tb, sc, before, first, held)
            state = _snapshot(tb, sc)
            again = _run(tb, sc)
            # A loss no record can hold (README "Never forget") is reported by one run;
            # a run with nothing left to recover asks QEMU nothing (README "Verification"),
            # so a failed check whose repairs were saved is not repeated.
            once = "base is not found in the file" in first.text \
                or "no block jobs" in again.text
            assert again.code in (first.code, 0 if once else first.code), (
                sc, first.text, again.text)
            assert _snapshot(tb, sc) == state, (sc, first.text, again.text)


# Seeds `make test` runs: between them a ready job, a cancel, a QEMU crash, a commit
# deleting its files, a backup; every tamper but a job of another type (busy, missing,
# renamed, foreign, held, frozen, a stale `<mirror>`).
QUICK = (9, 12, 28, 29, 39)


@pytest.mark.parametrize("seed", QUICK)
def test_recovery_end_state_is_what_the_oracle_expects(tmp_path: Path, seed: int) -> None:
    run_scenario(tmp_path, seed)


@fuzz_only
def test_recovery_oracle_campaign(tmp_path: Path) -> None:
    count = int(os.environ.get("BLOCKJOB_ORACLE_SEEDS", "200"))
    start = int(os.environ.get("BLOCKJOB_ORACLE_FIRST", "100"))
    for seed in range(start, start + count):
        run_scenario(tmp_path / str(seed), seed)
        shutil.rmtree(tmp_path / str(seed))  # a passed seed's images (some 30 MB each)


# --- regressions the campaign found -------------------------------------------------


@pytest.mark.parametrize("acknowledge", [False, True])
def test_an_invalid_jobs_bitmaps_without_a_base_are_never_dropped_silently(
    tmp_path: Path, acknowledge: bool
) -> None:
    """A job of a disk the file no longer has lists chk0, disabled in QEMU. Its base
    cannot be found, so nothing re-enables chk0, and the job, which libvirt would not
    load, is dropped: that loss is a problem (exit 1), or acknowledged. It was dropped
    with exit 0 and not a word."""
    with started(tmp_path, second_disk=True) as tb:
        with tb.connect() as monitor:
            monitor.execute("block-dirty-bitmap-disable", {"node": VDB_BASE, "name": "chk0"})
        text = tb.status_path.read_text().replace(
            "<blockjobs active='no'/>", f"<blockjobs active='yes'>{PHANTOM_XML}</blockjobs>")
        tb.status_path.write_text(_without_vdb(text))
        dry = recover([tb.status_path], dry_run=True)
        report = recover([tb.status_path], acknowledge=acknowledge)
        (job,) = report.domains[0].jobs
        said = job.acknowledged if acknowledge else job.problems
        assert not dry.ok and report.ok is acknowledge and job.decision == "invalid"
        (problem,) = said
        assert "bitmaps chk0 listed" in problem and "base is not found" in problem
        assert not load(tb.status_path).jobs


def test_a_pull_is_dismissed_before_another_jobs_plan_asks_for_the_graph(
    tmp_path: Path,
) -> None:
    """vda's pull concluded; vdb's commit, first in the file, is unknown to QEMU, so its
    plan asks for the backing edges, which cannot be asked while the stream job waits.
    The pull goes first: one run ends both (the commit's plan failed, attention, and
    only the next run finished it)."""
    with started(tmp_path, devices=True, second_disk=True) as tb:
        pull_mid(tb)
        with tb.connect() as monitor:
            monitor.execute("block-dirty-bitmap-disable", {"node": VDB_BASE, "name": "chk0"})
        text = tb.status_path.read_text()
        tb.status_path.write_text(text.replace(
            "<blockjobs active='yes'>", f"<blockjobs active='yes'>{PHANTOM_XML}", 1))
        report = recover([tb.status_path])
        assert report.ok, report.domains[0].lines()
        assert [job.job for job in report.domains[0].jobs] == [PHANTOM, PULL]  # file order
        assert not load(tb.status_path).jobs


def test_an_invalid_backup_job_still_ends_its_backup(tmp_path: Path) -> None:
    """vdb's pull backup job is invalid (the file lost vdb's `<disk>`): it is cancelled
    and dropped, and its backup ends as any other's: the NBD export and the scratch image
    leave QEMU, `<backups>` the file (both stayed, and the run said ok)."""
    with started(tmp_path, devices=True, second_disk=True) as tb:
        with tb.connect() as monitor:
            scratch = start_pull(monitor, tb, "vdb", 4, 10)
        record_pull(tb, [("vdb", 4, scratch, 10)])
        tb.status_path.write_text(_without_vdb(tb.status_path.read_text()))
        report = recover([tb.status_path])
        assert report.ok, report.domains[0].lines()
        assert [job.decision for job in report.domains[0].jobs] == ["invalid"]
        qemu = oracle.observe(tb.monitor_path)
        assert qemu.exports == {} and "libvirt-10-format" not in qemu.nodes
        assert not oracle.read_file(tb.status_path).backup


# How a ready copy's record is made one libvirt marks invalid (or re-typed `broken`), or
# (`cancelled`) a valid one cancelled by someone else, for comparison.
COPY_ENDS = {
    "unknown-state": ("state='ready'", "state='bogus'"),
    "mirror-flag": ("mirror='yes'", "mirror='maybe'"),
    "broken": ("type='copy'", "type='broken' brokentype='copy'"),
    "cancelled": ("", ""),
}


@pytest.mark.parametrize("end", sorted(COPY_ENDS))
def test_an_ended_copy_leaves_no_node_of_its_mirror_in_qemu(tmp_path: Path, end: str) -> None:
    """vda's copy into node 4 is ready; its record is invalid (or QEMU cancelled it). Its
    end takes the `<mirror>` from the file and, as libvirt 9.0 detaches a cancelled
    copy's mirror chain, node 4 from QEMU: an invalid copy left node 4 open in QEMU with
    nothing naming it (and the oracle did not look)."""
    with started(tmp_path, devices=True) as tb:
        copy_ready(tb)
        if end == "cancelled":
            with tb.connect() as monitor:
                monitor.job_cancel(COPY)
            wait_concluded(tb, COPY)
        old, new = COPY_ENDS[end]
        text = tb.status_path.read_text()
        job_start = f"<blockjob name='{COPY}'"
        head, tail = text.split(job_start)
        tb.status_path.write_text(head + job_start + tail.replace(old, new, 1))
        before = oracle.read_file(tb.status_path)
        report = recover([tb.status_path])
        assert report.ok, report.domains[0].lines()
        (job,) = report.domains[0].jobs
        assert job.decision == ("finish-failed" if end == "cancelled" else "invalid")
        qemu = oracle.observe(tb.monitor_path)
        after = oracle.read_file(tb.status_path)
        assert not oracle.wrong_state(before, after, qemu, {})
        assert "libvirt-4-format" not in qemu.nodes and "libvirt-4-storage" not in qemu.nodes


@pytest.mark.parametrize("end", ["unknown-state", "broken"])
def test_an_invalid_copy_qemu_pivoted_is_finished_as_pivoted(tmp_path: Path, end: str) -> None:
    """vda's copy into node 4 pivoted in QEMU (its device runs on node 4), and its record
    is invalid. The file must say vda runs on node 4 now, as for a valid copy that
    pivoted while the daemon was away: the job was dropped with vda's old chain in the
    file (exit 0, a chain QEMU no longer runs), and once its mirror's nodes were deleted
    too, blockdev-del of node 4, the device's, failed on every run."""
    with started(tmp_path, devices=True) as tb:
        copy_pivoted(tb)
        old, new = COPY_ENDS[end]
        head, tail = tb.status_path.read_text().split(f"<blockjob name='{COPY}'")
        tb.status_path.write_text(f"{head}<blockjob name='{COPY}'{tail.replace(old, new, 1)}")
        before = oracle.read_file(tb.status_path)
        report = recover([tb.status_path])
        assert report.ok, report.domains[0].lines()
        assert [job.decision for job in report.domains[0].jobs] == ["invalid"]
        after = oracle.read_file(tb.status_path)
        assert not oracle.wrong_state(before, after, oracle.observe(tb.monitor_path), {})
        assert after.disks["vda"].chain == (("libvirt-4-format", "libvirt-4-storage"),)


def test_a_node_qemu_refuses_to_delete_is_reported_and_the_copy_still_ends(
    tmp_path: Path,
) -> None:
    """vda's ready copy is invalid, and its `<mirror>` lost node 4's format node name:
    blockdev-del of node 4's storage is refused (its format node uses it). That is
    reported once (attention) and the job still ends; the refusal was an error that kept
    the job, to fail the same way on every run."""
    with started(tmp_path, devices=True) as tb:
        copy_ready(tb)
        head, tail = tb.status_path.read_text().split(f"<blockjob name='{COPY}'")
        tail = tail.replace("state='ready'", "state='bogus'", 1).replace(
            "<nodename type='format' name='libvirt-4-format'/>", "", 1)
        tb.status_path.write_text(f"{head}<blockjob name='{COPY}'{tail}")
        first = recover([tb.status_path]).domains[0]
        assert first.status == "attention" and first.error is None, first.lines()
        (problem,) = first.jobs[0].problems
        assert problem.startswith("node libvirt-4-storage is left in QEMU"), problem
        assert not load(tb.status_path).jobs
        again = recover([tb.status_path])
        assert again.ok, again.domains[0].lines()
