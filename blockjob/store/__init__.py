"""Status files on disk: atomic saves, locks, loading a directory of domains.

May import: blockjob.errors, blockjob.model, blockjob.statusxml.
"""

from blockjob.store.status_store import (
    DomainNameError,
    LoadFailure,
    LoadReport,
    StatusStore,
    StoreError,
)

__all__ = ["DomainNameError", "LoadFailure", "LoadReport", "StatusStore", "StoreError"]
