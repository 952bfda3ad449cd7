"""Write `<blockjobs>` exactly as libvirt does, row by row of `mapping.py`.

Fixed attribute and child order, single quotes, libvirt's escaping, two spaces
per level, empty elements omitted, and the `<errmsg>` line quirk: libvirt writes
it without a newline, so the next child follows on the same line.
"""

from __future__ import annotations

from collections.abc import Iterable

from blockjob.element import Node
from blockjob.model import BlockJob, JobChains, StorageSource
from blockjob.statusxml.mapping import ATTRIBUTES, CHILDREN, Kind, Row, value_of
from blockjob.statusxml.node import escape, write_node
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


# How each kind of row is written, given the model's value (None: nothing to write).
# Attributes return their text; children append to the buffer.

def _attribute(row: Row, value: object) -> str:
    if value is None or value is False:
        return ""
    if row.kind is Kind.FLAGS:
        return f" {row.xml}='0x{value:x}'"
    if row.kind is Kind.YES:
        return f" {row.xml}='yes'"
    text = str(value)  # names as written, libvirt's enum strings
    return f" {row.xml}='{escape(text)}'"


def _text(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    # libvirt writes it without a newline: the next child follows on the same line.
    children.out.append(f"{children.pad}<{row.xml}>{escape(str(value))}</{row.xml}>")


def _disk(children: _Children, row: Row, value: object, job: BlockJob) -> None:
    mirror = " mirror='yes'" if job.mirror else ""
    children.line(f"<{row.xml} dst='{escape(str(value))}'{mirror}/>")


def _chains(children: _Children, row: Row, value: object, job: BlockJob) -> None:
    assert isinstance(value, JobChains)
    if job.disk is not None:
        return  # a bound job's chains are its disk's, in the domain
    parts = [(tag, top) for tag, top in (("disk", value.disk), ("mirror", value.mirror))
             if top is not None]
    if parts:
        children.node(Node(row.xml, (), tuple(job_source_node(t, top) for t, top in parts)))


def _node(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    children.line(f"<{row.xml} node='{escape(str(value))}'/>")


def _flag(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    if value:
        extra = f" {row.value[0]}='{escape(row.value[1])}'" if row.value is not None else ""
        children.line(f"<{row.xml}{extra}/>")


def _names(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    assert isinstance(value, tuple)
    if value:
        children.line(f"<{row.xml}>")
        for name in value:
            children.out.append(f"{children.indent}  <{row.item} name='{escape(name)}'/>\n")
        children.out.append(f"{children.indent}</{row.xml}>\n")


def _named(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    children.line(f"<{row.xml} name='{escape(str(value))}'/>")


def _image(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    assert isinstance(value, StorageSource)
    children.node(job_source_node(row.xml, value))


_WRITERS = {
    Kind.TEXT: _text,
    Kind.DISK: _disk,
    Kind.CHAINS: _chains,
    Kind.NODE: _node,
    Kind.FLAG: _flag,
    Kind.NAMES: _names,
    Kind.NAMED: _named,
    Kind.IMAGE: _image,
}
_CHILD_WRITERS = tuple((row, _WRITERS[row.kind]) for row in CHILDREN)


def _attributes(job: BlockJob) -> str:
    kept = job.kept_attributes
    parts = [f" {key}='{escape(value)}'" for after, key, value in kept if after is None]
    for row in ATTRIBUTES:
        parts.append(_attribute(row, value_of(row, job)))
        if kept:
            parts.extend(f" {key}='{escape(value)}'" for after, key, value in kept
                         if after == row.xml)
    return "".join(parts)


def write_job(out: list[str], job: BlockJob, indent: str) -> None:
    if job.invalid and job.raw is not None:
        # What the reader could not make sense of goes back as it came in.
        write_node(out, job.raw, indent, inline_tags=_INLINE)
        return
    children = _Children(indent + "  ")
    kept = job.kept_children
    for _after, node in (pair for pair in kept if pair[0] is None):
        children.node(node)
    for row, write in _CHILD_WRITERS:
        value = value_of(row, job)
        if value is not None:
            write(children, row, value, job)
        if kept:
            for after, node in kept:
                if after == row.xml:
                    children.node(node)
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
