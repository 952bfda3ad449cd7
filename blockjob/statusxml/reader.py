"""Read `<blockjob>` elements with libvirt's leniency (docs/format.md#leniency), row by
row of `mapping.py`.

One bad job never costs the domain: it is kept, marked invalid, and its problems
listed. Only what libvirt itself treats as fatal for the whole status file
raises: two jobs with one name, or two jobs on one disk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lxml import etree

from blockjob.element import Node
from blockjob.errors import StatusXMLError
from blockjob.model import (
    BlockJob,
    JobChains,
    JobData,
    JobState,
    JobType,
    StorageSource,
)
from blockjob.statusxml.build import builder, filler
from blockjob.statusxml.disks import DiskRefs, known_names
from blockjob.statusxml.lazyimages import LoadedBlockjobs, Path
from blockjob.statusxml.mapping import (
    DATA_CLASSES,
    KNOWN_ATTRIBUTES,
    KNOWN_CHILDREN,
    NODE_ROWS,
    ROWS_OF_CLASS,
    ROWS_OF_TYPE,
    Kind,
    Row,
)
from blockjob.statusxml.node import (
    attr_holder,
    declarations,
    first_at,
    first_children,
    kept_node,
    prefixed,
    string_value,
    tag_as_written,
    text_dropped,
    xpath_attr,
)
from blockjob.statusxml.numbers import c_unsigned
from blockjob.statusxml.sources import SourceError

_TYPES = {t.value: t for t in JobType}
_STATES = {s.value: s for s in JobState}


class BrokenDataError(ValueError):
    """Type-specific data libvirt would call broken; the job stays, marked invalid."""

    def __init__(self, message: str, element: etree._Element) -> None:
        super().__init__(message)
        self.element = element


@dataclass
class ReadContext:
    filename: str
    disks: DiskRefs
    origin: LoadedBlockjobs
    warnings: list[str] = field(default_factory=list)

    def warn(self, element: etree._Element, message: str) -> None:
        self.warnings.append(self.warning(element, message))

    def warning(self, element: etree._Element, message: str) -> str:
        return f"{self.filename}:{self.line(element)}: {message}"

    def problem(self, element: etree._Element, message: str) -> str:
        """A job's problem, naming the line of the element it is about."""
        return f"line {self.line(element)}: {message}"

    def line(self, element: etree._Element) -> int:
        """The line of `element` a problem names (`SourceLines`: also from LAST_LINE on,
        and in a file with CR line ends)."""
        return self.origin.lines(element)


_Kids = dict[object, etree._Element]


@functools.lru_cache(maxsize=64)  # a daemon's files carry a handful of distinct values
def _jobflags(text: str) -> int | None:
    """libvirt's (>= 9) `virXMLPropUInt(node, "jobflags", 16, ...)`: 32 bits, and `-N`
    wraps around (`virStrToLong_ui`)."""
    return c_unsigned(text, 16, negative=True)


class _Job:
    """What the row readers see of one `<blockjob>`.

    Children are indexed by tag (the first one of each). Values are read as libvirt's
    XPath reads them: `attr("base", "node")` is `string(./base/@node)`, the attribute of
    the first `<base>` that has one; `repeats` says whether a tag occurs twice, the only
    case where that is not the first `<base>`. `known` holds those of the job's node names
    that name an image it may refer to; which image is asked of the document later.
    Unknown names are kept as written, so callers can see what the file said.
    """

    __slots__ = ("attrs", "ctx", "element", "kids", "known", "nodes", "position", "problems",
                 "repeats")

    def __init__(  # positional: a class called with keywords packs them in a dict, per job
        self, element: etree._Element, attrs: dict[str, str], problems: list[str],
        ctx: ReadContext, position: tuple[int, str], /,
    ) -> None:
        self.element = element
        self.attrs = attrs
        self.kids = kids = first_children(element)
        # Also True for two comments (one key): then only the slower, exact way is taken.
        self.repeats = len(kids) != len(element)
        self.problems = problems
        self.ctx = ctx
        self.position = position  # among the `<blockjob>` elements, and the job's name
        self.nodes: dict[str, str] = {}
        self.known: set[str] = set()

    def problem(self, element: etree._Element, message: str) -> None:
        """Add a problem, naming the line of the element it is about."""
        self.problems.append(self.ctx.problem(element, message))

    def attr(self, tag: str, name: str) -> str | None:
        """XPath `string(./tag/@name)`; None when absent or empty, as libvirt reads it."""
        first = self.kids.get(tag)
        if first is None:
            return None
        if self.repeats:
            return xpath_attr(self.element, first, tag, name)
        return first.get(name) or None

    def all(self, tag: str) -> Iterable[etree._Element]:
        """Every child named `tag` (the job has at least one)."""
        return self.element.iterchildren(tag) if self.repeats else (self.kids[tag],)

    def holder(self, tag: str, name: str) -> etree._Element:
        """The element `attr` read (the job when none): where a problem with it lies."""
        found = attr_holder(self.element, self.kids.get(tag), tag, name)
        return found if found is not None else self.element

    def node_names(self, tags: tuple[str, ...]) -> set[str]:
        """The node names the children `tags` name (read once, for the node readers)."""
        nodes = self.nodes
        for tag in tags:
            name = self.attr(tag, "node")
            if name is not None:
                nodes[tag] = name
        return set(nodes.values())

    def image(self, element: etree._Element, path: Path, *, chain: bool) -> StorageSource:
        """A job image at `path` below the job, checked now and built when first read."""
        try:
            return self.ctx.origin.defer(element, (*self.position, path), chain=chain)
        except SourceError as exc:
            raise BrokenDataError(str(exc), element) from None


# How each kind of data row is read: a factory per kind, called once per row and job
# type at import, returns the reader (everything it can know beforehand bound in). A
# reader returns the model value, appends a problem for what libvirt tolerates but
# cannot use, and raises BrokenDataError where libvirt would call the job's data broken.
_Reader = Callable[[_Job], Any]  # the row's model field decides the type


def _node_reader(row: Row, kind: JobType) -> _Reader:
    """A node name that resolves to nothing is kept out of the model (the problem names
    it): libvirt stores the image it finds, not the string, and so writes nothing.

    Each reference is read on its own. libvirt stops at an unresolved `<topparent>`
    before reading `<top>` and `<base>`; keeping them costs nothing in the file (the job
    is invalid either way) and lets recovery find the base whose bitmaps it re-enables.
    """
    tag, required = row.xml, kind in row.required

    def read(job: _Job) -> str | None:
        name = job.nodes.get(tag)
        if name is None:
            if required:
                job.problem(job.element, f"<{tag} node> is missing")
        elif name not in job.known:
            job.problem(job.holder(tag, "node"),
                        f"<{tag}> node name '{name}' not found in the job's chains")
            return None
        return name

    return read


def _flag_reader(row: Row, _kind: JobType) -> _Reader:
    tag, value = row.xml, row.value
    if value is None:
        return lambda job: tag in job.kids
    attr, expected = value

    def read(job: _Job) -> bool:
        text = job.attr(tag, attr)
        if text is not None and text != expected:
            raise BrokenDataError(
                f"<{tag} {attr}='{text}'>: only '{expected}' is known", job.holder(tag, attr)
            )
        return text == expected

    return read


def _yes_reader(row: Row, _kind: JobType) -> _Reader:
    name = row.xml

    def read(job: _Job) -> bool:
        text = job.attrs.get(name) or None
        if text is not None and text != "yes":
            raise BrokenDataError(f"{name}='{text}': only 'yes' is known", job.element)
        return text == "yes"

    return read


def _names_reader(row: Row, _kind: JobType) -> _Reader:
    tag, item_tag = row.xml, row.item

    def read(job: _Job) -> tuple[str, ...]:
        names: list[str] = []
        if tag not in job.kids:
            return ()
        # Every `./tag/item`, in document order: repeats of `tag` add to the list.
        for item in (item for listed in job.all(tag) for item in listed.iterchildren(item_tag)):
            name = item.get("name")
            if not name:
                raise BrokenDataError(f"<{tag}><{item_tag}> without a name", item)
            names.append(name)
        return tuple(names)

    return read


def _named_reader(row: Row, _kind: JobType) -> _Reader:
    tag = row.xml
    return lambda job: job.attr(tag, "name")


def _image_reader(row: Row, kind: JobType) -> _Reader:
    tag, required, path = row.xml, kind in row.required, (row.xml,)

    def read(job: _Job) -> StorageSource | None:
        found = job.kids.get(tag)
        if found is None:
            if required:
                raise BrokenDataError(f"<{tag}> is missing", job.element)
            return None
        return job.image(found, path, chain=False)

    return read


_READERS: dict[Kind, Callable[[Row, JobType], _Reader]] = {
    Kind.NODE: _node_reader,
    Kind.FLAG: _flag_reader,
    Kind.YES: _yes_reader,
    Kind.NAMES: _names_reader,
    Kind.NAMED: _named_reader,
    Kind.IMAGE: _image_reader,
}


# libvirt's parse order where it is not the written one: a create job's `<src>` before
# its mode.
_PARSE_FIRST = ("src",)


def _data_reader(kind: JobType) -> Callable[[_Job], JobData]:
    """Read the data of a job of type `kind`: its rows in libvirt's parse order, into its
    data class.

    Broken data (BrokenDataError) ends the reading there, as libvirt's `goto broken`
    does: it is a problem of the job, and the fields not read yet keep their defaults,
    as do those no row of this type fills (`topparent` of an active commit).
    """
    rows = sorted(ROWS_OF_TYPE[kind], key=lambda row: row.xml not in _PARSE_FIRST)
    readers = tuple((row.field, _READERS[row.kind](row, kind)) for row in rows)
    # `read_data` sets only these fields in a copy of the defaults, so they are checked once.
    defaults, build = filler(DATA_CLASSES[kind], (name for name, _ in readers))

    def read_data(job: _Job) -> JobData:
        values = defaults.copy()
        try:
            for name, read in readers:
                values[name] = read(job)
        except BrokenDataError as exc:
            job.problem(exc.element, str(exc))
        data: JobData = build(values)
        return data

    return read_data


# Per job type, its data reader and the children naming images by node name. Keyed by
# libvirt's string, like `_TYPES`: hashing a JobType runs Python code, per lookup.
_DATA_READERS = {
    kind.value: (_data_reader(kind), tuple(row.xml for row in NODE_ROWS[kind]))
    for kind in ROWS_OF_TYPE
}


# An orphan job's own `<chains>` `<disk>` and `<mirror>`, None where it has none.
_Own = tuple[etree._Element | None, ...]


def _known(
    disks: DiskRefs, disk: str | None, mirror: bool, own: _Own, wanted: set[str]
) -> set[str]:
    """Those of `wanted` in the job's chains: its disk's, its own, its mirror's.

    `own` are the job's own chain elements, when they were read (an orphan job).
    """
    known: set[str] = set()
    if own:
        known = known_names((top for top in own if top is not None), wanted)
    if disk is not None and len(known) < len(wanted):
        known |= disks.known_names(disk, wanted - known, mirror=mirror)
    return known


_CHAIN_PATHS = (("chains", "disk"), ("chains", "mirror"))


def _chains(job: _Job) -> tuple[JobChains | None, _Own]:
    """The job's own chains, and their elements: the first `./chains/disk` and
    `./chains/mirror`, as libvirt finds them (under any `<chains>`)."""
    if "chains" not in job.kids:
        return None, ()
    if job.repeats:
        disk, mirror = (first_at(job.element, path) for path in _CHAIN_PATHS)
    else:
        own = first_children(job.kids["chains"])
        disk, mirror = own.get("disk"), own.get("mirror")
    # Each is read on its own, as libvirt does: one that is broken makes a problem, and
    # the job keeps the other.
    disk_image = _own_image(job, disk, _CHAIN_PATHS[0])
    mirror_image = _own_image(job, mirror, _CHAIN_PATHS[1])
    if disk_image is None and mirror_image is None:
        return None, ()
    read = (disk if disk_image is not None else None, mirror if mirror_image is not None else None)
    return JobChains(disk=disk_image, mirror=mirror_image), read


def _own_image(job: _Job, element: etree._Element | None, path: Path) -> StorageSource | None:
    """One of an orphan job's own chains; None when it has none, or it is broken (a
    problem of the job)."""
    if element is None:
        return None
    try:
        return job.image(element, path, chain=True)
    except BrokenDataError as exc:
        job.problem(exc.element, f"orphan chains: {exc}")
        return None


_new_job = builder(BlockJob)


def _kept_attributes(
    element: etree._Element, name: str, ctx: ReadContext
) -> tuple[tuple[str | None, str, str], ...]:
    """The attributes no row knows, each after the known one it followed."""
    kept: list[tuple[str | None, str, str]] = []
    after: str | None = None
    for key, value in element.items():
        if key in KNOWN_ATTRIBUTES:
            after = key
            continue
        written = prefixed(element, key)
        ctx.warn(element, f"job '{name}': unknown attribute '{written}' kept as written")
        if written != key:  # in a namespace: declared with it, if the root does not
            root = element.getroottree().getroot()
            kept.extend((after, *pair) for pair in declarations(element, dict(root.nsmap))
                        if (after, *pair) not in kept)
        kept.append((after, written, value))
    return tuple(kept)


def _kept(element: etree._Element, name: str, ctx: ReadContext) -> Node:
    """`element` as a Node to write back as read, with a warning for any text it loses."""
    for inner in text_dropped(element):
        ctx.warn(inner, f"job '{name}': text beside the child elements of "
                        f"<{tag_as_written(inner)}> dropped")
    return kept_node(element)


def _kept_children(
    element: etree._Element, name: str, ctx: ReadContext
) -> tuple[tuple[str | None, Node], ...]:
    """The child elements no row knows, each after the known one it followed."""
    kept: list[tuple[str | None, Node]] = []
    after: str | None = None
    for child in element.iterchildren(etree.Element):
        tag = child.tag
        if tag in KNOWN_CHILDREN:
            after = str(tag)
            continue
        ctx.warn(child, f"job '{name}': unknown element <{tag_as_written(child)}> kept as written")
        kept.append((after, _kept(child, name, ctx)))
    return tuple(kept)


def read_job(element: etree._Element, position: int, ctx: ReadContext) -> BlockJob | None:
    """Read the `<blockjob>` at `position`; None when libvirt would drop it (no name)."""
    # One call for all attributes: cheaper than a get() per attribute read.
    attrs = dict(element.items())
    get = attrs.get
    name = get("name")
    if not name:
        ctx.warn(element, "block job without a name dropped")
        return None
    problems: list[str] = []

    type_text = get("type") or ""
    kind = _TYPES.get(type_text)
    if kind is None:
        problems.append(ctx.problem(element, f"unknown job type '{type_text}'"))
        kind = JobType.BROKEN

    brokentype_text = get("brokentype") or None
    brokentype = _TYPES.get(brokentype_text) if brokentype_text is not None else None
    if brokentype_text is not None and brokentype is None:
        ctx.warn(element, f"job '{name}': unknown brokentype '{brokentype_text}' ignored")

    state_text = get("state") or ""
    state = _STATES.get(state_text)
    if state is None:
        problems.append(ctx.problem(element, f"unknown job state '{state_text}'"))
        state = JobState.FAILED

    newstate_text = get("newstate") or None
    newstate = _STATES.get(newstate_text) if newstate_text is not None else None
    if newstate_text is not None and newstate is None:
        problems.append(ctx.problem(element, f"unknown new state '{newstate_text}'"))

    job = _Job(element, attrs, problems, ctx, (position, name))
    kids = job.kids
    disk_el = kids.get("disk")
    dst = mirror_text = None
    if disk_el is not None:  # `job.attr`, inline: every job but an orphan has a disk
        dst, mirror_text = (job.attr("disk", "dst"), job.attr("disk", "mirror")) \
            if job.repeats else (disk_el.get("dst") or None, disk_el.get("mirror") or None)
    # The dict itself: a `__contains__` in Python costs a call, per job of every file.
    disk = dst if dst is not None and dst in ctx.disks.elements else None
    if dst is not None and disk is None:
        problems.append(ctx.problem(job.holder("disk", "dst"),
                                    f"disk '{dst}' not found in the domain"))
    if mirror_text is not None and mirror_text != "yes":
        problems.append(ctx.problem(job.holder("disk", "mirror"),
                                f"disk mirror='{mirror_text}': only 'yes' is known"))

    flags_text = get("jobflags") or None
    jobflags = _jobflags(flags_text) if flags_text is not None else None  # most have none
    if flags_text is not None and jobflags is None:
        ctx.warn(element, f"job '{name}': unparsable jobflags '{flags_text}' dropped")

    chains: JobChains | None = None
    own: _Own = ()
    if disk is None and not problems:
        chains, own = _chains(job)
    elif disk is not None and "chains" in kids:
        ctx.warn(element, f"job '{name}': <chains> of a job bound to a disk ignored")

    mirror = False
    if mirror_text is not None:  # whatever its value: libvirt then takes the disk's mirror
        if disk is None:
            problems.append(ctx.problem(job.holder("disk", "mirror"),
                                    f"mirror='{mirror_text}' on a job without a disk"))
        else:
            mirror = ctx.disks.has_mirror(disk)

    data: JobData | None = None
    specific = _DATA_READERS.get(type_text)
    if specific is not None:
        read_data, node_tags = specific
        if node_tags:
            job.known = _known(ctx.disks, disk, mirror, own, job.node_names(node_tags))
        data = read_data(job)

    errmsg_el = kids.get("errmsg")
    # libvirt reads the string value: all the text inside, around comments and child elements.
    errmsg = (string_value(errmsg_el) or None) if errmsg_el is not None else None
    invalid = bool(problems)
    # Unknown parts are rare: the set comparisons keep the common case to two checks.
    kept_attributes = (
        () if invalid or attrs.keys() <= KNOWN_ATTRIBUTES
        else _kept_attributes(element, name, ctx)
    )
    kept_children = (
        () if invalid or kids.keys() <= KNOWN_CHILDREN else _kept_children(element, name, ctx)
    )
    return _new_job({
        "name": name,
        "type": kind,
        "state": state,
        "newstate": newstate,
        "brokentype": brokentype,
        "jobflags": jobflags,
        "errmsg": errmsg,
        "disk": disk,
        "mirror": mirror,
        "chains": chains,
        "data": data,
        "invalid": invalid,
        "problems": tuple(problems),
        "kept_attributes": kept_attributes,
        "kept_children": kept_children,
    })


def _dropped(blockjobs: etree._Element, ctx: ReadContext) -> list[str]:
    """Warnings of what `<blockjobs>` holds besides `active` and `<blockjob>` elements:
    libvirt ignores it, and the writer does not keep it."""
    found = [ctx.warning(blockjobs, f"unknown attribute '{prefixed(blockjobs, key)}' "
                                    "of <blockjobs> dropped")
             for key in blockjobs.attrib if key != "active"]
    found += [ctx.warning(element, f"unknown element <{tag_as_written(element)}> in "
                                   "<blockjobs> dropped")
              for element in blockjobs.iterchildren(etree.Element) if element.tag != "blockjob"]
    return found


_ACTIVE_ONLY = ["active"]


def _unbound(data: JobData | None) -> JobData | None:
    """`data` of a job taken off its disk, as the next load reads it: without node names,
    which named images of that disk (a job without a disk has no chains to find them in,
    as it was read with a disk)."""
    if data is None:
        return None
    values = dict(vars(data))
    values.update((row.field, None) for row in ROWS_OF_CLASS[type(data)] if row.kind is Kind.NODE)
    return type(data)(**values)


class _Registry:
    """The jobs read so far, by name and by disk: libvirt refuses the file when a job's
    name, or its disk, is taken."""

    def __init__(self) -> None:
        # Elements, not lines: a line is only asked for in an error.
        self.elements_by_name: dict[str, etree._Element] = {}
        self.names_by_disk: dict[str, str] = {}

    def register(self, job: BlockJob, element: etree._Element, ctx: ReadContext) -> BlockJob:
        first = self.elements_by_name.setdefault(job.name, element)
        if first is not element:
            raise StatusXMLError(ctx.filename, ctx.line(element), f"duplicate block job name "
                                 f"'{job.name}' (first at line {ctx.line(first)})")
        disk = job.disk
        if disk is None:
            return job
        other = self.names_by_disk.setdefault(disk, job.name)
        if other == job.name:
            return job
        if disk not in ctx.disks.repeated:
            raise StatusXMLError(ctx.filename, ctx.line(element),
                                 f"disk '{disk}' already has block job '{other}' assigned")
        # libvirt <= 5.7 bound jobs to disk objects, so a domain with two disks of one
        # target could carry a job for each. Keep the second job, unbound and invalid,
        # rather than lose the domain.
        holder = attr_holder(element, first_children(element).get("disk"), "disk", "dst")
        assert holder is not None  # the job is bound to a disk: a <disk dst> named it
        repeated = ctx.problem(
            holder, f"disk '{disk}' is repeated in the domain and already has job '{other}'"
        )
        return replace(job, disk=None, mirror=False, data=_unbound(job.data), invalid=True,
                       problems=(*job.problems, repeated), kept_attributes=(), kept_children=())


def read_jobs(every: Sequence[etree._Element], ctx: ReadContext) -> list[BlockJob]:
    """Read every job of each `<blockjobs>` in `every` (libvirt reads
    `./blockjobs/blockjob`, so a second one's jobs count as much as the first's); raise
    StatusXMLError where libvirt would refuse the file."""
    jobs: list[BlockJob] = []
    registry = _Registry()
    # Among all the `<blockjob>` elements, in document order (`LoadedBlockjobs` counts so).
    position = -1
    for blockjobs in every:
        first_warning = len(ctx.warnings)
        first = position + 1
        for position, element in enumerate(blockjobs.iterchildren("blockjob"), first):
            job = read_job(element, position, ctx)
            if job is not None:
                jobs.append(registry.register(job, element, ctx))
        # Counting rules out anything else cheaply (a comment also makes the counts
        # differ); its warnings go before the jobs', as it is read first.
        if position + 1 - first != len(blockjobs) or blockjobs.keys() != _ACTIVE_ONLY:
            ctx.warnings[first_warning:first_warning] = _dropped(blockjobs, ctx)
    return jobs
