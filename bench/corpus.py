"""Directories of N status files made from real ones, each domain and job renamed."""

from __future__ import annotations

import re
from pathlib import Path

from bench.inputs import FIXTURE, SHARED
from blockjob import StatusXMLError, loads

_DOMAIN_NAME = re.compile(rb"(<domain\b[^>]*>\s*<name>)([^<]*)(</name>)")
_JOB_NAME = re.compile(rb"(<blockjob\b[^>]*?\bname=')([^']*)(')")


def templates() -> list[bytes]:
    """The real files a corpus is made of: every shared status file that loads cleanly."""
    paths = [FIXTURE, *sorted((SHARED / "libvirt-9.0-status").glob("*.xml"))]
    found = []
    for path in paths:
        data = path.read_bytes()
        try:
            doc = loads(data, str(path))
        except StatusXMLError:
            continue  # e.g. the corrupt sample: load_all would quarantine (move) it
        if doc.domain_name and _DOMAIN_NAME.search(data):
            found.append(data)
    return found


def renamed(data: bytes, serial: int) -> tuple[str, bytes]:
    """(new domain name, the file with that domain name and every job name made unique)."""
    suffix = f"-{serial:05d}".encode()
    found = _DOMAIN_NAME.search(data)
    assert found is not None
    name = found.group(2) + suffix
    data = data[: found.start(2)] + name + data[found.end(2):]
    data = _JOB_NAME.sub(lambda m: m.group(1) + m.group(2) + suffix + m.group(3), data)
    return name.decode(), data


def build(directory: Path, count: int, sources: list[bytes]) -> int:
    """Write `count` status files into `directory`; returns their total size in bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for serial in range(count):
        name, data = renamed(sources[serial % len(sources)], serial)
        (directory / f"{name}.xml").write_bytes(data)
        total += len(data)
    return total
