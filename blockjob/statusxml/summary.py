"""A job as plain data: the stable shape behind `blockjob show --json`."""

from __future__ import annotations

from typing import Any

from blockjob.model import BackupData, BlockJob, CommitData, CopyData, CreateData, PullData
from blockjob.statusxml.document import StatusDocument


def job_summary(job: BlockJob) -> dict[str, Any]:
    """Every key is always present; values are as written in the file, None where absent."""
    data = job.data
    commit = data if isinstance(data, CommitData) else None
    base = commit.base if commit else data.base if isinstance(data, PullData) else None
    return {
        "name": job.name,
        "type": job.type.value,
        "state": job.state.value,
        "newstate": job.newstate.value if job.newstate else None,
        "brokentype": job.brokentype.value if job.brokentype else None,
        "jobflags": job.jobflags,
        "errmsg": job.errmsg,
        "disk": job.disk,
        "mirror": job.mirror,
        "invalid": job.invalid,
        "problems": list(job.problems),
        "base": base,
        "top": commit.top if commit else None,
        "topparent": commit.topparent if commit else None,
        "delete_committed_images": commit.delete_committed_images if commit else False,
        "disabled_base_bitmaps": list(commit.disabled_base_bitmaps) if commit else [],
        "shallownew": data.shallownew if isinstance(data, CopyData) else False,
        "create_mode": "storage" if isinstance(data, CreateData) and data.storage_only else None,
        "bitmap": data.bitmap if isinstance(data, BackupData) else None,
    }


def document_summary(doc: StatusDocument) -> dict[str, Any]:
    return {
        "file": doc.filename,
        "domain": doc.domain_name,
        "active": doc.active,
        "jobs": [job_summary(job) for job in doc.jobs],
    }
