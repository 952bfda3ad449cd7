"""Write `<blockjobs>` exactly as libvirt does (docs/format.md#bytes to #sources).

Fixed attribute and child order, single quotes, libvirt's escaping, two spaces
per level, empty elements omitted, and the `<errmsg>` line quirk: libvirt writes
it without a newline, so the next child follows on the same line.
"""

from __future__ import annotations

from collections.abc import Iterable

from blockjob.model import (
    BackupData,
    BlockJob,
    CommitData,
    CopyData,
    CreateData,
    JobData,
    PullData,
)
from blockjob.statusxml.node import Node, escape, write_node
from blockjob.statusxml.sources import job_source_node

_INLINE = frozenset({"errmsg"})
BLOCKJOBS_INDENT = "  "


class _Children:
    """A child buffer: lines at `indent`, except right after an inline element."""

    def __init__(self, indent: str) -> None:
        self.indent = indent
        self.out: list[str] = []

    @property
    def pad(self) -> str:
        return self.indent if not self.out or self.out[-1].endswith("\n") else ""

    def line(self, text: str) -> None:
        self.out.append(f"{self.pad}{text}\n")

    def node(self, node: Node) -> None:
        write_node(self.out, node, self.indent, pad=self.pad)


def _node(children: _Children, tag: str, node_name: str | None) -> None:
    if node_name is not None:
        children.line(f"<{tag} node='{escape(node_name)}'/>")


def _write_data(children: _Children, data: JobData) -> None:
    if isinstance(data, PullData):
        _node(children, "base", data.base)
    elif isinstance(data, CommitData):
        _node(children, "base", data.base)
        _node(children, "top", data.top)
        _node(children, "topparent", data.topparent)
        if data.delete_committed_images:
            children.line("<deleteCommittedImages/>")
        if data.disabled_base_bitmaps:
            children.line("<disabledBaseBitmaps>")
            for name in data.disabled_base_bitmaps:
                children.out.append(f"{children.indent}  <bitmap name='{escape(name)}'/>\n")
            children.out.append(f"{children.indent}</disabledBaseBitmaps>\n")
    elif isinstance(data, CreateData):
        if data.storage_only:
            children.line("<create mode='storage'/>")
        if data.src is not None:
            children.node(job_source_node("src", data.src))
    elif isinstance(data, BackupData):
        if data.bitmap is not None:
            children.line(f"<bitmap name='{escape(data.bitmap)}'/>")
        if data.store is not None:
            children.node(job_source_node("store", data.store))


def _attributes(job: BlockJob) -> str:
    parts = [f" name='{escape(job.name)}' type='{job.type.value}' state='{job.state.value}'"]
    if job.newstate is not None:
        parts.append(f" newstate='{job.newstate.value}'")
    if job.brokentype is not None:
        parts.append(f" brokentype='{job.brokentype.value}'")
    if job.jobflags is not None:
        parts.append(f" jobflags='0x{job.jobflags:x}'")
    if isinstance(job.data, CopyData) and job.data.shallownew:
        parts.append(" shallownew='yes'")
    return "".join(parts)


def _write_chains(children: _Children, job: BlockJob) -> None:
    chains = job.chains
    if chains is None or (chains.disk is None and chains.mirror is None):
        return
    parts = [("disk", chains.disk), ("mirror", chains.mirror)]
    children.node(
        Node("chains", (), tuple(job_source_node(t, top) for t, top in parts if top is not None))
    )


def write_job(out: list[str], job: BlockJob, indent: str) -> None:
    if job.invalid and job.raw is not None:
        # What the reader could not make sense of goes back as it came in.
        write_node(out, job.raw, indent, inline_tags=_INLINE)
        return
    children = _Children(indent + "  ")
    if job.errmsg is not None:
        children.out.append(f"{children.indent}<errmsg>{escape(job.errmsg)}</errmsg>")
    if job.disk is not None:
        mirror = " mirror='yes'" if job.mirror else ""
        children.line(f"<disk dst='{escape(job.disk)}'{mirror}/>")
    else:
        _write_chains(children, job)
    if job.data is not None:
        _write_data(children, job.data)
    start = f"{indent}<blockjob{_attributes(job)}"
    if not children.out:
        out.append(f"{start}/>\n")
        return
    out.append(f"{start}>\n")
    out.extend(children.out)
    closing_pad = indent if children.out[-1].endswith("\n") else ""
    out.append(f"{closing_pad}</blockjob>\n")


def write_blockjobs(jobs: Iterable[BlockJob], active: bool, indent: str = BLOCKJOBS_INDENT) -> str:
    """The whole `<blockjobs>` element, jobs in the order given."""
    out = [f"{indent}<blockjobs active='{'yes' if active else 'no'}'"]
    body: list[str] = []
    for job in jobs:
        write_job(body, job, indent + "  ")
    if not body:
        out.append("/>\n")
    else:
        out.append(">\n")
        out.extend(body)
        out.append(f"{indent}</blockjobs>\n")
    return "".join(out)
