"""The result table: one row per measurement, each with its baseline and ratio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    case: str
    input: str
    ours: float | None  # seconds per operation; None: not measurable here (see `note`)
    baseline: str
    base: float | None
    # "<= 1.5" means ours / base must be at most 1.5; ">= 3" means base / ours at least 3.
    target: str = ""
    note: str = ""
    unit: str = "s"  # or "MB": a size, not a time

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.base is None or self.base == 0:
            return None
        return self.ours / self.base

    @property
    def verdict(self) -> str:
        ratio = self.ratio
        if not self.target or ratio is None:
            return ""
        op, _, limit = self.target.partition(" ")
        if op == "<=":
            return "ok" if ratio <= float(limit) else "MISS"
        return "ok" if 1 / ratio >= float(limit) else "MISS"


def duration(seconds: float | None, unit: str = "s") -> str:
    if seconds is None:
        return "-"
    if unit != "s":
        return f"{seconds:.1f} {unit}"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def ratio_text(row: Row) -> str:
    ratio = row.ratio
    if ratio is None:
        return "-"
    # Peers are slower: say how many times, which is what the target counts.
    return f"1/{1 / ratio:.1f}x" if row.target.startswith(">=") else f"{ratio:.2f}x"


def render(rows: list[Row]) -> str:
    header = ("case", "input", "blockjob", "baseline", "baseline time", "ratio", "target", "")
    body = [
        (r.case, r.input, duration(r.ours, r.unit), r.baseline, duration(r.base, r.unit),
         ratio_text(r),
         r.target, r.verdict + (f" {r.note}" if r.note else ""))
        for r in rows
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |"
             for line in (header, *body)]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
