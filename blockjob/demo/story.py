"""The checkpoint story the demo and the tests commit: base <- mid <- top (vda).

base: data 0-8M; chk0 recording since before 0-2M was rewritten (dirty 2 MiB);
      chk1 recording since before 1-2M (dirty 1 MiB); bm-off disabled, clean.
mid:  data 3-7M; chk1 recording since before 4-7M (3 MiB); chk2 since 6-7M (1 MiB).
top:  chk1 and chk2 recording, data 12-13M.

Committing mid into base copies 3-7M. With base's chk0/chk1 disabled during the
commit and merged afterwards, the right result is chk0 = 2 MiB (untouched),
chk1 = 1-2M + 4-7M = 4 MiB and a new chk2 = 1 MiB; had chk0/chk1 kept recording,
the commit's own writes would make them 6 and 5 MiB.

An active commit of top (and mid) into base, pivoted, merges top's copies too:
chk1 = 1-2M + 4-7M + 12-13M = 5 MiB, chk2 = 6-7M + 12-13M = 2 MiB, chk0 = 2 MiB.
"""

from __future__ import annotations

from blockjob.demo.images import AddBitmap, ImageSpec, MiB, Write

SIZE = 16 * MiB
TARGET = "vda"

# Dirty bytes in base after a successful commit and recovery.
EXPECTED_AFTER_COMMIT = {"chk0": 2 * MiB, "chk1": 4 * MiB, "chk2": 1 * MiB, "bm-off": 0}
# Dirty bytes in base after an active commit of top into base and its pivot.
EXPECTED_AFTER_PIVOT = {"chk0": 2 * MiB, "chk1": 5 * MiB, "chk2": 2 * MiB, "bm-off": 0}


def chain(*, fail_commit: bool = False) -> tuple[ImageSpec, ...]:
    """The three images, top first. `fail_commit` makes reading mid's data fail."""
    base = ImageSpec("base", (
        Write(0, 8 * MiB, 0xAA), AddBitmap("chk0"), Write(0, 1 * MiB, 0xAB),
        AddBitmap("chk1"), Write(1 * MiB, 1 * MiB, 0xAC), AddBitmap("bm-off", disabled=True),
    ))
    mid = ImageSpec("mid", (
        Write(3 * MiB, 1 * MiB, 0xBA), AddBitmap("chk1"), Write(4 * MiB, 2 * MiB, 0xBB),
        AddBitmap("chk2"), Write(6 * MiB, 1 * MiB, 0xBC),
    ), fail_reads_at=5 * MiB if fail_commit else None)
    top = ImageSpec("top", (AddBitmap("chk1"), AddBitmap("chk2"), Write(12 * MiB, 1 * MiB, 0xCC)))
    return (top, mid, base)
