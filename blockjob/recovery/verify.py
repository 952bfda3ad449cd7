"""Check the end state against a fresh observation of QEMU before calling a domain ok.

Each failed check is one line naming what is wrong; recovery reports them as
attention. The checks do not trust the steps that ran: a base some job touched must be
read-only (unless it is now the disk's active layer), every listed bitmap enabled and
consistent, each disk's chain in the file exactly the chain QEMU runs (a disk whose job
goes on: every node of it in QEMU), each image's format node reading the storage (or
slice) node the file names, and no job left in the file that QEMU does not know.

A wrong storage node is reported, never written into the file: which side is wrong is not
known (the file may name libvirt's node where QEMU's is auto-named `#block...`, or QEMU's
graph may be what someone changed), and a name copied from QEMU would make whoever reads
the file next address a node libvirt never made.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from blockjob.model import StorageSource
from blockjob.qemu.bitmaps import Nodes
from blockjob.qemu.monitor import QemuJob
from blockjob.qemu.nodes import effective_node, file_child, node_of
from blockjob.recovery.plan import QEMU_TYPES, is_unresolved_record
from blockjob.recovery.steps import MergeBitmaps, Reenable
from blockjob.statusxml.disks import Disk
from blockjob.statusxml.document import StatusDocument

Touched = MergeBitmaps | Reenable
# A listed bitmap already reported as unusable: (its base's node, its name). Names alone
# are not enough: two disks' checkpoints share names, each on its own base.
Unusable = tuple[str, str]


@dataclass(frozen=True)
class Failure:
    """A failed check: its line, and the disk it is about (None: not one disk's, such as
    a base's bitmaps). A failure holds back the ended jobs of its disk (of every disk,
    for None): a later run must find them and check again."""

    line: str
    disk: str | None = None
# The type of QEMU job a `<mirror job>` of each kind belongs to.
_MIRROR_OWNERS = {str(kind): qemu for kind, qemu in QEMU_TYPES.items()}


def check_bases(
    touched: Sequence[Touched], nodes: Nodes, unresolved: Collection[Unusable], *,
    planned: bool = False,
) -> list[Failure]:
    """Every touched base read-only unless active; listed bitmaps recording and consistent
    (those already reported as unusable are left to that report). `planned`: the steps
    have not run (dry run), so a bitmap still disabled is no failure yet."""
    failed: list[Failure] = []
    for step in touched:
        name = effective_node(step.base)
        node = nodes.get(name)
        if node is None:
            failed.append(Failure(f"base {name} is not in QEMU's node graph"))
            continue
        if not step.base_is_active and not node.read_only:
            failed.append(Failure(f"base {name} is writable; it must be read-only"))
        for listed in step.listed:
            bitmap = node.bitmap(listed)
            if (name, listed) in unresolved or (
                    planned and bitmap is not None and not bitmap.inconsistent):
                continue
            if bitmap is None or bitmap.inconsistent or not bitmap.recording:
                state = ("missing" if bitmap is None else
                         "inconsistent" if bitmap.inconsistent else "disabled")
                failed.append(
                    Failure(f"bitmap '{listed}' in {name} is {state}; it must be recording"))
    return failed


def _chain_failures(disk: Disk, chain: StorageSource, nodes: Nodes,
                    backing: Mapping[str, str], roots: Sequence[str]) -> list[str]:
    images = chain.images()
    names = [effective_node(image) for image in images]
    where = f"disk {disk.target}"
    device = [root for root in roots if root in names]
    if device and device[0] != names[0]:
        return [f"{where}: the device runs on {device[0]}, the file says {names[0]}"]
    # The devices are not tied to disks: an image above the file's top shows by its edge.
    # (QEMU's implicit filter nodes, named `#...`, sit above a top while a job runs.)
    above = sorted(node for node, below in backing.items()
                   if below == names[0] and not node.startswith("#"))
    if above:
        return [f"{where}: {above[0]} is backed by {names[0]} in QEMU, the file says "
                f"{names[0]} is the top"]
    for position, name in enumerate(names):
        if name not in nodes:
            return [f"{where}: node {name} of the file's chain is not in QEMU's graph"]
        below = names[position + 1] if position + 1 < len(names) else None
        if below is None and not images[-1].terminated:
            break  # the file does not say what is below its last image
        if backing.get(name) != below:
            return [f"{where}: {name} is backed by {backing.get(name)} in QEMU, "
                    f"the file says {below}"]
    return []


def _storage_failures(disk: Disk, nodes: Nodes, files: Mapping[str, str]) -> list[Failure]:
    """Each image of the disk's chain whose format node QEMU has must read, as its file
    child, the node the file names (an image without a format node, such as a raw image
    opened without one, has no such edge; one QEMU lacks is the chain checks' to report)."""
    images = disk.chain.images() if disk.chain is not None else []
    failed = []
    for image in images:
        fmt = image.format_node
        if fmt is None or fmt not in nodes or (named := file_child(image)) is None:
            continue
        if (has := files.get(fmt)) != named:
            failed.append(Failure(
                f"disk {disk.target}: {fmt} ({image.path}) reads {has or 'no node'} in "
                f"QEMU, the file says {named}", disk.target))
    return failed


@dataclass(frozen=True)
class Observed:
    """A fresh look at QEMU: jobs, node graph, backing edges, file edges, device roots."""

    jobs: Mapping[str, QemuJob]
    nodes: Nodes
    backing: Mapping[str, str]
    files: Mapping[str, str]
    roots: Sequence[str]


def check_chains(doc: StatusDocument, seen: Observed, finished: set[str]) -> list[Failure]:
    """The chain of every disk without a job matches QEMU (on every run: a chain a
    former run left wrong stays attention). An image the file names no node of cannot be
    compared: a failure for the `finished` disks (a job of theirs ended), else skipped."""
    failed: list[Failure] = []
    busy = {job.disk for job in doc.jobs}
    for disk in doc.disks:
        if disk.chain is None or disk.target in busy:
            continue
        try:
            lines = _chain_failures(disk, disk.chain, seen.nodes, seen.backing, seen.roots)
        except ValueError as exc:
            lines = [f"disk {disk.target}: {exc}"] if disk.target in finished else []
        failed += [Failure(line, disk.target) for line in lines]
    return failed


def check_storage(doc: StatusDocument, seen: Observed) -> list[Failure]:
    """`_storage_failures` of every disk, with a job or without: a job moves backing
    edges, never an image's file child, and no step of recovery changes one (a dry run
    checks it as found too)."""
    return [failure for disk in doc.disks
            for failure in _storage_failures(disk, seen.nodes, seen.files)]


def _absent_nodes(disk: Disk, nodes: Nodes) -> list[Failure]:
    """A disk whose job goes on: its chain moves, but every node the file names in it
    must be in QEMU (the daemon will address them when the job ends)."""
    images = disk.chain.images() if disk.chain is not None else []
    absent = [name for image in images if (name := node_of(image)) and name not in nodes]
    return [Failure(f"disk {disk.target}: node {name} of the file's chain is not in QEMU's "
                    f"graph", disk.target) for name in absent[:1]]


def legacy_owner(mirror_job: str, jobs: Mapping[str, QemuJob], recorded: Collection[str]) -> bool:
    """Whether a job QEMU runs may own a `<mirror job>` no job of the file owns: one
    libvirt never recorded (a legacy block copy or active commit), so of the mirror's
    type and not a job of the file."""
    wanted = _MIRROR_OWNERS.get(mirror_job)
    return any(job.type == wanted and name not in recorded for name, job in jobs.items())


def check_domain(
    doc: StatusDocument, seen: Observed, finished: set[str], failed_jobs: set[str]
) -> list[Failure]:
    """`check_chains`, the nodes of the disks with a job, and `check_storage`; no disk
    keeps a `<mirror>` without a job; every recorded job is known to QEMU, but for
    `failed_jobs` (their steps raised: that is their report)."""
    busy = {job.disk for job in doc.jobs}
    recorded = {job.name for job in doc.jobs}
    failed = [Failure(f"disk {disk.target} has a <mirror> but no job", disk.target)
              for disk in doc.disks if disk.mirror_job is not None and disk.target not in busy
              and not legacy_owner(disk.mirror_job, seen.jobs, recorded)]
    failed += check_chains(doc, seen, finished)
    failed += [failure for disk in doc.disks if disk.target in busy
               for failure in _absent_nodes(disk, seen.nodes)]
    failed += check_storage(doc, seen)
    for job in doc.jobs:
        known = job.name in seen.jobs or job.name in failed_jobs
        if not known and not is_unresolved_record(doc, job):
            failed.append(Failure(f"job '{job.name}' is recorded but QEMU does not know it",
                                  job.disk))
    return failed
