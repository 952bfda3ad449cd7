"""blockjob: libvirt status-XML block jobs, kept alive across a daemon restart."""

from blockjob.errors import BlockJobError, StatusXMLError, UnsafeXMLError
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
