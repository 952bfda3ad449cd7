"""The live half of the demo: a daemon that follows its jobs (`JobTracker`).

A commit followed event by event; then an active commit whose daemon dies while
it runs, a restarted daemon that picks it up, and a pivot. Each part has its own
lab (images, QEMU, status file) inside the demo's temporary directory.

The daemon that dies is a real process (`daemon`, in a new interpreter): it opens a
tracker, starts the active commit, prints what it saved, then follows events until
the demo kills it with SIGKILL, so no code of it runs after: the kernel drops its
QMP connection and its lock on the domain.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from blockjob.demo import story
from blockjob.demo.lab import DiskSpec, Lab
from blockjob.demo.picture import disk_picture
from blockjob.demo.signals import deferred
from blockjob.model import JobState
from blockjob.qemu.monitor import Monitor
from blockjob.statusxml.document import StatusDocument, load
from blockjob.store.status_store import StatusStore
from blockjob.tracker import JobTracker

Say = Callable[[str], None]
# The active commit runs long enough to be caught running when its daemon dies.
ACTIVE_SPEED = 4 << 20
WAIT_SECONDS = 60.0
# The daemon process's line that says its commit runs in QEMU (then it is killed).
STARTED = "started: "
_DAEMON_MAIN = ("import sys, pathlib; from blockjob.demo.live import daemon; "
                "daemon(pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))")


def _show(tb: Lab, doc: StatusDocument, monitor: Monitor, title: str, say: Say) -> None:
    say("")
    for line in disk_picture(tb, doc, monitor, title):
        say(line)


def _saved(say: Say) -> Callable[[StatusDocument], None]:
    """Says what each save of the file records about the jobs, as it happens."""
    def on_save(doc: StatusDocument) -> None:
        jobs = [f"{job.name} state={job.state}"
                + (f" newstate={job.newstate}" if job.newstate else "") for job in doc.jobs]
        say(f"  saved: {'; '.join(jobs) or 'no block jobs'}")
    return on_save


def _file_lines(path: Path, say: Say) -> None:
    """The job and mirror lines of the status file, as libvirt would read them."""
    for line in path.read_text().splitlines():
        if "<blockjob " in line or "<mirror " in line:
            say(f"  {line.strip()}")


def _gone(name: str) -> Callable[[StatusDocument], bool]:
    return lambda doc: doc.job(name) is None


def _ready(name: str) -> Callable[[StatusDocument], bool]:
    def check(doc: StatusDocument) -> bool:
        job = doc.job(name)
        return job is not None and job.state is JobState.READY
    return check


def _wait(tracker: JobTracker, check: Callable[[StatusDocument], bool], what: str) -> None:
    if not tracker.wait_for(check, WAIT_SECONDS):
        raise TimeoutError(f"{what} did not happen within {WAIT_SECONDS:g} s")


def live_commit(tb: Lab, say: Say) -> bool:
    """4. A commit of mid into base, followed live by the daemon's tracker."""
    _, mid, base = tb.disks[0].images
    say("")
    say(f"A daemon with a tracker commits {mid.path.name} into {base.path.name} "
        "and follows JOB_STATUS_CHANGE:")
    with JobTracker(StatusStore(tb.directory), tb.name, on_save=_saved(say)) as tracker:
        job = tracker.start_commit(story.TARGET, mid.format_node, base.format_node)
        _wait(tracker, _gone(job.name), f"the end of {job.name}")
        _show(tb, tracker.doc, tracker.monitor, "4. Commit followed live, finished", say)
        return _base_counts(tracker.monitor, base.format_node, story.EXPECTED_AFTER_COMMIT, say)


def active_commit(tb: Lab, say: Say) -> bool:
    """5-7. An active commit, its daemon killed, a restart picks it up, then the pivot."""
    top, _, base = tb.disks[0].images
    store = StatusStore(tb.directory)
    say("")
    say(f"A daemon process starts an active commit of {top.path.name} into "
        f"{base.path.name}:")
    job_name = _killed_daemon(tb.status_path, base.format_node, say)
    _file_lines(tb.status_path, say)
    with tb.connect() as monitor:
        _show(tb, load(tb.status_path), monitor,
              "5. Daemon killed; its active commit still in QEMU", say)
    say("")
    say("A restarted daemon reconnects, observes QEMU, runs recovery's state machine:")
    with JobTracker(store, tb.name, on_save=_saved(say)) as tracker:
        for report in tracker.reports:
            say(f"  {report.job}: {report.decision} (QEMU {report.qemu_status})")
        _wait(tracker, _ready(job_name), f"{job_name} ready")
        _file_lines(tb.status_path, say)
        _show(tb, tracker.doc, tracker.monitor, "6. Picked up after the restart: ready", say)
        say("")
        say("Pivot: saved as pivoting, bitmaps merged into base, job-complete, finished:")
        tracker.pivot(job_name)
        _wait(tracker, _gone(job_name), f"the pivot of {job_name}")
        _show(tb, tracker.doc, tracker.monitor, "7. After the pivot: the disk runs on base",
              say)
        return _base_counts(tracker.monitor, base.format_node, story.EXPECTED_AFTER_PIVOT, say)


def _killed_daemon(status_path: Path, base_node: str, say: Say) -> str:
    """Run the daemon process (`daemon`), relay what it says until its commit runs,
    then SIGKILL it; the job's name."""
    argv = [sys.executable, "-c", _DAEMON_MAIN, str(status_path), base_node, str(ACTIVE_SPEED)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as daemon:
        job_name = ""
        try:
            for line in daemon.stdout or ():
                if line.startswith(STARTED):
                    job_name = line[len(STARTED):].strip()
                    break
                say(line.rstrip("\n"))
        finally:
            # Deferred, as every Popen call of the demo (`QemuProcess`): a stop inside
            # its waitpid lock would keep it, and `communicate` then waits forever.
            with deferred():
                daemon.kill()  # the demo never leaves it behind
                errors = daemon.communicate()[1]
    if not job_name:
        raise RuntimeError(f"the daemon process ended before its commit ran: {errors}")
    say("")
    say(f"Killed the daemon process (pid {daemon.pid}) with SIGKILL while the commit "
        f"runs: exit status {daemon.returncode}.")
    return job_name


def daemon(status_path: Path, base_node: str, speed: int) -> None:
    """The daemon process: start the active commit, then follow events until killed."""
    def say(line: str) -> None:
        print(line, flush=True)

    store = StatusStore(status_path.parent)
    name = status_path.name.removesuffix(".xml")
    with JobTracker(store, name, on_save=_saved(say)) as tracker:
        job = tracker.start_active_commit(story.TARGET, base_node, speed=speed)
        say(f"{STARTED}{job.name}")
        while True:
            tracker.follow(WAIT_SECONDS)


def _base_counts(monitor: Monitor, base_node: str, expected: dict[str, int], say: Say) -> bool:
    node = monitor.query_nodes()[base_node]
    counts = {bitmap.name: bitmap.count for bitmap in node.bitmaps}
    enabled = all(bitmap.recording for bitmap in node.bitmaps if bitmap.name != "bm-off")
    shown = ", ".join(f"{name} {count >> 10} KiB" for name, count in sorted(counts.items()))
    say("")
    say(f"Base bitmaps now: {shown}.")
    good = counts == expected and enabled
    say("As expected." if good else f"UNEXPECTED: wanted {expected}, all recording but bm-off.")
    return good


def run_live(directory: Path, say: Say) -> bool:
    """Both live parts, each on a fresh lab below `directory`."""
    parts = ((live_commit, "live-commit"), (active_commit, "active-commit"))
    ok = True
    for part, name in parts:
        with Lab(directory / name, [DiskSpec(story.TARGET, story.chain())]) as tb:
            ok = part(tb, say) and ok
    return ok
