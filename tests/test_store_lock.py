"""The writers' lock: threads, forked children and other stores exclude each other."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blockjob.store import status_store as store_module
from blockjob.store.atomic import replace_file
from blockjob.store.lock import FileLock
from blockjob.store.status_store import LOCK, StatusStore
from tests.test_store_support import RawDocument, child_process, exit_code, status_bytes


class _Overlap:
    """A replace_file that records how many saves were inside it at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.count = threading.Lock()

    def __call__(self, path: Path, data: bytes, mode: int = 0o600) -> None:
        with self.count:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.001)  # widen the window an unserialized save would overlap in
        replace_file(path, data, mode)
        with self.count:
            self.inside -= 1


@pytest.mark.parametrize("shared", [True, False], ids=["one store", "a store per thread"])
def test_threads_saving_never_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    overlap = _Overlap()
    monkeypatch.setattr(store_module, "replace_file", overlap)
    one = StatusStore(tmp_path)
    docs = [RawDocument("vm1", status_bytes("vm1", f"thread {n}")) for n in range(4)]

    def saves(doc: RawDocument) -> None:
        store = one if shared else StatusStore(tmp_path)
        for _ in range(25):
            store.save(doc)

    threads = [threading.Thread(target=saves, args=(doc,), daemon=True) for doc in docs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)  # a guard against a deadlock, not a speed claim
        assert not thread.is_alive(), "saving threads deadlocked"
    assert overlap.most == 1
    assert (tmp_path / "vm1.xml").read_bytes() in [doc.data for doc in docs]


_Holder = Callable[[StatusStore], contextlib.AbstractContextManager[Callable[[], None]]]


@contextlib.contextmanager
def _other_descriptor(store: StatusStore) -> Iterator[Callable[[], None]]:
    """Another process's writer or load_all: a separate flock of `<directory>/.lock`."""
    fd = os.open(store.directory / LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield lambda: os.close(fd)  # the child drops its inherited copy
    finally:
        os.close(fd)


@contextlib.contextmanager
def _same_store(store: StatusStore) -> Iterator[Callable[[], None]]:
    """The parent holds the very lock object the forked child will use."""
    with store._lock.held():
        yield lambda: None


@pytest.mark.parametrize("holder", [_other_descriptor, _same_store])
def test_a_save_in_a_child_waits_for_the_lock_holder(tmp_path: Path, holder: _Holder) -> None:
    store = StatusStore(tmp_path)
    path = store.save(RawDocument("vm1", b"old\n"))
    with contextlib.ExitStack() as stack:
        holding = stack.enter_context(contextlib.ExitStack())
        in_child = holding.enter_context(holder(store))

        def child() -> None:
            in_child()
            store.save(RawDocument("vm1", b"child\n"))

        pid = stack.enter_context(child_process(child))
        time.sleep(0.3)  # ample for a save that does not wait for the lock
        assert path.read_bytes() == b"old\n"
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)
        holding.close()  # release; the child's save may go ahead
        assert exit_code(pid) == 0
    assert path.read_bytes() == b"child\n"


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_lock_descriptors_are_closed_with_their_store(tmp_path: Path) -> None:
    StatusStore(tmp_path).save(RawDocument("vm1", b"warm-up\n"))
    gc.collect()
    before = _open_descriptors()
    for n in range(50):
        StatusStore(tmp_path).save(RawDocument("vm1", f"{n}\n".encode()))
    gc.collect()
    assert _open_descriptors() == before


def test_a_closed_lock_reopens_on_next_use(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / ".lock")
    with lock.held():
        pass
    before = _open_descriptors()
    lock.close()
    assert _open_descriptors() == before - 1
    with lock.held():
        assert _open_descriptors() == before
