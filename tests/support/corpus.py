"""Read-only access to libvirt's status files in ../shared, and their expected round trip."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
FIXTURES = SHARED / "libvirt-qemustatusxml2xmldata"
REAL = SHARED / "libvirt-9.0-status"

# libvirt formats jobs sorted by name since 6.10.0 (commit 947d2db31b); these
# fixture versions were written before that and list them in hash order.
UNSORTED = frozenset(
    f"blockjob-blockdev-in.{commit}.xml"
    for commit in (
        "057e4bc591", "1bf3808207", "3f93884a4d", "41de7230ab", "545edb2502",
        "73532dadd2", "8b2798e395", "95f5ac9ae5", "9ba804a1d1", "aa99658b06",
        "ce7229a3b0", "e67e8c545a",
    )
)
_JOB_START = re.compile(rb"^    <blockjob ", re.MULTILINE)
_NAME = re.compile(rb"name='([^']*)'")


def status_files() -> list[Path]:
    """Every status file in ../shared, or a skip when the folder is absent."""
    if not FIXTURES.is_dir() or not REAL.is_dir():
        pytest.skip(f"libvirt status files not found under {SHARED}")
    return sorted(FIXTURES.glob("*.xml")) + sorted(REAL.glob("*.xml"))


def status_file_params() -> list[object]:
    """Parameters for a test over every shared status file; one skipped one when absent."""
    if not FIXTURES.is_dir() or not REAL.is_dir():
        reason = f"libvirt status files not found under {SHARED}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-shared")]
    return [pytest.param(path, id=path.name) for path in status_files()]


def _job_name(job: bytes) -> bytes:
    found = _NAME.search(job)
    return found.group(1) if found else b""


def with_sorted_jobs(data: bytes) -> bytes:
    """`data` with the `<blockjob>` elements of its `<blockjobs>` sorted by name."""
    start = data.index(b"  <blockjobs")
    end = data.find(b"  </blockjobs>", start)
    if end < 0:
        return data
    body_start = data.index(b"\n", start) + 1
    body = data[body_start:end]
    cuts = [m.start() for m in _JOB_START.finditer(body)] + [len(body)]
    jobs = [body[a:b] for a, b in itertools.pairwise(cuts)]
    jobs.sort(key=_job_name)
    return data[:body_start] + b"".join(jobs) + data[end:]


# Files with invalid jobs, which are written as libvirt writes what it recovered of them
# (docs/format.md#leniency): each edit takes away what is lost.
_INVALID_JOBS = {
    # A second job on the disk target the domain repeats is kept unbound, without the
    # node names of that disk's images.
    "blockjob-blockdev-in.ce7229a3b0.xml": (
        (b"<blockjob name='pull-vdc-libvirt-9-format' type='commit' state='running'>\n"
         b"      <disk dst='vdc'/>\n      <base node='libvirt-11-format'/>\n"
         b"      <top node='libvirt-9-format'/>\n      <topparent node='libvirt-2-format'/>\n"
         b"    </blockjob>\n",
         b"<blockjob name='pull-vdc-libvirt-9-format' type='commit' state='running'/>\n"),
    ),
    # An unknown type is written `broken`, without type-specific data; a node name that
    # resolves to nothing is not written.
    "corrupt1-edited.xml": (
        (b"type='bogus'", b"type='broken'"),
        (b"      <base node='libvirt-5-format'/>\n      <top node='libvirt-12-format'/>\n"
         b"      <topparent node='libvirt-13-format'/>\n", b""),
        (b"      <base node='libvirt-99-format'/>\n", b""),
    ),
}


def expected_roundtrip(path: Path) -> bytes:
    data = path.read_bytes()
    for old, new in _INVALID_JOBS.get(path.name, ()):
        assert old in data, (path.name, old)
        data = data.replace(old, new, 1)
    return with_sorted_jobs(data) if path.name in UNSORTED else data
