"""Read `<blockjob>` elements with libvirt's leniency (SPEC.md section 5).

One bad job never costs the domain: it is kept, marked invalid, and its problems
listed. Only what libvirt itself treats as fatal for the whole status file
raises: two jobs with one name, or two jobs on one disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from lxml import etree

from blockjob.domain import Disk
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
from blockjob.xmlnode import from_lxml

_TYPES = {t.value: t for t in JobType}
_STATES = {s.value: s for s in JobState}


class BrokenData(ValueError):
    """Type-specific data libvirt would call broken; the job stays, marked invalid."""


@dataclass
class ReadContext:
    filename: str
    disks: Mapping[str, Disk]
    repeated_targets: frozenset[str] = frozenset()
    warnings: list[str] = field(default_factory=list)

    def warn(self, element: etree._Element, message: str) -> None:
        self.warnings.append(f"{self.filename}:{element.sourceline or 0}: {message}")


def _attr(element: etree._Element, name: str) -> str | None:
    # libvirt's XPath string helper reads an empty value as absent.
    return element.get(name) or None


def _child_attr(element: etree._Element, child: str, name: str) -> str | None:
    found = element.find(child)
    return _attr(found, name) if found is not None else None


def _jobflags(text: str | None) -> int | None:
    if text is None:
        return None
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        return int(digits, 16) if digits and digits.isascii() and digits.isalnum() else None
    except ValueError:
        return None


class _Resolver:
    """libvirt's node-name lookup: disk chain, then the job's chain, then the mirror chain."""

    def __init__(self, disk: Disk | None, chains: JobChains | None, mirror: StorageSource | None):
        tops: list[StorageSource | None] = [disk.chain if disk else None]
        tops.append(chains.disk if chains else None)
        tops.append(mirror)
        self._tops = [top for top in tops if top is not None]

    def find(self, node_name: str) -> StorageSource | None:
        for top in self._tops:
            for image in top.images():
                if image.matches(node_name):
                    return image
        return None

    def require(self, element: etree._Element, child: str, *, optional: bool = False) -> str | None:
        name = _child_attr(element, child, "node")
        if name is None:
            if optional:
                return None
            raise BrokenData(f"<{child} node> is missing")
        if self.find(name) is None:
            raise BrokenData(f"<{child}> node name '{name}' not found in the job's chains")
        return name


def _commit(element: etree._Element, kind: JobType, resolve: _Resolver) -> CommitData:
    topparent = resolve.require(element, "topparent") if kind is JobType.COMMIT else None
    top = resolve.require(element, "top")
    base = resolve.require(element, "base")
    bitmaps: list[str] = []
    for bitmap in element.iterfind("disabledBaseBitmaps/bitmap"):
        name = _attr(bitmap, "name")
        if name is None:
            raise BrokenData("<disabledBaseBitmaps><bitmap> without a name")
        bitmaps.append(name)
    return CommitData(
        base=base,
        top=top,
        topparent=topparent,
        delete_committed_images=element.find("deleteCommittedImages") is not None,
        disabled_base_bitmaps=tuple(bitmaps),
    )


def _source(element: etree._Element, child: str) -> StorageSource:
    found = element.find(child)
    if found is None:
        raise BrokenData(f"<{child}> is missing")
    try:
        return read_job_source(found, chain=False)
    except SourceError as exc:
        raise BrokenData(str(exc)) from None


def _create(element: etree._Element) -> CreateData:
    mode = _child_attr(element, "create", "mode")
    if mode is not None and mode != "storage":
        raise BrokenData(f"<create mode='{mode}'>: only 'storage' is known")
    return CreateData(src=_source(element, "src"), storage_only=mode == "storage")


def _copy(element: etree._Element) -> CopyData:
    shallownew = _attr(element, "shallownew")
    if shallownew is not None and shallownew != "yes":
        raise BrokenData(f"shallownew='{shallownew}': only 'yes' is known")
    return CopyData(shallownew=shallownew == "yes")


_SPECIFIC: dict[JobType, Callable[[etree._Element, JobType, _Resolver], JobData]] = {
    JobType.PULL: lambda e, _k, r: PullData(base=r.require(e, "base", optional=True)),
    JobType.COMMIT: _commit,
    JobType.ACTIVE_COMMIT: _commit,
    JobType.CREATE: lambda e, _k, _r: _create(e),
    JobType.COPY: lambda e, _k, _r: _copy(e),
    JobType.BACKUP: lambda e, _k, _r: BackupData(
        bitmap=_child_attr(e, "bitmap", "name"), store=_source(e, "store")
    ),
}


def _chains(element: etree._Element) -> JobChains | None:
    chains = element.find("chains")
    if chains is None:
        return None
    disk = chains.find("disk")
    mirror = chains.find("mirror")
    if disk is None and mirror is None:
        return None
    return JobChains(
        disk=read_job_source(disk, chain=True) if disk is not None else None,
        mirror=read_job_source(mirror, chain=True) if mirror is not None else None,
    )


def read_job(element: etree._Element, ctx: ReadContext) -> BlockJob | None:
    """Read one `<blockjob>`; None when libvirt would drop it (no name)."""
    name = _attr(element, "name")
    if name is None:
        ctx.warn(element, "block job without a name dropped")
        return None
    problems: list[str] = []

    type_text = _attr(element, "type")
    kind = _TYPES.get(type_text or "")
    if kind is None:
        problems.append(f"unknown job type '{type_text or ''}'")
        kind = JobType.BROKEN

    brokentype_text = _attr(element, "brokentype")
    brokentype = _TYPES.get(brokentype_text or "")
    if brokentype_text is not None and brokentype is None:
        ctx.warn(element, f"job '{name}': unknown brokentype '{brokentype_text}' ignored")

    state_text = _attr(element, "state")
    state = _STATES.get(state_text or "")
    if state is None:
        problems.append(f"unknown job state '{state_text or ''}'")
        state = JobState.FAILED

    newstate_text = _attr(element, "newstate")
    newstate = _STATES.get(newstate_text or "")
    if newstate_text is not None and newstate is None:
        problems.append(f"unknown new state '{newstate_text}'")

    dst = _child_attr(element, "disk", "dst")
    disk = ctx.disks.get(dst) if dst is not None else None
    if dst is not None and disk is None:
        problems.append(f"disk '{dst}' not found in the domain")
    mirror_text = _child_attr(element, "disk", "mirror")
    if mirror_text is not None and mirror_text != "yes":
        problems.append(f"disk mirror='{mirror_text}': only 'yes' is known")

    flags_text = _attr(element, "jobflags")
    jobflags = _jobflags(flags_text)
    if flags_text is not None and jobflags is None:
        ctx.warn(element, f"job '{name}': unparsable jobflags '{flags_text}' dropped")

    chains: JobChains | None = None
    if disk is None and not problems:
        try:
            chains = _chains(element)
        except SourceError as exc:
            problems.append(f"orphan chains: {exc}")
    elif disk is not None and element.find("chains") is not None:
        ctx.warn(element, f"job '{name}': <chains> of a job bound to a disk ignored")

    mirror = False
    mirror_chain = chains.mirror if chains else None
    if mirror_text == "yes":
        if disk is None:
            problems.append("mirror='yes' on a job without a disk")
        elif disk.mirror is not None:
            mirror = True
            mirror_chain = disk.mirror

    data: JobData | None = None
    specific = _SPECIFIC.get(kind)
    if specific is not None:
        try:
            data = specific(element, kind, _Resolver(disk, chains, mirror_chain))
        except (BrokenData, SourceError) as exc:
            problems.append(str(exc))

    errmsg = element.findtext("errmsg") or None
    invalid = bool(problems)
    return BlockJob(
        name=name,
        type=kind,
        state=state,
        newstate=newstate,
        brokentype=brokentype,
        jobflags=jobflags,
        errmsg=errmsg,
        disk=disk.target if disk is not None else None,
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
    for element in blockjobs.iterfind("blockjob"):
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
        if job.disk is not None:
            other = names_by_disk.get(job.disk)
            if other is not None and job.disk in ctx.repeated_targets:
                # libvirt <= 5.7 bound jobs to disk objects, so a domain with two
                # disks of one target could carry a job for each. Keep the second
                # job, unbound and invalid, rather than lose the domain.
                job = replace(
                    job,
                    disk=None,
                    invalid=True,
                    problems=(*job.problems, f"disk '{job.disk}' is repeated in the domain "
                              f"and already has block job '{other}' assigned"),
                    raw=from_lxml(element),
                )
            elif other is not None:
                raise StatusXMLError(
                    ctx.filename, line,
                    f"disk '{job.disk}' already has block job '{other}' assigned",
                )
            else:
                names_by_disk[job.disk] = job.name
        jobs.append(job)
    return jobs
