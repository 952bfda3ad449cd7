"""Peak RSS of loading a directory of status files, measured in a fresh interpreter.

`python -m bench.memory DIR` prints `rss_before peak_rss bytes_on_disk documents`: resident
set before loading (after imports) and its high-water mark after `load_all`, in bytes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.table import Row


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def probe(directory: Path) -> str:
    from blockjob import StatusStore  # noqa: PLC0415

    on_disk = sum(p.stat().st_size for p in directory.glob("*.xml"))
    before = _status_kb("VmRSS") * 1024
    report = StatusStore(directory).load_all()
    peak = _status_kb("VmHWM") * 1024
    return f"{before} {peak} {on_disk} {len(report.documents)}"


def memory_rows(directory: Path) -> list[Row]:
    done = subprocess.run([sys.executable, "-m", "bench.memory", str(directory)],
                          capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    before, peak, on_disk, documents = map(int, done.stdout.split())
    return [Row("peak RSS growth", f"{documents:,} docs loaded", (peak - before) / 1e6,
                "bytes on disk", on_disk / 1e6, "<= 3",
                note=f"absolute peak {peak / 1e6:.0f} MB", unit="MB")]


if __name__ == "__main__":
    print(probe(Path(sys.argv[1])))
