"""Read `<blockjob>` elements with libvirt's leniency (SPEC.md section 5).

One bad job never costs the domain: it is kept, marked invalid, and its problems
listed. Only what libvirt itself treats as fatal for the whole status file
raises: two jobs with one name, or two jobs on one disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lxml import etree

from blockjob.domain import DiskRefs
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
)
from blockjob.sources import SourceError, read_job_source
from blockjob.xmlnode import first_children, from_lxml

_TYPES = {t.value: t for t in JobType}
_STATES = {s.value: s for s in JobState}


class BrokenDataError(ValueError):
    """Type-specific data libvirt would call broken; the job stays, marked invalid."""


@dataclass
class ReadContext:
    filename: str
    disks: DiskRefs
    warnings: list[str] = field(default_factory=list)

    def warn(self, element: etree._Element, message: str) -> None:
        self.warnings.append(f"{self.filename}:{element.sourceline or 0}: {message}")


def _attr(element: etree._Element, name: str) -> str | None:
    # libvirt's XPath string helper reads an empty value as absent.
    return element.get(name) or None


class _Job:
    """A `<blockjob>` element with its children indexed by tag (first one wins, like XPath)."""

    def __init__(self, element: etree._Element) -> None:
        self.element = element
        self.kids = first_children(element)
        # One call for all attributes: cheaper than a get() per attribute read.
        self.attrs = dict(element.items())

    def attr(self, name: str) -> str | None:
        return self.attrs.get(name) or None

    def child_attr(self, child: str, name: str) -> str | None:
        found = self.kids.get(child)
        return (found.get(name) or None) if found is not None else None


def _jobflags(text: str | None) -> int | None:
    if text is None:
        return None
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        return int(digits, 16) if digits and digits.isascii() and digits.isalnum() else None
    except ValueError:
        return None


def _image_names(top: StorageSource | None) -> frozenset[str]:
    if top is None:
        return frozenset()
    return frozenset(
        name for image in top.images() for name in (image.storage_node, image.format_node) if name
    )


class _Resolver:
    """libvirt's node-name lookup over the disk chain, the job's chain and the mirror chain.

    Only existence matters while reading; which image a name means is asked of
    the document later, when someone acts on the job. Unknown names are kept as
    written, so callers can see what the file said.
    """

    def __init__(self, names: frozenset[str]) -> None:
        self._names = names
        self.problems: list[str] = []

    def require(self, job: _Job, child: str, *, optional: bool = False) -> str | None:
        """The node name as written; a missing or unknown one is recorded as a problem."""
        name = job.child_attr(child, "node")
        if name is None and not optional:
            self.problems.append(f"<{child} node> is missing")
        elif name is not None and name not in self._names:
            self.problems.append(f"<{child}> node name '{name}' not found in the job's chains")
        return name


def _commit(job: _Job, kind: JobType, resolve: _Resolver) -> CommitData:
    topparent = resolve.require(job, "topparent") if kind is JobType.COMMIT else None
    top = resolve.require(job, "top")
    base = resolve.require(job, "base")
    bitmaps: list[str] = []
    listed = job.kids.get("disabledBaseBitmaps")
    for bitmap in listed.iterchildren("bitmap") if listed is not None else ():
        name = _attr(bitmap, "name")
        if name is None:
            raise BrokenDataError("<disabledBaseBitmaps><bitmap> without a name")
        bitmaps.append(name)
    return CommitData(
        base=base,
        top=top,
        topparent=topparent,
        delete_committed_images="deleteCommittedImages" in job.kids,
        disabled_base_bitmaps=tuple(bitmaps),
    )


def _source(job: _Job, child: str) -> StorageSource:
    found = job.kids.get(child)
    if found is None:
        raise BrokenDataError(f"<{child}> is missing")
    try:
        return read_job_source(found, chain=False)
    except SourceError as exc:
        raise BrokenDataError(str(exc)) from None


def _pull(job: _Job, _kind: JobType, resolve: _Resolver) -> PullData:
    return PullData(base=resolve.require(job, "base", optional=True))


def _create(job: _Job, _kind: JobType, _resolve: _Resolver) -> CreateData:
    mode = job.child_attr("create", "mode")
    if mode is not None and mode != "storage":
        raise BrokenDataError(f"<create mode='{mode}'>: only 'storage' is known")
    return CreateData(src=_source(job, "src"), storage_only=mode == "storage")


def _copy(job: _Job, _kind: JobType, _resolve: _Resolver) -> CopyData:
    shallownew = job.attr("shallownew")
    if shallownew is not None and shallownew != "yes":
        raise BrokenDataError(f"shallownew='{shallownew}': only 'yes' is known")
    return CopyData(shallownew=shallownew == "yes")


def _backup(job: _Job, _kind: JobType, _resolve: _Resolver) -> BackupData:
    return BackupData(bitmap=job.child_attr("bitmap", "name"), store=_source(job, "store"))


_SPECIFIC: dict[JobType, Callable[[_Job, JobType, _Resolver], JobData]] = {
    JobType.PULL: _pull,
    JobType.COMMIT: _commit,
    JobType.ACTIVE_COMMIT: _commit,
    JobType.CREATE: _create,
    JobType.COPY: _copy,
    JobType.BACKUP: _backup,
}
# Job types whose data names images by node name.
_RESOLVING = frozenset({JobType.PULL, JobType.COMMIT, JobType.ACTIVE_COMMIT})


def _resolvable(
    disks: DiskRefs, disk: str | None, mirror: bool, chains: JobChains | None
) -> frozenset[str]:
    """Node names a job may refer to: its disk's chain, its own chains, its mirror chain."""
    names = _image_names(chains.disk) | _image_names(chains.mirror) if chains else frozenset()
    if disk is not None:
        names |= disks.chain_names(disk)
        if mirror:
            names |= disks.mirror_names(disk)
    return names


def _chains(job: _Job) -> JobChains | None:
    chains = job.kids.get("chains")
    if chains is None:
        return None
    kids = first_children(chains)
    disk = kids.get("disk")
    mirror = kids.get("mirror")
    if disk is None and mirror is None:
        return None
    return JobChains(
        disk=read_job_source(disk, chain=True) if disk is not None else None,
        mirror=read_job_source(mirror, chain=True) if mirror is not None else None,
    )


def read_job(element: etree._Element, ctx: ReadContext) -> BlockJob | None:
    """Read one `<blockjob>`; None when libvirt would drop it (no name)."""
    job = _Job(element)
    name = job.attr("name")
    if name is None:
        ctx.warn(element, "block job without a name dropped")
        return None
    problems: list[str] = []

    type_text = job.attr("type")
    kind = _TYPES.get(type_text or "")
    if kind is None:
        problems.append(f"unknown job type '{type_text or ''}'")
        kind = JobType.BROKEN

    brokentype_text = job.attr("brokentype")
    brokentype = _TYPES.get(brokentype_text or "")
    if brokentype_text is not None and brokentype is None:
        ctx.warn(element, f"job '{name}': unknown brokentype '{brokentype_text}' ignored")

    state_text = job.attr("state")
    state = _STATES.get(state_text or "")
    if state is None:
        problems.append(f"unknown job state '{state_text or ''}'")
        state = JobState.FAILED

    newstate_text = job.attr("newstate")
    newstate = _STATES.get(newstate_text or "")
    if newstate_text is not None and newstate is None:
        problems.append(f"unknown new state '{newstate_text}'")

    dst = job.child_attr("disk", "dst")
    disk = dst if dst is not None and dst in ctx.disks else None
    if dst is not None and disk is None:
        problems.append(f"disk '{dst}' not found in the domain")
    mirror_text = job.child_attr("disk", "mirror")
    if mirror_text is not None and mirror_text != "yes":
        problems.append(f"disk mirror='{mirror_text}': only 'yes' is known")

    flags_text = job.attr("jobflags")
    jobflags = _jobflags(flags_text)
    if flags_text is not None and jobflags is None:
        ctx.warn(element, f"job '{name}': unparsable jobflags '{flags_text}' dropped")

    chains: JobChains | None = None
    if disk is None and not problems:
        try:
            chains = _chains(job)
        except SourceError as exc:
            problems.append(f"orphan chains: {exc}")
    elif disk is not None and "chains" in job.kids:
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
        names = _resolvable(ctx.disks, disk, mirror, chains) if kind in _RESOLVING else frozenset()
        resolver = _Resolver(names)
        try:
            data = specific(job, kind, resolver)
        except (BrokenDataError, SourceError) as exc:
            problems.append(str(exc))
        problems.extend(resolver.problems)

    errmsg_el = job.kids.get("errmsg")
    errmsg = (errmsg_el.text or None) if errmsg_el is not None else None
    invalid = bool(problems)
    return BlockJob(
        name=name,
        type=kind,
        state=state,
        newstate=newstate,
        brokentype=brokentype,
        jobflags=jobflags,
        errmsg=errmsg,
        disk=disk,
        mirror=mirror,
        chains=chains,
        data=data,
        invalid=invalid,
        problems=tuple(problems),
        raw=from_lxml(element) if invalid else None,
    )


def read_jobs(blockjobs: etree._Element | None, ctx: ReadContext) -> list[BlockJob]:
    """Read every job; raise StatusXMLError where libvirt would refuse the file."""
    jobs: list[BlockJob] = []
    if blockjobs is None:
        return jobs
    lines_by_name: dict[str, int] = {}
    names_by_disk: dict[str, str] = {}
    for element in blockjobs.iterchildren("blockjob"):
        job = read_job(element, ctx)
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
