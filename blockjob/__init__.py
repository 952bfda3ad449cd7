"""blockjob: libvirt status-XML block jobs, kept alive across a daemon restart.

The public names are imported on first use (PEP 562), so that a command that only reads a
file does not pay for the QMP client or the schema engine when the package is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blockjob.errors import BlockJobError, InputError, StatusXMLError, UnsafeXMLError
    from blockjob.jobs.commit import CrashPoint, start_commit
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
    from blockjob.recovery import RecoveryReport, recover
    from blockjob.statusxml.disks import Disk
    from blockjob.statusxml.document import StatusDocument, load, loads
    from blockjob.store.status_store import (
        DomainBusyError,
        DomainNameError,
        DomainOwner,
        LoadFailure,
        LoadReport,
        ScanReport,
        StatusStore,
        StoreError,
    )

__all__ = [
    "BackupData",
    "BlockJob",
    "BlockJobError",
    "CommitData",
    "CopyData",
    "CrashPoint",
    "CreateData",
    "Disk",
    "DomainBusyError",
    "DomainNameError",
    "DomainOwner",
    "InputError",
    "JobChains",
    "JobState",
    "JobType",
    "LoadFailure",
    "LoadReport",
    "PullData",
    "RecoveryReport",
    "ScanReport",
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

# Where each public name is defined; the same names as the imports above.
_HOMES = {
    name: module
    for module, names in {
        "blockjob.errors": ("BlockJobError", "InputError", "StatusXMLError", "UnsafeXMLError"),
        "blockjob.jobs.commit": ("CrashPoint", "start_commit"),
        "blockjob.model": ("BackupData", "BlockJob", "CommitData", "CopyData", "CreateData",
                           "JobChains", "JobState", "JobType", "PullData", "StorageSource"),
        "blockjob.recovery": ("RecoveryReport", "recover"),
        "blockjob.statusxml.disks": ("Disk",),
        "blockjob.statusxml.document": ("StatusDocument", "load", "loads"),
        "blockjob.store.status_store": ("DomainBusyError", "DomainNameError", "DomainOwner",
                                        "LoadFailure", "LoadReport", "ScanReport",
                                        "StatusStore", "StoreError"),
    }.items()
    for name in names
}


if not TYPE_CHECKING:  # mypy reads the imports above; a typo stays a type error

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module 'blockjob' has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value  # the next access is a plain lookup
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
