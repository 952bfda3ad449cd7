"""Unified diffs of text for assertion messages, readable when the difference is invisible."""

from __future__ import annotations

import difflib
from collections.abc import Iterator


def _lines(text: str) -> list[str]:
    """Lines split at "\\n" only, as line numbers count them, with the rest made visible.

    A carriage return is shown as `\\r` (a CRLF checkout otherwise shows two equal lines),
    a tab as `\\t` and each space that ends a line as `\\x20` (a tab for spaces, or spaces an
    editor left, showed as two equal lines too), and a last line without a newline is
    marked the way GNU diff marks it.
    """
    *lines, last = text.split("\n")
    shown = [_visible(line) + "\n" for line in lines]
    if last:
        shown.append(_visible(last) + "\n\\ No newline at end of file\n")
    return shown


def _visible(line: str) -> str:
    line = line.replace("\r", "\\r").replace("\t", "\\t")
    kept = line.rstrip(" ")
    return kept + "\\x20" * (len(line) - len(kept))


def first_difference(old: str, new: str) -> int:
    """The 1-based number of the first line that differs (old and new are not equal)."""
    pairs: Iterator[tuple[str, str]] = zip(old.split("\n"), new.split("\n"), strict=False)
    return next((n for n, (a, b) in enumerate(pairs, start=1) if a != b),
                min(old.count("\n"), new.count("\n")) + 1)


def unified(old: str, new: str, old_label: str, new_label: str) -> str:
    """The unified diff from `old` to `new`; its hunk headers give line numbers."""
    return "".join(difflib.unified_diff(_lines(old), _lines(new), old_label, new_label))
