"""The benchmark inputs: real libvirt status files from ../shared (never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

from blockjob.validation import schemafiles

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "libvirt-qemustatusxml2xmldata" / "blockjob-blockdev-in.xml"
SCHEMAS = Path(schemafiles.__file__).resolve().parents[1] / "schemas"
REAL = SHARED / "libvirt-9.0-status" / "blockcommit-running.xml"


class MissingInputError(RuntimeError):
    """../shared is not there: nothing to measure."""


def named_inputs() -> dict[str, bytes]:
    """The two documents every per-file case runs on, by a short name."""
    found = {}
    for label, path in (("blockdev-in", FIXTURE), ("9.0 commit", REAL)):
        if not path.is_file():
            raise MissingInputError(f"{path} not found: the benchmark needs ../shared")
        data = path.read_bytes()
        found[f"{label} ({len(data) / 1000:.0f} KB)"] = data
    return found
