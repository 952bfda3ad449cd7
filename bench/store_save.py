"""`StatusStore` saves against the bare atomic write of the same bytes, measured in pairs.

fsync latency drifts by tens of percent within seconds on a shared disk, so medians of two
separate runs compare two different disks. Here every round times, back to back in random
order: one bare write; one save after one job changed, through the domain's owner held
across saves (what the tracker and recovery do: they own the domain for their whole run,
`bench.edits`; the edit itself is not timed); one `StatusStore.save` of an unchanged
document (the one-off save, which takes and releases the domain lock each time); and one
owner save of already serialized bytes (the store alone). The ratios are medians of the
per-round ratios.

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

from bench.edits import OneJobChanged
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
class Timing:
    """One kind of save: its median time and its median per-round ratio to the bare write."""

    seconds: float
    ratio: float


@dataclass(frozen=True)
class SaveRatio:
    bare_seconds: float  # median bare write + fsync + rename + directory fsync
    changed: Timing  # an owner's save after one job changed (serialize, scratch, fsyncs, ...)
    unchanged: Timing  # StatusStore.save (lock taken per save) of a document unchanged since
    store: Timing  # the store alone: an owner's save of a document whose dumps() is ready
    rounds: int


@dataclass(frozen=True)
class _Serialized:
    domain_name: str | None
    data: bytes

    def dumps(self) -> bytes:
        return self.data


def _timed(action: Callable[[], object], setup: Callable[[], object] | None) -> float:
    if setup is not None:
        setup()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure_save(data: bytes, rounds: int = 1000, where: Path | None = None) -> SaveRatio:
    """Rounds of (bare write, saves of three kinds) of the status file `data`."""
    doc, edited = loads(data), loads(data)
    edit = OneJobChanged(edited)
    payload = doc.dumps()
    order = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="blockjob-save-", dir=where) as tmp:
        directory = Path(tmp)
        store, owned = StatusStore(directory / "store"), StatusStore(directory / "owned")
        serialized = _Serialized(doc.domain_name, payload)
        bare_dir = directory / "bare"
        bare_dir.mkdir()
        assert doc.domain_name is not None
        with owned.owned(doc.domain_name) as owner:
            # (name, untimed setup, timed action): the edit is made before its save is timed.
            group: list[tuple[str, Callable[[], object] | None, Callable[[], object]]] = [
                ("bare", None,
                 lambda: bare_atomic_write(bare_dir, bare_dir / "bare.xml", payload)),
                ("changed", edit, lambda: owner.save(edited)),
                ("unchanged", None, lambda: store.save(doc)),
                ("store", None, lambda: owner.save(serialized)),
            ]
            for _, setup, action in group:  # first calls create files and directories
                _timed(action, setup)
            times: dict[str, list[float]] = {name: [] for name, _, _ in group}
            for _ in range(rounds):
                order.shuffle(group)
                for name, setup, action in group:
                    times[name].append(_timed(action, setup))

    def timing(name: str) -> Timing:
        ratio = statistics.median(
            t / b for t, b in zip(times[name], times["bare"], strict=True))
        return Timing(statistics.median(times[name]), ratio)

    return SaveRatio(statistics.median(times["bare"]), timing("changed"), timing("unchanged"),
                     timing("store"), rounds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=[_DEFAULT_INPUT])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="on the status files' disk")
    args = parser.parse_args(argv)
    for path in args.files:
        result = measure_save(path.read_bytes(), args.rounds, args.dir)
        print(f"{path.name}: bare {result.bare_seconds * 1e6:.0f} us; save/bare: "
              f"one job changed (owner held) {result.changed.ratio:.3f} "
              f"({result.changed.seconds * 1e6:.0f} us), "
              f"unchanged (StatusStore.save) {result.unchanged.ratio:.3f}, "
              f"without serializing {result.store.ratio:.3f} "
              f"(medians of {result.rounds} paired rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
