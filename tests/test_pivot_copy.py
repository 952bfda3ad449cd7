"""A pivot request for a copy whose own backing chain QEMU has not opened yet (libvirt 9.0:
`blockcopy --shallow --reuse-external` into an image with a backing file, recorded in
tests/data/lab) is refused: pivoting it would leave the guest's disk without the data
below the copy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import blockjob
from blockjob.jobs.pivot import request_pivot
from blockjob.jobs.requests import RequestError
from blockjob.model import JobState
from blockjob.qemu.monitor import QemuJob

REUSED = Path(__file__).parent / "data" / "lab" / "reuse-shallow-copy-running.xml"


class _Qemu:
    """The QEMU of the recorded copy: the job ready, the graph holding `nodes`."""

    def __init__(self, job: str, nodes: set[str]) -> None:
        self.job = job
        self.nodes = nodes
        self.completed: list[str] = []

    def query_jobs(self) -> dict[str, QemuJob]:
        return {self.job: QemuJob(self.job, "mirror", "ready")}

    def node_names(self) -> set[str]:
        return self.nodes

    def job_complete(self, job: str) -> None:
        self.completed.append(job)


class _Saved:
    def save(self, doc: blockjob.StatusDocument) -> None:
        pass


def _ready() -> tuple[blockjob.StatusDocument, str]:
    doc = blockjob.load(REUSED)
    job = replace(doc.jobs[0], state=JobState.READY)
    doc.replace_job(job)
    return doc, job.name


def test_copy_whose_backing_chain_qemu_lacks_is_not_pivoted() -> None:
    doc, name = _ready()
    qemu = _Qemu(name, {f"libvirt-{n}-{kind}" for n in (1, 2, 3, 4, 5)
                        for kind in ("format", "storage")})
    with pytest.raises(RequestError, match=r"backing chain \(libvirt-6-format, "
                       r"/img/vda-mid.qcow2\) is not open in QEMU"):
        request_pivot(_Saved(), doc, name, qemu, merge=lambda job: [])  # type: ignore[arg-type]
    assert qemu.completed == []
    job = doc.job(name)
    assert job is not None and job.state is JobState.READY


def test_copy_whose_backing_chain_qemu_has_is_pivoted() -> None:
    doc, name = _ready()
    qemu = _Qemu(name, {f"libvirt-{n}-format" for n in range(1, 8)})
    request_pivot(_Saved(), doc, name, qemu, merge=lambda job: [])  # type: ignore[arg-type]
    assert qemu.completed == [name]
