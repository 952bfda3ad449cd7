"""Read `<blockjob>` elements with libvirt's leniency (docs/format.md#leniency).

One bad job never costs the domain: it is kept, marked invalid, and its problems
listed. Only what libvirt itself treats as fatal for the whole status file
raises: two jobs with one name, or two jobs on one disk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lxml import etree

from blockjob.errors import StatusXMLError
from blockjob.model import (
    BackupData,
    BlockJob,
    CommitData,
    CopyData,
    CreateData,
    JobChains,
    JobData,
    JobState,
    JobType,
    PullData,
    StorageSource,
    assemble,
)
from blockjob.statusxml.disks import DiskRefs, known_names
from blockjob.statusxml.lazyimages import LoadedBlockjobs, Path
from blockjob.statusxml.node import first_children, from_lxml
from blockjob.statusxml.sources import SourceError

_TYPES = {t.value: t for t in JobType}
_STATES = {s.value: s for s in JobState}


class BrokenDataError(ValueError):
    """Type-specific data libvirt would call broken; the job stays, marked invalid."""


@dataclass
class ReadContext:
    filename: str
    disks: DiskRefs
    origin: LoadedBlockjobs
    warnings: list[str] = field(default_factory=list)

    def warn(self, element: etree._Element, message: str) -> None:
        self.warnings.append(f"{self.filename}:{element.sourceline or 0}: {message}")


_Kids = dict[object, etree._Element]


def _child_attr(kids: _Kids, child: str, name: str) -> str | None:
    # libvirt's XPath string helper reads an empty value as absent.
    found = kids.get(child)
    return (found.get(name) or None) if found is not None else None


@functools.lru_cache(maxsize=64)  # a daemon's files carry a handful of distinct values
def _jobflags(text: str | None) -> int | None:
    if text is None:
        return None
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        return int(digits, 16) if digits and digits.isascii() and digits.isalnum() else None
    except ValueError:
        return None


class _Job:
    """What the type-specific readers see of one `<blockjob>`.

    Children are indexed by tag (the first one wins, like XPath). `known` holds
    those of the job's node names that name an image it may refer to; which image
    is asked of the document later. Unknown names are kept as written, so callers
    can see what the file said.
    """

    __slots__ = ("attrs", "kids", "known", "nodes", "origin", "position", "problems")

    def __init__(
        self, attrs: dict[str, str], kids: _Kids, problems: list[str],
        origin: LoadedBlockjobs, position: tuple[int, str],
    ) -> None:
        self.attrs = attrs
        self.kids = kids
        self.problems = problems
        self.origin = origin
        self.position = position  # among the `<blockjob>` elements, and the job's name
        self.nodes: dict[str, str] = {}
        self.known: set[str] = set()

    def node_names(self) -> set[str]:
        """The node names the job's children name (read once, for `node`)."""
        nodes = self.nodes
        for tag in _NODE_TAGS:
            name = _child_attr(self.kids, tag, "node")
            if name is not None:
                nodes[tag] = name
        return set(nodes.values())

    def node(self, child: str, *, optional: bool = False) -> str | None:
        """The node name of `<child node>` as written; a missing or unknown one is a problem."""
        name = self.nodes.get(child)
        if name is None:
            if not optional:
                self.problems.append(f"<{child} node> is missing")
        elif name not in self.known:
            self.problems.append(f"<{child}> node name '{name}' not found in the job's chains")
        return name

    def image(
        self, element: etree._Element, path: Path, *, chain: bool
    ) -> Callable[[], StorageSource]:
        """A job image at `path` below the job, checked now and built when first read."""
        return self.origin.defer(element, (*self.position, path), chain=chain)

    def source(self, child: str) -> Callable[[], StorageSource]:
        found = self.kids.get(child)
        if found is None:
            raise BrokenDataError(f"<{child}> is missing")
        return self.image(found, (child,), chain=False)


def _commit(job: _Job, kind: JobType) -> CommitData:
    topparent = job.node("topparent") if kind is JobType.COMMIT else None
    top = job.node("top")
    base = job.node("base")
    bitmaps: list[str] = []
    listed = job.kids.get("disabledBaseBitmaps")
    for bitmap in listed.iterchildren("bitmap") if listed is not None else ():
        name = bitmap.get("name")
        if not name:
            raise BrokenDataError("<disabledBaseBitmaps><bitmap> without a name")
        bitmaps.append(name)
    return assemble(CommitData, {
        "base": base,
        "top": top,
        "topparent": topparent,
        "delete_committed_images": "deleteCommittedImages" in job.kids,
        "disabled_base_bitmaps": tuple(bitmaps),
    })


def _pull(job: _Job, _kind: JobType) -> PullData:
    return assemble(PullData, {"base": job.node("base", optional=True)})


def _create(job: _Job, _kind: JobType) -> CreateData:
    mode = _child_attr(job.kids, "create", "mode")
    if mode is not None and mode != "storage":
        raise BrokenDataError(f"<create mode='{mode}'>: only 'storage' is known")
    return CreateData(src=job.source("src"), storage_only=mode == "storage")


def _copy(job: _Job, _kind: JobType) -> CopyData:
    shallownew = job.attrs.get("shallownew") or None
    if shallownew is not None and shallownew != "yes":
        raise BrokenDataError(f"shallownew='{shallownew}': only 'yes' is known")
    return assemble(CopyData, {"shallownew": shallownew == "yes"})


def _backup(job: _Job, _kind: JobType) -> BackupData:
    return BackupData(bitmap=_child_attr(job.kids, "bitmap", "name"), store=job.source("store"))


_SPECIFIC: dict[JobType, Callable[[_Job, JobType], JobData]] = {
    JobType.PULL: _pull,
    JobType.COMMIT: _commit,
    JobType.ACTIVE_COMMIT: _commit,
    JobType.CREATE: _create,
    JobType.COPY: _copy,
    JobType.BACKUP: _backup,
}
# Job types whose data names images by node name.
_RESOLVING = frozenset({JobType.PULL, JobType.COMMIT, JobType.ACTIVE_COMMIT})


# Children whose `node` attribute names an image.
_NODE_TAGS = ("base", "top", "topparent")


def _known(
    disks: DiskRefs, disk: str | None, mirror: bool, chains: etree._Element | None,
    wanted: set[str],
) -> set[str]:
    """Those of `wanted` in the job's chains: its disk's, its own, its mirror's.

    `chains` is the job's own `<chains>`, when they were read (an orphan job).
    """
    known: set[str] = set()
    if chains is not None:
        own = first_children(chains)
        images = (
            image for tag in ("disk", "mirror") if tag in own
            for image in own[tag].iterchildren("source", "backingStore")
        )
        known = known_names(images, wanted)
    if disk is not None and len(known) < len(wanted):
        known |= disks.known_names(disk, wanted - known, mirror=mirror)
    return known


def _chains(job: _Job) -> JobChains | None:
    chains = job.kids.get("chains")
    if chains is None:
        return None
    found = first_children(chains)
    disk = found.get("disk")
    mirror = found.get("mirror")
    if disk is None and mirror is None:
        return None
    return JobChains(
        disk=job.image(disk, ("chains", "disk"), chain=True) if disk is not None else None,
        mirror=job.image(mirror, ("chains", "mirror"), chain=True) if mirror is not None else None,
    )


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
        problems.append(f"unknown job type '{type_text}'")
        kind = JobType.BROKEN

    brokentype_text = get("brokentype") or None
    brokentype = _TYPES.get(brokentype_text) if brokentype_text is not None else None
    if brokentype_text is not None and brokentype is None:
        ctx.warn(element, f"job '{name}': unknown brokentype '{brokentype_text}' ignored")

    state_text = get("state") or ""
    state = _STATES.get(state_text)
    if state is None:
        problems.append(f"unknown job state '{state_text}'")
        state = JobState.FAILED

    newstate_text = get("newstate") or None
    newstate = _STATES.get(newstate_text) if newstate_text is not None else None
    if newstate_text is not None and newstate is None:
        problems.append(f"unknown new state '{newstate_text}'")

    kids = first_children(element)
    job = _Job(attrs, kids, problems, ctx.origin, (position, name))
    disk_el = kids.get("disk")
    dst = mirror_text = None
    if disk_el is not None:
        dst = disk_el.get("dst") or None
        mirror_text = disk_el.get("mirror") or None
    disk = dst if dst is not None and dst in ctx.disks else None
    if dst is not None and disk is None:
        problems.append(f"disk '{dst}' not found in the domain")
    if mirror_text is not None and mirror_text != "yes":
        problems.append(f"disk mirror='{mirror_text}': only 'yes' is known")

    flags_text = get("jobflags") or None
    jobflags = _jobflags(flags_text)
    if flags_text is not None and jobflags is None:
        ctx.warn(element, f"job '{name}': unparsable jobflags '{flags_text}' dropped")

    chains: JobChains | None = None
    if disk is None and not problems:
        try:
            chains = _chains(job)
        except SourceError as exc:
            problems.append(f"orphan chains: {exc}")
    elif disk is not None and "chains" in kids:
        ctx.warn(element, f"job '{name}': <chains> of a job bound to a disk ignored")

    mirror = False
    if mirror_text == "yes":
        if disk is None:
            problems.append("mirror='yes' on a job without a disk")
        else:
            mirror = ctx.disks.has_mirror(disk)

    data: JobData | None = None
    specific = _SPECIFIC.get(kind)
    if specific is not None:
        if kind in _RESOLVING:
            own_chains = kids.get("chains") if chains is not None else None
            job.known = _known(ctx.disks, disk, mirror, own_chains, job.node_names())
        try:
            data = specific(job, kind)
        except (BrokenDataError, SourceError) as exc:
            problems.append(str(exc))

    errmsg_el = kids.get("errmsg")
    errmsg = (errmsg_el.text or None) if errmsg_el is not None else None
    invalid = bool(problems)
    return assemble(BlockJob, {
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
        "raw": from_lxml(element) if invalid else None,
    })


def read_jobs(blockjobs: etree._Element | None, ctx: ReadContext) -> list[BlockJob]:
    """Read every job; raise StatusXMLError where libvirt would refuse the file."""
    jobs: list[BlockJob] = []
    if blockjobs is None:
        return jobs
    lines_by_name: dict[str, int] = {}
    names_by_disk: dict[str, str] = {}
    for position, element in enumerate(blockjobs.iterchildren("blockjob")):
        job = read_job(element, position, ctx)
        if job is None:
            continue
        line = element.sourceline or 0
        if job.name in lines_by_name:
            raise StatusXMLError(
                ctx.filename, line,
                f"duplicate block job name '{job.name}' (first at line {lines_by_name[job.name]})",
            )
        lines_by_name[job.name] = line
        disk = job.disk
        other = names_by_disk.get(disk) if disk is not None else None
        if disk is None:
            pass
        elif other is not None and disk in ctx.disks.repeated:
            # libvirt <= 5.7 bound jobs to disk objects, so a domain with two
            # disks of one target could carry a job for each. Keep the second
            # job, unbound and invalid, rather than lose the domain.
            problem = f"disk '{disk}' is repeated in the domain and already has job '{other}'"
            job = replace(job, disk=None, invalid=True, problems=(*job.problems, problem),
                          raw=from_lxml(element))
        elif other is not None:
            raise StatusXMLError(
                ctx.filename, line, f"disk '{disk}' already has block job '{other}' assigned"
            )
        else:
            names_by_disk[disk] = job.name
        jobs.append(job)
    return jobs
