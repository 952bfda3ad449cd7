"""Lock-less readers during saves: every read is one whole version, on a real disk.

One process saves three versions of different sizes in a loop. One reader opens, reads and
closes the status file over and over; the other opens it, reads it, keeps the descriptor open
while the saver finishes several more saves, and reads it again: it must get the very same
bytes. The counts are printed (`-s`) so runs on old and new code compare.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from blockjob.store.status_store import SavableDocument, StatusStore
from tests.support.disk import disk_directory, filesystem_type
from tests.test_store_support import child_process, exit_code, version

READS = int(os.environ.get("BLOCKJOB_TORN_READS", "20000"))
# Saves a held descriptor must outlive before it is read again.
SAVES_WHILE_HELD = 3
# Reads are spread over at least this many saves, or they would all fall between two saves.
SAVES_PER_READ = 1 / 100
# Shared counters: saves, plain reads, plain torn, held reads, held torn, versions seen, done.
_SLOTS = 7
SAVES, PLAIN, PLAIN_TORN, HELD, HELD_TORN, SEEN, DONE = range(_SLOTS)


class Counters:
    """Counters in memory shared with forked children."""

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, 8 * _SLOTS)

    def __getitem__(self, slot: int) -> int:
        value: int = struct.unpack_from("q", self._memory, 8 * slot)[0]
        return value

    def __setitem__(self, slot: int, value: int) -> None:
        struct.pack_into("q", self._memory, 8 * slot, value)


def _read_whole(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def saver(
    store: StatusStore, docs: Sequence[SavableDocument], counts: Counters
) -> Callable[[], None]:
    def body() -> None:
        while True:
            for doc in docs:
                store.save(doc)
                counts[SAVES] += 1

    return body


def plain_reader(path: Path, whole: set[bytes], counts: Counters) -> Callable[[], None]:
    def body() -> None:
        seen = set()
        while counts[PLAIN] < READS or counts[SAVES] < READS * SAVES_PER_READ:
            with open(path, "rb") as file:
                data = file.read()
            seen.add(data)
            counts[PLAIN] += 1
            counts[PLAIN_TORN] += data not in whole
        counts[SEEN] = len(seen & whole)
        counts[DONE] = 1

    return body


def held_reader(path: Path, whole: set[bytes], counts: Counters) -> Callable[[], None]:
    def body() -> None:
        while counts[DONE] == 0:  # until the plain reader is done
            fd = os.open(path, os.O_RDONLY)
            try:
                first = _read_whole(fd)
                counts[HELD_TORN] += first not in whole
                start = counts[SAVES]
                while counts[SAVES] < start + SAVES_WHILE_HELD and counts[DONE] == 0:
                    time.sleep(0.0005)
                again = _read_whole(fd)
                counts[HELD] += 2
                counts[HELD_TORN] += again != first
            finally:
                os.close(fd)

    return body


def saved_while_read(
    store: StatusStore, docs: Sequence[SavableDocument], whole: set[bytes]
) -> Counters:
    """Save `docs` in turn (the first once before) while a plain and a held-descriptor
    reader read the file without a lock, each checking every read is in `whole`."""
    path = store.save(docs[0])
    counts = Counters()
    with contextlib.ExitStack() as children:
        writer = children.enter_context(child_process(saver(store, docs, counts)))
        readers = [children.enter_context(child_process(reader(path, whole, counts)))
                   for reader in (plain_reader, held_reader)]
        assert [exit_code(pid, timeout=3600) for pid in readers] == [0, 0]
        assert os.waitpid(writer, os.WNOHANG) == (0, 0), "the saver died"
    return counts


@pytest.mark.fuzz
def test_lockless_readers_only_ever_see_whole_versions(tmp_path: Path) -> None:
    with disk_directory(tmp_path) as directory:
        store = StatusStore(directory)
        docs = [version("vm1", note, size) for note, size in
                (("A", 96 * 1024), ("B", 24 * 1024), ("C", 64 * 1024))]
        whole = {doc.data for doc in docs}
        counts = saved_while_read(store, docs, whole)
        reads = counts[PLAIN] + counts[HELD]
        print(f"\n{filesystem_type(directory)}: {counts[SAVES]} saves, {reads} reads "
              f"({counts[PLAIN]} plain, {counts[HELD]} through a held descriptor), "
              f"torn: {counts[PLAIN_TORN]} plain, {counts[HELD_TORN]} held")
        assert counts[SEEN] == len(docs), "the readers must meet every version"
        assert counts[HELD] > 0
        assert (counts[PLAIN_TORN], counts[HELD_TORN]) == (0, 0)
