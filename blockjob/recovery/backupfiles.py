"""The image files libvirt 9.0 deletes when a backup ends (`qemuBackupJobTerminate`).

A pull backup's scratch files always; a push backup's target files when one of its jobs
failed or was cancelled (a completed backup keeps them: they are the backup); none when
the backup was begun with `VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL`, which the async
job's `flags` keep (0x1: a restarted libvirt keeps such files too, seen in the lab).
Only a disk's local file (`type='file'`, libvirt's default) is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from blockjob.statusxml.node import TRUSTED_PARSER

_REUSE_EXTERNAL = 0x1
# A disk's `state` in `<backups>` that makes a push backup end not completed.
_NOT_COMPLETED = frozenset({"failed", "cancelling", "cancelled"})


def deleted_when_ended(data: bytes, ended: Mapping[str, str] | None = None) -> list[str]:
    """The files libvirt deletes when the backup `data` (a whole status document) records
    ends now: every disk's `state` in `<backups>` says how its job ended, unless `ended`
    (disk name to state) says it for a job that ends just now."""
    root = etree.fromstring(data, TRUSTED_PARSER)
    backup = root.find("backups/domainbackup")
    if backup is None or _flags(root) & _REUSE_EXTERNAL:
        return []
    disks = [disk for disk in backup.iterfind("disks/disk") if disk.get("backup") != "no"]
    pull = backup.get("mode") == "pull"
    states = [(ended or {}).get(disk.get("name", ""), disk.get("state")) for disk in disks]
    if not pull and not any(state in _NOT_COMPLETED for state in states):
        return []
    store = "scratch" if pull else "target"
    return [path for disk in disks if disk.get("type", "file") == "file"
            and (image := disk.find(store)) is not None and (path := image.get("file"))]


def _flags(root: etree._Element) -> int:
    """The backup's `apiFlags`: `<job async='backup' flags='0x...'>`; 0 when unreadable."""
    job = next((job for job in root.iterchildren("job") if job.get("async") == "backup"), None)
    text = job.get("flags", "") if job is not None else ""
    try:
        return int(text, 16)
    except ValueError:
        return 0
