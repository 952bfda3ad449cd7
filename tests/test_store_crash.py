"""Real processes, real SIGKILL: a save is all or nothing, and concurrent writers never tear."""

from __future__ import annotations

import fcntl
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

from blockjob.store import LOCK, StatusStore
from tests.test_store_support import RawDocument, scratch_files, version

KILLS = int(os.environ.get("BLOCKJOB_CRASH_KILLS", "300"))


def _spawn(body: Callable[[], None]) -> int:
    """Fork a child running `body`; the child never returns into pytest."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        finally:
            os._exit(code)
    return pid


def _exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


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
    killed_mid_save = 0
    for kill in range(KILLS):
        pid = _spawn(_save_forever(store, (b, a) if kill % 2 else (a, b)))
        time.sleep(rng.uniform(0, 0.006))
        os.kill(pid, signal.SIGKILL)
        assert _exit_code(pid) == -signal.SIGKILL

        data = path.read_bytes()
        assert data in (a.data, b.data), f"torn file after kill {kill} (seed {seed})"
        killed_mid_save += bool(scratch_files(tmp_path))
        report = store.load_all()
        assert report.failures == [], f"kill {kill} (seed {seed})"
        assert report.documents["vm1"].dumps() == data
        assert scratch_files(tmp_path) == []
    print(f"\n{KILLS} kills, {killed_mid_save} mid-save, 0 torn (seed {seed})")
    # The kills must really land inside saves, or this test proves nothing.
    assert killed_mid_save > 0


def test_two_processes_saving_concurrently_lose_and_tear_nothing(tmp_path: Path) -> None:
    versions = [version("vm1", "first writer"), version("vm1", "second writer")]
    store = StatusStore(tmp_path)
    path = store.save(versions[0])

    def writer(doc: RawDocument) -> Callable[[], None]:
        def body() -> None:
            for _ in range(150):
                store.save(doc)

        return body

    running = {_spawn(writer(doc)) for doc in versions}
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
    assert scratch_files(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == [LOCK, "vm1.xml"]


def test_a_save_waits_for_the_directory_lock(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    old, new = RawDocument("vm1", b"old\n"), RawDocument("vm1", b"new\n")
    path = store.save(old)
    fd = os.open(tmp_path / LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what another writer or load_all holds

        def child() -> None:
            os.close(fd)  # the inherited descriptor shares the parent's lock; drop it
            store.save(new)

        pid = _spawn(child)
        time.sleep(0.3)  # ample for an unserialized save; a serialized one cannot finish
        assert path.read_bytes() == old.data
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)
    finally:
        os.close(fd)
    assert _exit_code(pid) == 0
    assert path.read_bytes() == new.data
