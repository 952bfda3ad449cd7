"""Status files on disk: atomic saves, locks, loading a directory of domains.

May import: blockjob.errors, blockjob.model, blockjob.statusxml.
"""

from blockjob.store.status_store import (
    DomainBusyError,
    DomainNameError,
    DomainOwner,
    LoadFailure,
    LoadReport,
    StatusStore,
    StoreError,
)

__all__ = [
    "DomainBusyError",
    "DomainNameError",
    "DomainOwner",
    "LoadFailure",
    "LoadReport",
    "StatusStore",
    "StoreError",
]
