"""The main job end to end, on real QEMU: commit, the daemon goes away, recovery.

Everything lives in a temporary directory and one QEMU process, both removed at
the end whatever happens, also when SIGINT, SIGTERM or SIGHUP stops the demo
(`blockjob.demo.signals`; it then raises `Stopped`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from blockjob.demo import story
from blockjob.demo.lab import DiskSpec, Lab
from blockjob.demo.live import run_live
from blockjob.demo.picture import disk_picture
from blockjob.demo.signals import stopping_on_signals
from blockjob.jobs.commit import start_commit
from blockjob.qemu.monitor import CONCLUDED, Monitor
from blockjob.recovery import recover
from blockjob.statusxml.document import StatusDocument, load
from blockjob.store.status_store import StatusStore

Say = Callable[[str], None]
# Slow enough that the daemon leaves while the job runs; 4 MiB to copy.
COMMIT_SPEED = 8 << 20
WAIT_SECONDS = 60.0


def _wait_concluded(monitor: Monitor, job: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = monitor.query_jobs().get(job)
        if found is None or found.status == CONCLUDED:
            return
        time.sleep(0.05)
    raise TimeoutError(f"job {job} did not conclude within {WAIT_SECONDS:g} s")


def _picture(tb: Lab, doc: StatusDocument, title: str, say: Say) -> None:
    with tb.connect() as monitor:
        lines = disk_picture(tb, doc, monitor, title)
    say("")
    for line in lines:
        say(line)


def _status_excerpt(path: Path, say: Say) -> None:
    text = path.read_text()
    start = text.index("  <blockjobs")
    end = text.index("\n", text.index("blockjobs", start + 12)) + 1
    say("")
    say(f"{path.name}, <blockjobs>:")
    for line in text[start:end].splitlines():
        say(line)


def run_demo(say: Say = print) -> int:
    with stopping_on_signals(), tempfile.TemporaryDirectory(prefix="blockjob-demo-") as tmp:
        directory = Path(tmp)
        with Lab(directory, [DiskSpec(story.TARGET, story.chain())]) as tb:
            offline = _story(tb, directory, say)
        return 0 if run_live(directory, say) and offline == 0 else 1


def _story(tb: Lab, directory: Path, say: Say) -> int:
    top, mid, base = tb.disks[0].images
    say(f"QEMU {tb.qemu.pid} runs disk {story.TARGET}: "
        f"{top.path.name} -> {mid.path.name} -> {base.path.name}")
    _picture(tb, load(tb.status_path), "1. Before the commit", say)

    with tb.connect() as daemon, StatusStore(directory).owned(tb.name) as owner:
        job = start_commit(owner, story.TARGET, mid.format_node, base.format_node,
                           monitor=daemon, speed=COMMIT_SPEED)
    say("")
    say(f"The daemon started {job.name} (mid into base), disabled "
        f"{', '.join(job.disabled_base_bitmaps)} in base, and went away.")
    _status_excerpt(tb.status_path, say)

    with tb.connect() as observer:
        _wait_concluded(observer, job.name)
    _picture(tb, load(tb.status_path), "2. Daemon away: job concluded, base bitmaps disabled", say)

    report = recover([tb.status_path])
    say("")
    say("Recovery (blockjob recover):")
    for domain in report.domains:
        for line in domain.lines():
            say(line)
    _picture(tb, load(tb.status_path), "3. After recovery", say)
    return 0 if report.ok and _check(tb, base.format_node, say) else 1


def _check(tb: Lab, base_node: str, say: Say) -> bool:
    """Compare base's bitmaps with what the story says they must hold now."""
    with tb.connect() as monitor:
        node = monitor.query_nodes()[base_node]
    counts = {bitmap.name: bitmap.count for bitmap in node.bitmaps}
    enabled = all(bitmap.recording for bitmap in node.bitmaps if bitmap.name != "bm-off")
    good = counts == story.EXPECTED_AFTER_COMMIT and enabled
    shown = ", ".join(f"{name} {count >> 10} KiB" for name, count in sorted(counts.items()))
    say("")
    say(f"Base bitmaps now: {shown}.")
    say("As expected: checkpoints merged, commit writes not counted twice." if good
        else f"UNEXPECTED: wanted {story.EXPECTED_AFTER_COMMIT}, all recording but bm-off.")
    return good
