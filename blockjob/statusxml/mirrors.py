"""A disk's `<mirror>` that libvirt cannot load.

libvirt parses `<mirror job=...>` as a block job type and refuses the whole domain when
that fails: libvirt 9.0 itself leaves `<mirror job=''>` after cancelling a broken active
commit, and on its next start shows the domain shut off while QEMU runs (README section
`recovery`). A mirror without `job` is a legacy block copy and loads.
"""

from __future__ import annotations

from collections.abc import Iterable

from blockjob.statusxml.disks import Disk

# libvirt's block job types other than "unknown", as `<mirror job>` accepts them.
LOADABLE_MIRROR_JOBS = frozenset({"pull", "copy", "commit", "active-commit", "backup"})


def mirror_job_problem(job: str | None) -> str | None:
    """Why a `<mirror job=job>` cannot be loaded, or None when it can."""
    if job is None or job in LOADABLE_MIRROR_JOBS:
        return None
    return (f"<mirror job={job!r}>: libvirt cannot load a mirror of this job type and "
            f"loses the domain; `blockjob recover` removes it")


def mirror_problems(disks: Iterable[Disk], filename: str) -> list[str]:
    """`FILE:LINE: disk DEV: problem` (the mirror's line) for every disk whose `<mirror>`
    cannot be loaded."""
    return [
        f"{filename}:{disk.mirror_line}: disk {disk.target}: {problem}"
        for disk in disks
        if (problem := mirror_job_problem(disk.mirror_job)) is not None
    ]
