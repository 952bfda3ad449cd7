"""The per-domain lock: threads, forked children and other processes exclude each other."""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blockjob.store import status_store as store_module
from blockjob.store.atomic import Version, replace_file
from blockjob.store.status_store import DomainBusyError, DomainOwner, StatusStore, StoreError
from tests.test_store_support import (
    RawDocument,
    child_process,
    exit_code,
    lock_name,
    status_bytes,
)


class _Overlap:
    """A replace_file that records how many saves were inside it at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.count = threading.Lock()

    def __call__(self, path: Path, data: bytes, mode: int = 0o600, *, owned: bool = False,
                 expected: Version | None = None) -> Version | None:
        with self.count:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.001)  # widen the window an unserialized save would overlap in
        version = replace_file(path, data, mode, owned=owned, expected=expected)
        with self.count:
            self.inside -= 1
        return version


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
    """Another process owning the domain: a separate flock of its lock file."""
    fd = os.open(store.directory / lock_name("vm1"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield lambda: os.close(fd)  # the child drops its inherited copy
    finally:
        os.close(fd)


@contextlib.contextmanager
def _parent_owner(store: StatusStore) -> Iterator[Callable[[], None]]:
    """The parent owns the domain through the same store object the child uses."""
    with store.owned("vm1"):
        yield lambda: None


@pytest.mark.parametrize("holder", [_other_descriptor, _parent_owner])
def test_a_save_in_a_child_waits_for_the_owner(tmp_path: Path, holder: _Holder) -> None:
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


def test_a_child_forked_inside_the_block_can_neither_save_nor_release(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    path = store.save(RawDocument("vm1", b"old\n"))
    with store.owned("vm1") as owner:

        def child() -> None:
            try:
                owner.save(RawDocument("vm1", b"child\n"))
            except StoreError as exc:
                assert "forked child" in str(exc)
            else:
                raise AssertionError("a forked child saved through its parent's owner")

        with child_process(child) as pid:
            assert exit_code(pid) == 0
        # The child has exited with its copy of the lock: the domain is still ours.
        with pytest.raises(DomainBusyError), StatusStore(tmp_path).owned("vm1", timeout=0.05):
            pass
        owner.save(RawDocument("vm1", b"parent\n"))
    assert path.read_bytes() == b"parent\n"


def test_a_child_outliving_the_block_does_not_keep_the_domain(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    release = os.pipe()
    with store.owned("vm1"):
        child = child_process(lambda: os.read(release[0], 1))  # holds the inherited fd
        pid = child.__enter__()
    try:
        store.save(RawDocument("vm1", b"after\n"))  # not DomainBusyError
    finally:
        os.write(release[1], b"x")
        assert exit_code(pid) == 0
        child.__exit__(None, None, None)
        os.close(release[0])
        os.close(release[1])


def _fork_helper(started: int, release: int) -> None:
    """Fork a child unrelated to the store: it reports its pid, then lives until released."""
    if os.fork() == 0:
        try:
            os.write(started, os.getpid().to_bytes(4, "little"))
            os.read(release, 1)
        finally:
            os._exit(0)


@pytest.mark.parametrize("forker", ["owner thread", "another thread"])
def test_a_child_outliving_its_crashed_owner_does_not_keep_the_domain(
    tmp_path: Path, forker: str
) -> None:
    store = StatusStore(tmp_path)
    store.save(RawDocument("vm1", b"old\n"))
    started, release = os.pipe(), os.pipe()

    def owner() -> None:
        with store.owned("vm1"):
            fork = threading.Thread(target=_fork_helper, args=(started[1], release[0]))
            if forker == "owner thread":
                fork.run()
            else:
                fork.start()
                fork.join()
            os.read(release[0], 1)  # until killed

    helper = 0
    try:
        with child_process(owner) as pid:
            helper = int.from_bytes(os.read(started[0], 4), "little")
            os.kill(pid, signal.SIGKILL)  # the owner crashes; its helper lives on
            assert exit_code(pid) == -signal.SIGKILL
            with StatusStore(tmp_path).owned("vm1", timeout=0) as owner_now:
                owner_now.save(RawDocument("vm1", b"after the crash\n"))
    finally:
        os.write(release[1], b"x")  # the helper ends
        for fd in (*started, *release):
            os.close(fd)
    assert helper > 0
    assert (tmp_path / "vm1.xml").read_bytes() == b"after the crash\n"


def _descriptors_of(path: Path) -> int:
    """How many descriptors of this process refer to the file `path` names now."""
    file = path.stat()
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # e.g. the listing's own descriptor, closed
            seen = os.stat(f"/proc/self/fd/{fd}")
            count += (seen.st_dev, seen.st_ino) == (file.st_dev, file.st_ino)
    return count


def _wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true (deadlocked?)"
        time.sleep(0.005)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_waiter_whose_lock_file_is_deleted_or_replaced_locks_the_file_now_named(
    tmp_path: Path, how: str
) -> None:
    # An owner waiting on the old file gets it when the holder leaves; it must see that the
    # lock's name gives another file now and lock that one, or a newcomer (which opens the
    # name) would own the domain at the same time.
    store = StatusStore(tmp_path)
    lock = tmp_path / lock_name("vm1")
    entered, leave = threading.Event(), threading.Event()

    def waiter() -> None:
        with StatusStore(tmp_path).owned("vm1", timeout=60):
            entered.set()
            leave.wait(60)

    thread = threading.Thread(target=waiter, daemon=True)
    with store.owned("vm1"):
        thread.start()
        _wait_for(lambda: _descriptors_of(lock) == 2)  # the holder's and the waiter's
        if how == "deleted":
            lock.unlink()
        else:
            lock.rename(tmp_path / "old.lock")
            lock.write_bytes(b"")
    try:
        assert entered.wait(60)
        with pytest.raises(DomainBusyError, match="owned by another process or thread"), \
                store.owned("vm1", timeout=0):
            pass
    finally:
        leave.set()
        thread.join(60)
    assert lock.exists()


def test_an_owner_refuses_to_work_after_its_block(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    with store.owned("vm1") as owner:
        pass
    for use in (owner.exists, owner.load, lambda: owner.save(RawDocument("vm1", b"late\n"))):
        with pytest.raises(StoreError, match="block has ended"):
            use()
    assert not (tmp_path / "vm1.xml").exists()


def test_owning_a_domain_again_in_the_same_thread_fails_at_once(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    with store.owned("vm1") as owner:
        with pytest.raises(StoreError, match="already owned by this thread"):
            store.save(RawDocument("vm1", b"blind\n"))  # would wait for itself otherwise
        with store.owned("vm2"):  # another domain is another lock
            pass
        owner.save(RawDocument("vm1", b"through the owner\n"))
    assert (tmp_path / "vm1.xml").read_bytes() == b"through the owner\n"


def test_owning_a_domain_again_through_another_spelling_fails_at_once(tmp_path: Path) -> None:
    # The same lock file by another path (a symlinked directory): it is the file that counts.
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with StatusStore(tmp_path / "real").owned("vm1"):
        with pytest.raises(StoreError, match="already owned by this thread"):
            StatusStore(tmp_path / "link").save(RawDocument("vm1", b"blind\n"))
        with pytest.raises(StoreError, match="already owned by this thread"), \
                StatusStore(tmp_path / "link").owned("vm1", timeout=60):
            pass


@pytest.mark.parametrize("timeout", [-1.0, -math.inf, math.nan])
def test_a_negative_or_nan_timeout_is_refused(tmp_path: Path, timeout: float) -> None:
    # NaN never reaches a deadline: with it, a busy domain was waited for forever.
    with pytest.raises(ValueError, match=f"timeout must be a number of seconds >= 0, not "
                                         f"{timeout!r}"), \
            StatusStore(tmp_path).owned("vm1", timeout=timeout):
        pass
    assert not (tmp_path / lock_name("vm1")).exists()


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_saves_leave_no_descriptor_open(tmp_path: Path) -> None:
    StatusStore(tmp_path).save(RawDocument("vm1", b"warm-up\n"))
    before = _open_descriptors()
    for n in range(50):
        StatusStore(tmp_path).save(RawDocument("vm1", f"{n}\n".encode()))
    with pytest.raises(StoreError), StatusStore(tmp_path).owned("vm1") as owner:
        owner.save(RawDocument("vm2", b"wrong domain\n"))
    assert _open_descriptors() == before


def test_an_owner_not_made_by_owned_can_read_but_not_save(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    path = store.save(RawDocument("vm1", status_bytes("vm1")))
    reader = DomainOwner(store, "vm1", path)  # e.g. a dry run, which must never save
    assert reader.exists() and reader.load().domain_name == "vm1"
    with pytest.raises(StoreError, match=r"not owned: save through StatusStore\.owned"):
        reader.save(RawDocument("vm1", b"around the lock\n"))
    assert path.read_bytes() == status_bytes("vm1")
