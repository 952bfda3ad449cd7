"""Saving one document durably vs the bare atomic write of the same bytes (`bench.store_save`)."""

from __future__ import annotations

from pathlib import Path

from bench.store_save import measure_save
from bench.table import Row
from bench.timing import Budget

_BARE = "write+fsync+rename+dir fsync"


def save_rows(name: str, data: bytes, budget: Budget, where: Path | None = None) -> list[Row]:
    """Saves (serialize, scratch file, fsyncs, rename; the lock) on a real disk.

    `where` should be on the file system status files live on: fsync costs differ by orders
    of magnitude between tmpfs and a disk. Rounds time a bare write and the saves back to
    back in random order (fsync latency drifts within seconds); the notes give the median
    of the per-round ratios, and that ratio for bytes serialized beforehand.
    """
    result = measure_save(data, rounds=max(budget.repeat, budget.number), where=where)
    store = f"{result.store.ratio:.2f}x without serializing"
    return [
        Row("save (fsync), one job changed, owner held", name, result.changed.seconds, _BARE,
            result.bare_seconds, "<= 1.15",
            note=f"per-round ratio {result.changed.ratio:.2f}x, {store}"),
        Row("save (fsync), unchanged document, StatusStore.save", name,
            result.unchanged.seconds, _BARE, result.bare_seconds, "<= 1.15",
            note=f"per-round ratio {result.unchanged.ratio:.2f}x, domain lock taken per save"),
    ]
