"""Status files on disk: atomic saves, per-domain owner locks, the directory rules.

May import: blockjob.errors, blockjob.model, blockjob.statusxml.
"""

from blockjob.store.status_store import (
    DomainBusyError,
    DomainNameError,
    DomainOwner,
    LoadFailure,
    LoadReport,
    ScanReport,
    StatusStore,
    StoreConflictError,
    StoreError,
)

__all__ = [
    "DomainBusyError",
    "DomainNameError",
    "DomainOwner",
    "LoadFailure",
    "LoadReport",
    "ScanReport",
    "StatusStore",
    "StoreConflictError",
    "StoreError",
]
