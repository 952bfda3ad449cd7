"""Starting an active commit: the disk's active image into a base below it.

The same crash-safe flow as any commit (`start_commit`, its `CrashPoint`s); what an
active commit adds is written there too: `jobflags` 0x4 and the disk's
`<mirror job='active-commit'>` naming base, saved with the job. It then runs until
QEMU reports `ready`, and ends only by `request_pivot` or `request_abort`.
"""

from __future__ import annotations

from blockjob.jobs.commit import CommitError, CrashHook, no_crash, start_commit
from blockjob.model import BlockJob
from blockjob.qemu.monitor import Monitor
from blockjob.qemu.nodes import effective_node
from blockjob.statusxml.document import StatusDocument
from blockjob.store import DomainOwner


def start_active_commit(
    owner: DomainOwner, doc: StatusDocument, disk: str, base: str, *,
    monitor: Monitor | None = None, speed: int = 0, crash: CrashHook = no_crash,
    disable_base_bitmaps: bool = True,
) -> BlockJob:
    """Commit disk `disk`'s active image into `base` (a node name of its chain); `doc` is
    the document as loaded or saved through `owner` (see `start_commit`, also for
    `disable_base_bitmaps`)."""
    found = doc.disk(disk)
    if found is None or found.chain is None:
        raise CommitError(f"the domain has no disk '{disk}' with a backing chain")
    try:
        top = effective_node(found.chain)
    except ValueError as exc:
        raise CommitError(str(exc)) from None
    return start_commit(owner, disk, top, base, doc=doc, monitor=monitor, speed=speed,
                        crash=crash, disable_base_bitmaps=disable_base_bitmaps)
