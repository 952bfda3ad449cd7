"""A job as plain data: the stable shape behind `blockjob show --json`."""

from __future__ import annotations

from enum import Enum
from typing import Any

from blockjob.model import BlockJob
from blockjob.statusxml.document import StatusDocument
from blockjob.statusxml.mapping import ROWS, Kind, Row, value_of


def _json(row: Row, value: object) -> object:
    """A row's value as `show --json` gives it: as written in the file, or its default."""
    if row.kind in (Kind.FLAG, Kind.YES) and row.value is not None:
        return row.value[1] if value else None  # the value the flag is written with
    if row.kind in (Kind.FLAG, Kind.YES):
        return bool(value)
    if row.kind is Kind.NAMES:
        return list(value) if isinstance(value, tuple) else []
    if isinstance(value, Enum):
        return value.value
    return value


def job_summary(job: BlockJob) -> dict[str, Any]:
    """One key per row of the mapping (and the job's validity); every key always present."""
    out: dict[str, Any] = {}
    for row in ROWS:
        key = row.key
        if key is not None:
            out[key] = _json(row, value_of(row, job))
        if row.kind is Kind.DISK:
            out["mirror"] = job.mirror
    out["invalid"] = job.invalid
    out["problems"] = list(job.problems)
    return out


def document_summary(doc: StatusDocument) -> dict[str, Any]:
    return {
        "file": doc.filename,
        "domain": doc.domain_name,
        "active": doc.active,
        "jobs": [job_summary(job) for job in doc.jobs],
    }
