"""`StatusStore.save` against the bare atomic write of the same bytes, measured in pairs.

fsync latency drifts by tens of percent within seconds on a shared disk, so medians of two
separate runs compare two different disks. Here every round times one bare write, one save
and one save of already serialized bytes back to back, in random order; the ratios are
medians of the per-round ratios.


    python -m bench.store_save [STATUS_FILE ...] [--rounds N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from blockjob import StatusStore, loads

_DEFAULT_INPUT = Path(__file__).resolve().parent.parent.parent / "shared" / (
    "libvirt-9.0-status/blockcommit-running.xml"
)


def bare_atomic_write(directory: Path, target: Path, data: bytes) -> None:
    """The floor: write + fsync + rename + directory fsync, nothing else."""
    scratch = directory / "bare.tmp"
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(scratch, target)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class SaveRatio:
    bare_seconds: float  # median bare write + fsync + rename + directory fsync
    save_seconds: float  # median StatusStore.save (serialize, lock, scratch, link, rename, fsyncs)
    ratio: float  # median over rounds of save / bare
    store_ratio: float  # the same without serializing: a document whose dumps() is ready
    rounds: int


@dataclass(frozen=True)
class _Serialized:
    domain_name: str | None
    data: bytes

    def dumps(self) -> bytes:
        return self.data


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure_save(data: bytes, rounds: int = 1000, where: Path | None = None) -> SaveRatio:
    """Rounds of (bare write, save, save of ready bytes) of the status file `data`."""
    doc = loads(data)
    payload = doc.dumps()
    order = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="blockjob-save-", dir=where) as tmp:
        directory = Path(tmp)
        store = StatusStore(directory / "store")
        serialized = _Serialized(doc.domain_name, payload)
        bare_dir = directory / "bare"
        bare_dir.mkdir()
        group: list[tuple[str, Callable[[], object]]] = [
            ("bare", lambda: bare_atomic_write(bare_dir, bare_dir / "bare.xml", payload)),
            ("save", lambda: store.save(doc)),
            ("store", lambda: store.save(serialized)),
        ]
        for _, action in group:  # first calls create files and directories
            action()
        times: dict[str, list[float]] = {name: [] for name, _ in group}
        for _ in range(rounds):
            order.shuffle(group)
            for name, action in group:
                times[name].append(_timed(action))

    def ratio(name: str) -> float:
        return statistics.median(t / b for t, b in zip(times[name], times["bare"], strict=True))

    return SaveRatio(statistics.median(times["bare"]), statistics.median(times["save"]),
                     ratio("save"), ratio("store"), rounds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=[_DEFAULT_INPUT])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="on the status files' disk")
    args = parser.parse_args(argv)
    for path in args.files:
        result = measure_save(path.read_bytes(), args.rounds, args.dir)
        print(f"{path.name}: bare {result.bare_seconds * 1e6:.0f} us, "
              f"save {result.save_seconds * 1e6:.0f} us, "
              f"save/bare {result.ratio:.3f}, without serializing {result.store_ratio:.3f} "
              f"(median of {result.rounds} paired rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
