"""Write `<blockjobs>` exactly as libvirt does (docs/format.md#bytes to #sources), row by
row of `mapping.py`.

Fixed attribute and child order, single quotes, libvirt's escaping, two spaces
per level, empty elements omitted, and the `<errmsg>` line quirk: libvirt writes
it without a newline, so the next child follows on the same line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from itertools import compress
from operator import attrgetter, call, is_, is_not
from typing import Any, NamedTuple, TypeVar

from blockjob.element import Node
from blockjob.model import BlockJob, JobChains, JobData, JobState, JobType, StorageSource
from blockjob.statusxml.lazyimages import job_image_node
from blockjob.statusxml.mapping import DATA_CLASSES, Kind, Row, plan
from blockjob.statusxml.node import escape_attr, escape_text, write_node

BLOCKJOBS_INDENT = "  "
JOB_INDENT = BLOCKJOBS_INDENT + "  "


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


_T = TypeVar("_T")

# How each kind of row is written, given the model's value. Attributes return their text
# ("" when unset: None, or False for a flag); children append to the buffer (None: nothing).

def _attribute(row: Row) -> Callable[[Any], str]:
    """How `row`'s value is written, as a function of the value."""
    head = f" {row.xml}='"
    if row.kind is Kind.FLAGS:
        return lambda value: "" if value is None else f"{head}{_hex(value, row)}'"
    if row.kind is Kind.YES:
        return lambda value: f"{head}yes'" if value else ""
    if row.kind in (Kind.JOB_TYPE, Kind.STATE):
        # A StrEnum, libvirt's name, never escaped: looked up, as formatting one is slow.
        return _EnumTexts(head, JobType if row.kind is Kind.JOB_TYPE else JobState).__getitem__
    return lambda value: "" if value is None else f"{head}{escape_attr(value)}'"


def _hex(value: int, row: Row) -> str:
    """libvirt's flags are unsigned: a negative value was written `0x-1`, which every
    reader drops (the job's flags gone on the next load)."""
    if value < 0:
        raise ValueError(f"{row.field} must not be negative, not {value}")
    return f"0x{value:x}"


class _EnumTexts(dict[object, str]):
    """The attribute text of each member (of None: ""); any other value is formatted
    when asked for."""

    def __init__(self, head: str, members: Iterable[StrEnum]) -> None:
        super().__init__((member, f"{head}{member}'") for member in members)
        self[None] = ""
        self.head = head

    def __missing__(self, value: object) -> str:
        # A plain string a caller put in (`state="ready"`, or anything else): escaped,
        # so that what the reader then marks invalid still loads.
        return f"{self.head}{escape_attr(str(value))}'"


def _text(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    # libvirt writes it without a newline: the next child follows on the same line.
    children.out.append(f"{children.pad}<{row.xml}>{escape_text(str(value))}</{row.xml}>")


def _disk(children: _Children, row: Row, value: object, job: BlockJob) -> None:
    mirror = " mirror='yes'" if job.mirror else ""
    children.line(f"<{row.xml} dst='{escape_attr(str(value))}'{mirror}/>")


def _expect(value: object, cls: type[_T], row: Row) -> _T:
    """`value`, or a TypeError naming the field when a caller put something else in the
    model (an assert said nothing, and under `python -O` a list went through: a later
    change to it never reached a dump, whose text is kept per job object)."""
    if not isinstance(value, cls):
        raise TypeError(f"{row.field} must be a {cls.__name__}, not {type(value).__name__}")
    return value


def _chains(children: _Children, row: Row, value: object, job: BlockJob) -> None:
    chains = _expect(value, JobChains, row)
    if job.disk is not None:
        return  # a bound job's chains are its disk's, in the domain
    parts = [(tag, top) for tag, top in (("disk", chains.disk), ("mirror", chains.mirror))
             if top is not None]
    if parts:
        children.node(Node(row.xml, (), tuple(job_image_node(t, top) for t, top in parts)))


def _node(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    children.line(f"<{row.xml} node='{escape_attr(str(value))}'/>")


def _flag(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    if value:
        extra = f" {row.value[0]}='{escape_attr(row.value[1])}'" if row.value is not None else ""
        children.line(f"<{row.xml}{extra}/>")


def _names(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    names = _expect(value, tuple, row)
    if names:
        children.line(f"<{row.xml}>")
        for name in names:
            children.out.append(f"{children.indent}  <{row.item} name='{escape_attr(name)}'/>\n")
        children.out.append(f"{children.indent}</{row.xml}>\n")


def _named(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    children.line(f"<{row.xml} name='{escape_attr(str(value))}'/>")


def _image(children: _Children, row: Row, value: object, _job: BlockJob) -> None:
    children.node(job_image_node(row.xml, _expect(value, StorageSource, row)))


_ChildWriter = Callable[[_Children, Row, object, BlockJob], None]
_WRITERS: dict[Kind, _ChildWriter] = {
    Kind.TEXT: _text,
    Kind.DISK: _disk,
    Kind.CHAINS: _chains,
    Kind.NODE: _node,
    Kind.FLAG: _flag,
    Kind.NAMES: _names,
    Kind.NAMED: _named,
    Kind.IMAGE: _image,
}
# Per data class (NoneType: no data), the child rows with their writers.
_CHILD_ROWS: dict[type[JobData | None], tuple[tuple[Row, bool, _ChildWriter], ...]] = {
    cls: tuple((row, on_data, _WRITERS[row.kind]) for row, on_data in plan(cls)
               if not row.attribute)
    for cls in (type(None), *DATA_CLASSES.values())
}


class _Attributes(NamedTuple):
    """How a job's known attributes are written: one C call reads every value
    (`data.` paths for the data's rows), then each is written; `names` are their XML
    names, which kept (unknown) attributes are placed after."""

    values: Callable[[BlockJob], tuple[object, ...]]
    writers: tuple[Callable[[Any], str], ...]
    names: tuple[str, ...]


def _attributes_of(cls: type[JobData | None]) -> _Attributes:
    rows = [(row, on_data) for row, on_data in plan(cls) if row.attribute]
    # Every plan has at least name, type and state, so attrgetter returns a tuple.
    return _Attributes(
        attrgetter(*(f"data.{row.field}" if on_data else row.field for row, on_data in rows)),
        tuple(_attribute(row) for row, _ in rows),
        tuple(row.xml for row, _ in rows),
    )


_ATTRIBUTES = {cls: _attributes_of(cls) for cls in _CHILD_ROWS}


# A job's known attribute values, and the text of each ("" where unset).
AttributeParts = tuple[tuple[object, ...], list[str]]


def _attribute_parts(job: BlockJob, last: JobText | None) -> AttributeParts:
    """`job`'s known attributes, reusing the text of `last`'s where the value is the very
    same object: the writers are pure functions of it."""
    how = _ATTRIBUTES[type(job.data)]
    values = how.values(job)
    if last is None or type(last.job.data) is not type(job.data):
        return values, list(map(call, how.writers, values))
    last_values, parts = last.attributes[0], list(last.attributes[1])
    for i in compress(range(len(values)), map(is_not, values, last_values)):
        parts[i] = how.writers[i](values[i])
    return values, parts


def _with_kept(job: BlockJob, parts: list[str]) -> str:
    """The known attributes' texts with the job's kept ones, each after the one it followed."""
    kept = job.kept_attributes
    out = [f" {key}='{escape_attr(value)}'" for after, key, value in kept if after is None]
    for xml, part in zip(_ATTRIBUTES[type(job.data)].names, parts, strict=True):
        out.append(part)
        out.extend(f" {key}='{escape_attr(value)}'" for after, key, value in kept if after == xml)
    return "".join(out)


def _children(job: BlockJob, indent: str) -> str:
    """What follows a valid job's attributes: `/>` or its children and end tag."""
    children = _Children(indent + "  ")
    kept = job.kept_children
    data = job.data
    rows = _CHILD_ROWS[type(data)]
    if not kept:
        for row, on_data, write in rows:
            value = getattr(data if on_data else job, row.field)
            if value is not None:
                write(children, row, value, job)
    else:
        for _after, node in (pair for pair in kept if pair[0] is None):
            children.node(node)
        for row, on_data, write in rows:
            value = getattr(data if on_data else job, row.field)
            if value is not None:
                write(children, row, value, job)
            for node in (node for after, node in kept if after == row.xml):
                children.node(node)
    if not children.out:
        return "/>\n"
    closing_pad = indent if children.out[-1].endswith("\n") else ""
    return "".join([">\n", *children.out, f"{closing_pad}</blockjob>\n"])


# What `_children` reads of a job, all immutable: the fields of the job's own child rows,
# `data` (its class picks the data rows, which read only it), `kept_children`, and what
# the row writers read besides their value (`_disk` reads `mirror`, `_chains` `disk`).
# Derived from the rows, so a row added to the mapping is compared too.
_CHILD_FIELDS = attrgetter(*sorted(
    {row.field for rows in _CHILD_ROWS.values() for row, on_data, _ in rows if not on_data}
    | {"data", "kept_children", "mirror", "disk"}))


def _same_children(job: BlockJob, other: BlockJob) -> bool:
    """Whether `_children` writes the same for both: the same objects in every field it
    reads give the same text."""
    return all(map(is_, _CHILD_FIELDS(job), _CHILD_FIELDS(other)))


class JobText(NamedTuple):
    """`job` as written in `<blockjobs>`; `children` is what followed its attributes,
    `attributes` its known attributes. The lists are never changed."""

    job: BlockJob
    text: bytes
    children: bytes
    attributes: AttributeParts


def job_text(job: BlockJob, last: JobText | None = None) -> JobText:
    """Write one `<blockjob>` (at JOB_INDENT), valid or not: an invalid job holds what
    libvirt recovers of it, and is written as libvirt writes that. `last`, a text written
    before for a job of the same name, lends its children and attribute texts where they
    are written from the same objects: the daemon's usual edit changes only a state, an
    attribute."""
    if last is not None and _same_children(job, last.job):
        children = last.children
    else:
        children = _children(job, JOB_INDENT).encode("utf-8")
    parts = _attribute_parts(job, last)
    attributes = _with_kept(job, parts[1]) if job.kept_attributes else "".join(parts[1])
    text = f"{JOB_INDENT}<blockjob{attributes}".encode() + children
    # tuple.__new__: NamedTuple's own constructor costs more, per save.
    return _new(JobText, (job, text, children, parts))


_new = tuple.__new__


def job_texts_as_read(section: bytes, jobs: tuple[BlockJob, ...]) -> list[JobText]:
    """The texts of `jobs` in `section`, a `<blockjobs>` that
    `write_blockjobs` wrote of them in this order: each starts a line at JOB_INDENT, where
    nothing else of theirs does (children and images are indented deeper)."""
    bounds = [found.start() for found in _JOB_START.finditer(section)]
    bounds.append(len(section) - len(_BLOCKJOBS_END))
    return [_as_written(job, section[start:end])
            for job, start, end in zip(jobs, bounds[:-1], bounds[1:], strict=True)]


def _as_written(job: BlockJob, text: bytes) -> JobText:
    """The JobText of `job` written as `text`: its children follow its attributes."""
    parts = _attribute_parts(job, None)
    attributes = _with_kept(job, parts[1]) if job.kept_attributes else "".join(parts[1])
    return _new(JobText, (job, text, text[len(_JOB_TAG) + len(attributes.encode()):], parts))


def write_blockjobs(
    jobs: Sequence[bytes], active: bool, head: bytes = b"", tail: bytes = b""
) -> bytes:
    """The whole `<blockjobs>` element around `jobs` (`job_text`s, in the order given),
    between `head` and `tail` (a document's bytes around it: one join, one copy)."""
    start = _BLOCKJOBS_START[active]
    if not jobs:
        return b"".join((head, start, b"/>\n", tail))
    return b"".join([head, start, b">\n", *jobs, _BLOCKJOBS_END, tail])


_BLOCKJOBS_START = {
    active: f"{BLOCKJOBS_INDENT}<blockjobs active='{'yes' if active else 'no'}'".encode()
    for active in (True, False)
}
_BLOCKJOBS_END = f"{BLOCKJOBS_INDENT}</blockjobs>\n".encode()
_JOB_TAG = f"{JOB_INDENT}<blockjob".encode()
_JOB_START = re.compile(b"^" + _JOB_TAG + b" ", re.MULTILINE)
