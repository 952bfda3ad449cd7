"""Byte-exact comparison of our own output with a golden file, and its regeneration."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from blockjob.statusxml.document import StatusDocument
from blockjob.store.atomic import replace_file
from blockjob.testing.diff import first_difference, unified

REGENERATE_VARIABLE = "BLOCKJOB_REGENERATE_OUTPUT"
_HOW_TO_REGENERATE = f"set {REGENERATE_VARIABLE}=1 or run pytest --blockjob-regenerate"
# A new golden file is meant to be committed and read by everyone.
_NEW_FILE_MODE = 0o644


def regenerating() -> bool:
    """Whether golden files are to be rewritten instead of compared."""
    value = os.environ.get(REGENERATE_VARIABLE, "")
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    # A typo such as "true" would otherwise compare silently while the user waits for files.
    raise ValueError(f"{REGENERATE_VARIABLE} must be 1 (rewrite golden files) or 0, not {value!r}")


def as_bytes(actual: StatusDocument | bytes) -> bytes:
    if isinstance(actual, StatusDocument):
        return actual.dumps()
    if isinstance(actual, bytes | bytearray | memoryview):
        return bytes(actual)
    raise TypeError(
        f"expected a StatusDocument or bytes, got {type(actual).__name__}"
        + (" (encode text first)" if isinstance(actual, str) else "")
    )


def assert_golden(actual: StatusDocument | bytes, path: str | os.PathLike[str]) -> None:
    """`actual` (a document's dump, or bytes) must equal the file at `path`, byte for byte.

    With BLOCKJOB_REGENERATE_OUTPUT=1 a differing or missing file is rewritten (atomically,
    keeping its permissions) instead, and the assertion passes.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this function's
    regenerate = regenerating()
    data = as_bytes(actual)
    target = Path(path)
    try:
        expected: bytes | None = target.read_bytes()
    except FileNotFoundError:
        expected = None
    if expected == data:
        return
    if regenerate:
        _write(target, data)
        return
    if expected is None:
        raise AssertionError(
            f"{target}: the golden file does not exist; {_HOW_TO_REGENERATE} to create it"
        )
    old = expected.decode("utf-8", "backslashreplace")
    new = data.decode("utf-8", "backslashreplace")
    raise AssertionError(
        f"{target}: the output differs from the golden file from line "
        f"{first_difference(old, new)} on ({_HOW_TO_REGENERATE} to accept it)\n"
        + unified(old, new, f"{target} (golden)", f"{target} (actual)")
    )


def _write(target: Path, data: bytes) -> None:
    # A golden file that is a symlink (one output shared by several tests) is rewritten
    # where it points: replacing the link itself left the shared file stale.
    if target.is_symlink():
        target = target.resolve()
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = _NEW_FILE_MODE
    replace_file(target, data, mode)
