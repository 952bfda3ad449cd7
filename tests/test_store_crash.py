"""Real processes, real SIGKILL: a save is all or nothing, and concurrent writers never tear."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

from blockjob.store.status_store import StatusStore
from tests.test_store_support import (
    RawDocument,
    child_process,
    exit_code,
    lock_name,
    scratch_files,
    version,
)

KILLS = int(os.environ.get("BLOCKJOB_CRASH_KILLS", "300"))


def _save_forever(store: StatusStore, versions: tuple[RawDocument, ...]) -> Callable[[], None]:
    def body() -> None:
        while True:
            for doc in versions:
                store.save(doc)

    return body


def test_sigkill_at_random_moments_never_tears_the_file(tmp_path: Path) -> None:
    a, b = version("vm1", "A"), version("vm1", "B")
    store = StatusStore(tmp_path)
    path = store.save(a)
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    torn_scratch = 0  # kills that interrupted the write of a new version
    seen = set()
    for kill in range(KILLS):
        with child_process(_save_forever(store, (b, a) if kill % 2 else (a, b))) as pid:
            time.sleep(rng.uniform(0, 0.006))
            os.kill(pid, signal.SIGKILL)
            assert exit_code(pid) == -signal.SIGKILL

        data = path.read_bytes()
        assert data in (a.data, b.data), f"torn file after kill {kill} (seed {seed})"
        seen.add(data)
        torn_scratch += any(
            (tmp_path / name).read_bytes() not in (a.data, b.data)
            for name in scratch_files(tmp_path)
        )
        report = store.load_all()
        assert report.failures == [], f"kill {kill} (seed {seed})"
        assert report.documents["vm1"].dumps() == data
        assert scratch_files(tmp_path) == []
    print(f"\n{KILLS} kills, 0 torn status files, {torn_scratch} torn scratch files "
          f"(seed {seed})")
    # The children must get saves done between kills, or this test proves nothing.
    assert seen == {a.data, b.data}


def test_two_processes_saving_concurrently_lose_and_tear_nothing(tmp_path: Path) -> None:
    versions = [version("vm1", "first writer"), version("vm1", "second writer")]
    store = StatusStore(tmp_path)
    path = store.save(versions[0])

    def writer(doc: RawDocument) -> Callable[[], None]:
        def body() -> None:
            for _ in range(150):
                store.save(doc)

        return body

    with contextlib.ExitStack() as children:
        running = {children.enter_context(child_process(writer(doc))) for doc in versions}
        exit_codes = []
        reads = 0
        while running:
            for pid in list(running):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    running.discard(pid)
                    exit_codes.append(os.waitstatus_to_exitcode(status))
            assert path.read_bytes() in (versions[0].data, versions[1].data)
            reads += 1
    assert exit_codes == [0, 0]
    assert reads > 1
    # Nothing but the status file and its lock: no scratch file outlives a save.
    assert sorted(os.listdir(tmp_path)) == sorted([lock_name("vm1"), "vm1.xml"])
