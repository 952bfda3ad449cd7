"""Lost updates: processes changing different jobs of one domain at once lose none.

Each writer owns the domain (`StatusStore.owned`), loads it, counts its own job one up (in
`jobflags`) and saves, many times. An update lost to another writer's save of an older
document would leave that writer's count short in the final file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from blockjob.demo.qemu import AttachedImage
from blockjob.demo.statusfile import DiskChain, domstatus_xml
from blockjob.model import BlockJob, JobState, JobType, PullData
from blockjob.statusxml.document import loads
from blockjob.store import StatusStore
from tests.support.disk import disk_directory
from tests.test_store_support import child_process, exit_code

WRITERS = 4
# Changes in total, spread over the writers; `make fuzz` raises it.
CHANGES = int(os.environ.get("BLOCKJOB_LOST_UPDATE_CHANGES", "400"))
# Waiting for the other writers is bounded too; this only has to outlast their turns.
TURN_TIMEOUT = 120.0


def _domain() -> bytes:
    """Domain vm1 with one disk per writer (a disk has at most one job), two images each."""
    disks = [DiskChain(f"vd{chr(ord('a') + n)}",
                       tuple(AttachedImage(Path(f"/img/{n}-{i}.qcow2"), 2 * n + i + 1)
                             for i in range(2)))
             for n in range(WRITERS)]
    return domstatus_xml("vm1", "/run/qmp.sock", 1, disks)


def _writer(directory: Path, writer: int, changes: int) -> Callable[[], None]:
    job_name, disk, base = f"pull-{writer}", f"vd{chr(ord('a') + writer)}", 2 * writer + 2
    def body() -> None:
        store = StatusStore(directory)
        for _ in range(changes):
            with store.owned("vm1", timeout=TURN_TIMEOUT) as owner:
                doc = owner.load()
                job = doc.job(job_name)
                if job is None:
                    doc.add_job(BlockJob(job_name, JobType.PULL, JobState.RUNNING, jobflags=1,
                                         disk=disk, data=PullData(f"libvirt-{base}-format")))
                else:
                    doc.replace_job(replace(job, jobflags=(job.jobflags or 0) + 1))
                owner.save(doc)

    return body


@pytest.mark.fuzz
def test_concurrent_read_modify_writes_lose_no_update(tmp_path: Path) -> None:
    with disk_directory(tmp_path) as directory:
        store = StatusStore(directory)
        store.save(loads(_domain()))
        each = -(-CHANGES // WRITERS)
        names = [f"pull-{n}" for n in range(WRITERS)]
        with contextlib.ExitStack() as children:
            pids = [children.enter_context(child_process(_writer(directory, n, each)))
                    for n in range(WRITERS)]
            assert [exit_code(pid, timeout=3600) for pid in pids] == [0] * WRITERS
        final = store.load("vm1")
        counts = {name: (job.jobflags if (job := final.job(name)) else 0) for name in names}
        lost = WRITERS * each - sum(count or 0 for count in counts.values())
        print(f"\n{WRITERS} writers, {WRITERS * each} changes, {lost} lost: {counts}")
        assert counts == dict.fromkeys(names, each)
