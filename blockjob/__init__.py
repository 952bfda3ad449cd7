"""blockjob: libvirt status-XML block jobs, kept alive across a daemon restart."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from blockjob.errors import BlockJobError, StatusXMLError, UnsafeXMLError
from blockjob.model import (
    BackupData,
    BlockJob,
    CommitData,
    CopyData,
    CreateData,
    JobChains,
    JobState,
    JobType,
    PullData,
    StorageSource,
)

if TYPE_CHECKING:
    from blockjob.jobs.commit import CrashPoint, start_commit
    from blockjob.recovery import RecoveryReport, recover
    from blockjob.statusxml.disks import Disk
    from blockjob.statusxml.document import StatusDocument, load, loads
    from blockjob.store.status_store import (
        DomainNameError,
        LoadFailure,
        LoadReport,
        StatusStore,
        StoreError,
    )

# Imported on first use, so that the model (`import blockjob.model`) stays free of lxml
# and of everything else above it.
_LAZY = {
    "CrashPoint": "blockjob.jobs.commit",
    "start_commit": "blockjob.jobs.commit",
    "RecoveryReport": "blockjob.recovery",
    "recover": "blockjob.recovery",
    "Disk": "blockjob.statusxml.disks",
    "StatusDocument": "blockjob.statusxml.document",
    "load": "blockjob.statusxml.document",
    "loads": "blockjob.statusxml.document",
    "DomainNameError": "blockjob.store.status_store",
    "LoadFailure": "blockjob.store.status_store",
    "LoadReport": "blockjob.store.status_store",
    "StatusStore": "blockjob.store.status_store",
    "StoreError": "blockjob.store.status_store",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'blockjob' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BackupData",
    "BlockJob",
    "BlockJobError",
    "CommitData",
    "CopyData",
    "CrashPoint",
    "CreateData",
    "Disk",
    "DomainNameError",
    "JobChains",
    "JobState",
    "JobType",
    "LoadFailure",
    "LoadReport",
    "PullData",
    "RecoveryReport",
    "StatusDocument",
    "StatusStore",
    "StatusXMLError",
    "StorageSource",
    "StoreError",
    "UnsafeXMLError",
    "load",
    "loads",
    "recover",
    "start_commit",
]
