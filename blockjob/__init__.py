"""blockjob: libvirt status-XML block jobs, kept alive across a daemon restart."""

from blockjob.document import StatusDocument, load, loads
from blockjob.domain import Disk
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

__all__ = [
    "BackupData",
    "BlockJob",
    "BlockJobError",
    "CommitData",
    "CopyData",
    "CreateData",
    "Disk",
    "JobChains",
    "JobState",
    "JobType",
    "PullData",
    "StatusDocument",
    "StatusXMLError",
    "StorageSource",
    "UnsafeXMLError",
    "load",
    "loads",
]
