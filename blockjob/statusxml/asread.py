"""A loaded `<blockjobs>` written as read: its bytes are the model's writing of it.

The first dump of a loaded document writes every job from the model, and a job image from
the bytes parsed again. A file libvirt wrote is written back as it was read, so when its
`<blockjobs>` is known to be written so, its bytes are the dump's, and nothing is parsed
or written (docs/performance.md, "First dump of the fixture").

That is known from a *key* (`section_key`): the bytes of `<blockjobs>` (whole lines) with
the values writing copies cut out, and what the domain decides of jobs that are all valid
(each `dst` is a disk, each node name is found: else a job is invalid) but their bytes do
not tell: which job takes its disk's mirror, and `active`.
The first `<blockjobs>` of a key is written from the model, and its key kept when that
writing is its bytes; another one of the same key is written as read. Why that is sound
is argued in docs/performance.md; `tests/test_blockjobs_as_read.py` holds it to the model.
"""

from __future__ import annotations

import re
from operator import lt

from blockjob.model import BlockJob

# The shape, `active`, and per job whether it takes its disk's mirror.
Key = tuple[bytes, bool, tuple[bool, ...]]

# Keys of `<blockjobs>` whose model writing was their bytes: a daemon's files share a few.
# Emptied when full.
AS_READ: set[Key] = set()
AS_READ_MAX = 256

# The values writing copies: all but those reading makes something of and a valid job may
# hold in another spelling, or drop (a job's type, which picks its children, `brokentype`,
# `jobflags`; `active`; an image's storage type, protocol, port and transport:
# `lazyimages`), and but the empty ones (read as absent) and those holding what writing
# escapes (kept whole: the model never writes it raw). A state, `mirror='yes'`,
# `mode='storage'` or `shallownew='yes'` is copied where its job is valid.
_CUT = re.compile(
    rb"=(?<!\stype=)(?<!\sbrokentype=)(?<!\sjobflags=)(?<!\sactive=)(?<!\sprotocol=)"
    rb"(?<!\sport=)(?<!\stransport=)'[^'\"<>&\t\n\r]+'"
)
# An `index` other than the decimal number libvirt writes (0 is not written, nor leading
# zeros): written otherwise than read.
_REWRITTEN_INDEX = re.compile(rb"='(?<=\sindex=')(?![1-9][0-9]*')")


def section_key(section: bytes, jobs: tuple[BlockJob, ...], active: bool) -> Key | None:
    """The key of `<blockjobs>` bytes `section` (whole lines) read as `jobs` (the loaded
    objects, in the order read), or None where it is never written as read: a job is
    invalid (what it lost or dropped may depend on the domain or on a value cut), out of
    order, or a name has a prefix."""
    if _REWRITTEN_INDEX.search(section) or not _sorted(jobs):
        return None
    shape = _CUT.sub(b"='", section)
    # A prefixed name: whether the root declares its namespace decides whether a kept
    # attribute or child is written with the declaration.
    if b":" in shape:
        return None
    mirrors = []
    for job in jobs:
        if job.invalid:
            return None
        mirrors.append(job.mirror)
    return shape, active, tuple(mirrors)


def _sorted(jobs: tuple[BlockJob, ...]) -> bool:
    """Whether the jobs were read in the order they are written (by name as bytes)."""
    names = [job.name.encode("utf-8", "surrogateescape") for job in jobs]
    return all(map(lt, names, names[1:]))


def learn(key: Key) -> None:
    """`key`'s `<blockjobs>` was written as read."""
    if len(AS_READ) >= AS_READ_MAX:
        AS_READ.clear()
    AS_READ.add(key)
