"""A daemon process that dies by SIGKILL at one named crash point (the crash tests).

`python tests/support/tracker_kill.py STATUS_PATH FLOW POINT` opens a tracker on the
domain of STATUS_PATH and runs FLOW on an active commit of vda into the bottom of its
chain: `start` (start it), `start-recording` (start it with base's bitmaps left
recording), `pivot` (start, follow to ready, pivot) or `abort` (start, follow to ready,
abort). When the flow reaches crash point POINT (a value of
`CrashPoint`, `PivotCrashPoint` or `AbortCrashPoint`) the process sends itself SIGKILL:
no cleanup runs, the kernel drops its QMP connection and its lock. Reaching the end of
the flow without meeting POINT exits with status 3.

POINT `-` names no point: the process prints `open` once its tracker is open and runs
`pivot` or `abort` to the end (the job finished, exit 0), for a parent that SIGKILLs it
at an instant of its own choosing. Flow `backup` (POINT `-` only) is a pull backup of
vda and vdb the parent recorded: vda's job is cancelled, and the tracker follows until
the backup has ended (libvirt then cancels vdb's job too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from blockjob.model import JobState
from blockjob.statusxml.document import StatusDocument
from blockjob.store.status_store import StatusStore
from blockjob.tracker import JobTracker

FLOWS = ("start", "start-recording", "pivot", "abort", "backup")
WAIT = 60.0
BACKUP_VDA = "backup-vda-libvirt-1-format"  # tests/support/finish_lab.py: backup_job
ANY_INSTANT = "-"


def _ready(doc: StatusDocument) -> bool:
    return any(job.state is JobState.READY for job in doc.jobs)


def run(path: Path, flow: str, point: str) -> int:
    def kill_at(reached: StrEnum) -> None:
        if reached == point:
            os.kill(os.getpid(), signal.SIGKILL)

    with JobTracker(StatusStore(path.parent), path.name.removesuffix(".xml")) as tracker:
        print("open", flush=True)
        if flow == "backup":
            tracker.monitor.job_cancel(BACKUP_VDA)
            return 0 if tracker.wait_for(lambda doc: not doc.jobs, WAIT) else 5
        disk = tracker.doc.disk("vda")
        assert disk is not None and disk.chain is not None
        base = disk.chain.images()[-1].format_node or ""
        job = tracker.start_active_commit("vda", base, crash=kill_at,
                                          disable_base_bitmaps=flow != "start-recording")
        if flow.startswith("start"):
            return 3
        if not tracker.wait_for(_ready, WAIT):
            return 4
        if flow == "pivot":
            tracker.pivot(job.name, crash=kill_at)
        else:
            tracker.abort(job.name, crash=kill_at)
        if point == ANY_INSTANT:
            return 0 if tracker.wait_for(lambda doc: doc.job(job.name) is None, WAIT) else 5
    return 3


def killed_after_open(status_path: str, flow: str, delay: float,
                      prefix: tuple[str, ...] = (),
                      meanwhile: Callable[[], object] = lambda: None) -> None:
    """Run this script on `status_path` for `flow` at any instant (behind `prefix`, such as
    an `nsenter` into a namespace) and SIGKILL it `delay` seconds after its tracker is
    open (`meanwhile` called once it is); it must have opened, and ended by the kill or at
    the flow's end."""
    proc = subprocess.Popen([*prefix, sys.executable, __file__, status_path, flow,
                             ANY_INSTANT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        opened = proc.stdout.readline() if proc.stdout is not None else ""
        meanwhile()
        time.sleep(delay)
        proc.kill()
    finally:
        out, err = proc.communicate(timeout=120)
    assert opened == "open\n", (opened, out, err)
    assert proc.returncode in (0, -signal.SIGKILL), (proc.returncode, out, err)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in FLOWS:
        sys.exit(f"usage: {sys.argv[0]} STATUS_PATH {{{','.join(FLOWS)}}} POINT")
    sys.exit(run(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
