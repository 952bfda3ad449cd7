"""Many real QEMUs, each a domain whose commit concluded while no daemon was listening.

Every domain is the demo's story (base <- mid <- top, checkpoint bitmaps in every image; see
`blockjob/demo/story.py`) shrunk `SHRINK` times, so that its images take about 2 MB: the
images are built once with qemu-img/qemu-io and copied for each domain. Domains are set
up and torn down by a thread pool; each one's QEMU is a `-machine none` process.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from blockjob.demo.images import ImageSpec, Write, build_chain
from blockjob.demo.lab import DiskSpec, Lab
from blockjob.demo.qemu import QemuStartError
from blockjob.demo.story import EXPECTED_AFTER_COMMIT, SIZE, TARGET, chain
from blockjob.jobs.commit import start_commit
from blockjob.qemu.monitor import MonitorUnavailableError
from blockjob.store.status_store import StatusStore

HAVE_QEMU = all(shutil.which(tool) for tool in ("qemu-system-x86_64", "qemu-img", "qemu-io"))
# Every offset and length of the story is a multiple of 1 MiB and the bitmaps' granularity
# is 64 KiB, so shrinking 8 times keeps every write on whole bitmap clusters.
SHRINK = 8
TOP, MID, BASE = "libvirt-1-format", "libvirt-2-format", "libvirt-3-format"
JOB = f"commit-{TARGET}-{MID}"
# Base's dirty bytes once a commit is reconciled: the story's figures, shrunk.
EXPECTED_BITMAPS = {name: count // SHRINK for name, count in EXPECTED_AFTER_COMMIT.items()}
# Setup work in flight (QEMU starts, image copies): the machine has 2 cores.
SETUP_WORKERS = 8
_CONCLUDE_LIMIT = 60.0
# A domain's set-up is tried this often: on a shared host a fresh QEMU sometimes stalls for
# longer than the monitor's timeouts (seen during I/O pressure), which is not what the
# benchmark measures and should not end a run of many minutes.
SETUP_ATTEMPTS = 3


def _shrink(spec: ImageSpec) -> ImageSpec:
    steps = tuple(
        Write(step.offset // SHRINK, step.length // SHRINK, step.pattern)
        if isinstance(step, Write) else step
        for step in spec.steps
    )
    return ImageSpec(spec.name, steps, spec.fail_reads_at)


def small_chain() -> tuple[ImageSpec, ...]:
    return tuple(_shrink(spec) for spec in chain())


class Templates:
    """The chain's images, built once and copied for every domain (building costs 14
    qemu-img/qemu-io runs; a copy costs none)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        self.paths = {p.name: p for p in build_chain(directory, small_chain(), SIZE // SHRINK)}

    def copy(self, directory: Path, images: Sequence[ImageSpec], size: int) -> list[Path]:
        del size  # the templates have theirs
        paths = [directory / f"{spec.name}.qcow2" for spec in images]
        for path in paths:
            shutil.copyfile(self.paths[path.name], path)  # backing names are relative
        return paths


def _start(lab: Lab) -> None:
    """`_start_once`, again from scratch (fresh images, a new QEMU) when the host stalled it."""
    for attempt in range(1, SETUP_ATTEMPTS + 1):
        try:
            _start_once(lab)
            return
        except (MonitorUnavailableError, QemuStartError, TimeoutError) as error:
            if attempt == SETUP_ATTEMPTS:
                raise
            print(f"bench: {lab.name}: set-up attempt {attempt} failed ({error}); again",
                  file=sys.stderr)


def _start_once(lab: Lab) -> None:
    """QEMU up, chain attached, the commit started and left to conclude unseen; QEMU
    stopped again if any of it fails (the next attempt starts another)."""
    try:
        lab.start()
        with StatusStore(lab.directory).owned(lab.name) as owner:
            start_commit(owner, TARGET, MID, BASE)
        with lab.connect() as monitor:
            deadline = time.monotonic() + _CONCLUDE_LIMIT
            while (found := monitor.query_jobs().get(JOB)) is None or found.status != "concluded":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{lab.name}: {JOB} did not conclude")
                time.sleep(0.01)
    except BaseException:
        lab.stop()
        raise


@contextmanager
def fleet(root: Path, count: int, templates: Templates) -> Iterator[list[Lab]]:
    """`count` running domains under `root`, each with a concluded commit; all stopped and
    removed on exit."""
    labs = [
        Lab(root / f"d{number:04d}", [DiskSpec(TARGET, small_chain())], name=f"dom{number:04d}",
            build=templates.copy)
        for number in range(count)
    ]
    for lab in labs:
        lab.directory.mkdir(parents=True)
    try:
        _each(labs, _start)
        yield labs
    finally:
        _each(labs, Lab.stop)
        shutil.rmtree(root, ignore_errors=True)


def _each(labs: Sequence[Lab], action: Callable[[Lab], None]) -> None:
    with ThreadPoolExecutor(SETUP_WORKERS) as pool:
        for _ in pool.map(action, labs):
            pass  # re-raise the first failure


_UUID = re.compile(r"<uuid>[^<]*</uuid>")
# The store's hidden files carry a hash of the domain's file name: scratch files and locks.
_HIDDEN = re.compile(r"\.blockjob-[0-9a-f]{16}[.0-9a-z]*\.(tmp|lock)")


def end_state(lab: Lab, report_lines: Sequence[str]) -> str:
    """Everything recovery left behind, with what differs by construction between domains
    (directory, name, socket, pid) replaced: the status file, the report, QEMU's jobs,
    nodes and bitmaps, the files in the domain's directory."""

    def same(text: str) -> str:
        text = text.replace(str(lab.directory), "@DIR").replace(lab.monitor_path, "@MONITOR")
        text = text.replace(f"pid='{lab.qemu.pid}'", "pid='@PID'")
        return _UUID.sub("<uuid>@UUID</uuid>", text.replace(lab.name, "@NAME"))

    with lab.connect() as monitor:
        jobs = sorted(job.id for job in monitor.query_jobs().values())
        nodes = {
            name: {"driver": node.driver, "read_only": node.read_only,
                   "bitmaps": [asdict(bitmap) for bitmap in node.bitmaps]}
            for name, node in sorted(monitor.query_nodes().items())
            if not name.startswith("#")  # QEMU's generated names for implicit nodes
        }
    files = sorted(str(path.relative_to(lab.directory)) for path in lab.directory.rglob("*")
                   if path.suffix != ".log")
    state = {
        "status file": same(lab.status_path.read_text()),
        "report": [same(line) for line in report_lines],
        "qemu jobs": jobs,
        "qemu nodes": nodes,
        "files": [_HIDDEN.sub(r".blockjob-@.\1", same(name)) for name in files],
    }
    return json.dumps(state, indent=1, sort_keys=True)


def reconciled(lab: Lab) -> bool:
    """The commit is finished the right way: no job left, mid gone, base's bitmaps merged."""
    with lab.connect() as monitor:
        if monitor.query_jobs():
            return False
        nodes = monitor.query_nodes()
    if MID in nodes or BASE not in nodes:
        return False
    return {b.name: b.count for b in nodes[BASE].bitmaps} == EXPECTED_BITMAPS
