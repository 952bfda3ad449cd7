"""An independent judge of a domain's state after `blockjob recover`.

It shares no code with `blockjob.recovery` (nor the monitor's parsing): QEMU is asked
over a bare `blockjob.qemu.wire.Connection` (`query-jobs`, `query-named-block-nodes`,
`x-debug-query-block-graph`, `query-block`), the status file is read with lxml, and the rules of a
right end state are written down here again, from README "Recovery after a daemon
restart" and libvirt's finishing steps:

- no job of the file is left concluded (or pending) in QEMU; a job left in the file is
  one QEMU still runs (re-adopted);
- every bitmap a job listed in `<disabledBaseBitmaps>` is either still listed in the file
  (the job kept, or reduced to an unresolved record) or recording and consistent in the
  job's base (`--acknowledge` lets a reported one go): a list is never lost silently;
- a commit that ended leaves its base read-only unless it became the disk's top;
- a backup's job that ended leaves no image, export or bitmap of its own, and its
  backup's last job takes `<backups>` along;
- every node the file names is in QEMU, each disk without a job has exactly QEMU's
  chain (and its device, if any, runs on the file's top), and no disk without a job
  keeps a `<mirror>`;
- a copy that left the file (valid or not, pivoted or not) leaves none of its mirror's
  images in QEMU that are not its disk's now (libvirt 9.0 detaches them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from blockjob.qemu.wire import Connection

# Jobs QEMU keeps although nothing will run them on: a finished recovery leaves none.
_LEFT_OVER = frozenset({"concluded", "pending"})


@dataclass(frozen=True)
class FileJob:
    name: str
    type: str
    disk: str | None
    base: str | None  # a node name as the file writes it (storage or format)
    top: str | None
    listed: tuple[str, ...]
    store: tuple[str, ...] = ()  # a backup's target or scratch image: its node names
    bitmap: str | None = None  # the bitmap a push backup added to the disk's top
    brokentype: str | None = None  # the type of a job libvirt re-typed `broken`


@dataclass(frozen=True)
class FileDisk:
    target: str
    chain: tuple[tuple[str, ...], ...]  # each image's node names, format first; top first
    terminated: bool  # the chain ends in an empty `<backingStore/>`
    mirror: bool
    mirror_chain: tuple[tuple[str, ...], ...] = ()  # as `chain`, of the `<mirror>`


@dataclass(frozen=True)
class FileFacts:
    jobs: dict[str, FileJob]
    disks: dict[str, FileDisk]
    backup: bool  # `<backups>` or the async job `<job async='backup'>`

    def base_node(self, job: FileJob) -> str | None:
        """The node QEMU knows the job's base by (its format node), from the job's disk."""
        disk = self.disks.get(job.disk or "")
        if disk is None or job.base is None:
            return None
        return next((names[0] for names in disk.chain if job.base in names), None)

    def names(self) -> set[str]:
        return {name for disk in self.disks.values() for names in disk.chain for name in names}


def _names(source: etree._Element) -> tuple[str, ...]:
    found = {n.get("type"): n.get("name") or "" for n in source.iterfind(
        "privateData/nodenames/nodename")}
    return tuple(found[kind] for kind in ("format", "storage") if kind in found)


def _chain(top: etree._Element) -> tuple[tuple[tuple[str, ...], ...], bool]:
    """The node names of each image from `top` down, and whether the chain ends in an
    empty `<backingStore/>`."""
    chain: list[tuple[str, ...]] = []
    level: etree._Element | None = top
    terminated = False
    while level is not None:
        source = level.find("source")
        if source is None:
            terminated = level.tag == "backingStore"
            break
        chain.append(_names(source))
        level = level.find("backingStore")
    return tuple(chain), terminated


def _disk(disk: etree._Element) -> FileDisk:
    chain, terminated = _chain(disk)
    target = disk.find("target")
    mirror = disk.find("mirror")
    return FileDisk(target.get("dev", "") if target is not None else "", chain,
                    terminated, mirror is not None,
                    _chain(mirror)[0] if mirror is not None else ())


def _job(job: etree._Element) -> FileJob:
    def node(tag: str) -> str | None:
        found = job.find(tag)
        return found.get("node") if found is not None else None
    disk = job.find("disk")
    listed = tuple(b.get("name", "") for b in job.iterfind("disabledBaseBitmaps/bitmap"))
    store = job.find("store/source")
    bitmap = job.find("bitmap")
    return FileJob(job.get("name", ""), job.get("type", ""),
                   disk.get("dst") if disk is not None else None, node("base"), node("top"),
                   listed, _names(store) if store is not None else (),
                   bitmap.get("name") if bitmap is not None else None, job.get("brokentype"))


def read_file(path: Path) -> FileFacts:
    root = etree.parse(str(path)).getroot()
    jobs = {job.name: job for job in map(_job, root.iterfind("blockjobs/blockjob"))}
    disks = {disk.target: disk for disk in map(_disk, root.iterfind("domain/devices/disk"))}
    backup = root.find("backups") is not None or root.find("job[@async='backup']") is not None
    return FileFacts(jobs, disks, backup)


@dataclass(frozen=True)
class BitmapFacts:
    recording: bool
    count: int
    inconsistent: bool
    busy: bool


@dataclass(frozen=True)
class NodeFacts:
    read_only: bool
    bitmaps: dict[str, BitmapFacts]


@dataclass(frozen=True)
class QemuFacts:
    jobs: dict[str, tuple[str, str]]  # id -> (type, status)
    nodes: dict[str, NodeFacts]  # named nodes (QEMU's `#...` ones left out)
    backing: dict[str, str]  # named node -> the named node below it, through filters
    devices: dict[str, str]  # device id (a disk's target) -> the named node it runs on
    exports: dict[str, str]  # block export id -> the node it serves

    def fingerprint(self, *, counts: bool = True) -> object:
        """What must not change when nothing is done (`counts`: a running job may dirty)."""
        nodes = {name: (node.read_only, sorted(
            (b, f.recording, f.inconsistent, f.count if counts else 0)
            for b, f in node.bitmaps.items())) for name, node in self.nodes.items()}
        return (sorted(self.jobs.items()), sorted(nodes.items()), sorted(self.backing.items()),
                sorted(self.devices.items()), sorted(self.exports.items()))


def _bitmaps(node: Mapping[str, Any]) -> dict[str, BitmapFacts]:
    return {b["name"]: BitmapFacts(bool(b["recording"]), int(b["count"]),
                                   bool(b.get("inconsistent", False)), bool(b["busy"]))
            for b in node.get("dirty-bitmaps", []) if "name" in b}  # a job's own has none


class _Graph:
    """`x-debug-query-block-graph`, read through the filter nodes (named `#...`) a job
    puts above an image."""

    def __init__(self, graph: Mapping[str, Any]) -> None:
        self.names = {node["id"]: node["name"] for node in graph["nodes"]}
        self.ids = {name: ident for ident, name in self.names.items() if name}
        self.below = {edge["parent"]: edge["child"] for edge in graph["edges"]
                      if edge["name"] == "backing"}
        # A filter's one child, whichever edge QEMU's version names it by.
        self.filtered = {edge["parent"]: edge["child"] for edge in graph["edges"]
                         if self.names[edge["parent"]].startswith("#")
                         and edge["name"] in ("backing", "file")}

    def named(self, ident: int) -> str:
        while self.names[ident].startswith("#") and ident in self.filtered:
            ident = self.filtered[ident]
        return str(self.names[ident])

    def backing(self) -> dict[str, str]:
        return {self.names[parent]: self.named(child) for parent, child in self.below.items()
                if self.names[parent] and not self.names[parent].startswith("#")}


def _devices(block: Sequence[Mapping[str, Any]], graph: _Graph) -> dict[str, str]:
    """Device id -> node, from `query-block` (`qdev` is /machine/peripheral/<id>/...)."""
    found = {}
    for device in block:
        parts = str(device.get("qdev", "")).split("/")
        inserted = device.get("inserted")
        if "peripheral" in parts and inserted is not None:
            node = inserted["node-name"]
            ident = graph.ids.get(node)
            found[parts[parts.index("peripheral") + 1]] = (
                graph.named(ident) if ident is not None else node)
    return found


def observe(monitor_path: str, timeout: float = 10.0) -> QemuFacts:
    """QEMU's jobs, named nodes and backing edges, devices and exports, asked over a
    connection of our own (no nodes nor edges while a concluded stream job waits)."""
    connection = Connection(monitor_path)
    deadline = time.monotonic() + timeout
    connection.open(deadline)
    try:
        jobs = connection.command("query-jobs", None, deadline)
        # QEMU 7.2 crashes on the graph queries while a concluded stream job waits.
        unsafe = any(j["type"] == "stream" and j["status"] == "concluded" for j in jobs)
        graph_queries = [] if unsafe else [
            ("query-named-block-nodes", {"flat": True}), ("x-debug-query-block-graph", None)]
        block, exports, *answers = connection.commands(
            [("query-block", None), ("query-block-exports", None), *graph_queries], deadline)
    finally:
        connection.close()
    nodes, raw = answers or ([], {"nodes": [], "edges": []})
    graph = _Graph(raw)
    return QemuFacts(
        {j["id"]: (j["type"], j["status"]) for j in jobs},
        {n["node-name"]: NodeFacts(bool(n["ro"]), _bitmaps(n)) for n in nodes
         if not n["node-name"].startswith("#")},
        graph.backing(), _devices(block, graph),
        {export["id"]: export["node-name"] for export in exports})


def lost_bitmaps(before: FileFacts, after: FileFacts, qemu: QemuFacts,
                 said: Mapping[str, Sequence[str]]) -> list[str]:
    """Listed bitmaps that left the file without being recording and consistent in their
    base, and that the report does not name (whatever the exit code: a list is never
    lost silently). `said`: the report's problems and acknowledged ones, by job."""
    lost = []
    for job in before.jobs.values():
        kept = after.jobs.get(job.name)
        base = before.base_node(job)
        node = qemu.nodes.get(base or "")
        for name in job.listed:
            if kept is not None and name in kept.listed:
                continue
            bitmap = node.bitmaps.get(name) if node is not None else None
            if bitmap is not None and bitmap.recording and not bitmap.inconsistent:
                continue
            if any(re.search(rf"\b{re.escape(name)}\b", line)
                   for line in said.get(job.name, ())):
                continue
            lost.append(f"job {job.name}: bitmap {name!r} of base {base} left the file, "
                        f"and is {'missing' if bitmap is None else 'not recording'} in QEMU")
    return lost


def _chain_problems(disk: FileDisk, qemu: QemuFacts) -> list[str]:
    names = [image[0] for image in disk.chain if image]
    if len(names) != len(disk.chain):
        return [f"disk {disk.target}: an image without node names"]
    problems = [f"disk {disk.target}: {above} is above the file's top {names[0]}"
                for above, below in qemu.backing.items() if below == names[0]]
    device = qemu.devices.get(disk.target, names[0])
    if device != names[0]:
        problems.append(f"disk {disk.target}: its device runs on {device}, the file's top "
                        f"is {names[0]}")
    for position, name in enumerate(names):
        below = names[position + 1] if position + 1 < len(names) else None
        if below is None and not disk.terminated:
            break
        if qemu.backing.get(name) != below:
            problems.append(f"disk {disk.target}: {name} backs onto "
                            f"{qemu.backing.get(name)} in QEMU, the file says {below}")
    return problems


def wrong_state(before: FileFacts, after: FileFacts, qemu: QemuFacts,
                said: Mapping[str, Sequence[str]]) -> list[str]:
    """Everything that is not right about the end state: empty when exit 0 is earned
    (`said`: as for `lost_bitmaps`, where only acknowledged problems are left)."""
    problems = lost_bitmaps(before, after, qemu, said)
    for name in after.jobs:
        status = qemu.jobs.get(name, ("", "gone"))[1]
        if status in _LEFT_OVER or status == "gone":
            problems.append(f"job {name} is still in the file; QEMU: {status}")
    for name in before.jobs:
        status = qemu.jobs.get(name, ("", "gone"))[1]
        if name not in after.jobs and status != "gone":
            problems.append(f"job {name} left the file but QEMU still has it ({status})")
        elif status in _LEFT_OVER:
            problems.append(f"job {name} is left {status} in QEMU")
    problems += _ended_bases(before, after, qemu) + _ended_backups(before, after, qemu)
    problems += _ended_copies(before, after, qemu)
    missing = sorted(after.names() - set(qemu.nodes))
    problems += [f"node {name} of the file is not in QEMU" for name in missing]
    busy = {job.disk for job in after.jobs.values()}
    for disk in after.disks.values():
        if disk.target in busy:
            continue
        problems += [f"disk {disk.target} keeps a <mirror> without a job"] if disk.mirror else []
        problems += _chain_problems(disk, qemu)
    return problems


def _ended_backups(before: FileFacts, after: FileFacts, qemu: QemuFacts) -> list[str]:
    """A backup's job that ended leaves no image, export or bitmap of its own in QEMU;
    the backup's last job takes `<backups>` and the async job along (libvirt 9.0)."""
    problems = []
    for job in before.jobs.values():
        if job.type != "backup" or job.name in after.jobs:
            continue
        problems += [f"backup job {job.name}: its image {name} is still in QEMU"
                     for name in job.store if name in qemu.nodes]
        problems += [f"backup job {job.name}: export {export} still serves {node}"
                     for export, node in qemu.exports.items() if node in job.store]
        disk = before.disks.get(job.disk or "")
        top = qemu.nodes.get(disk.chain[0][0]) if disk is not None and disk.chain else None
        if job.bitmap is not None and top is not None and job.bitmap in top.bitmaps:
            problems.append(f"backup job {job.name}: bitmap {job.bitmap} is still in the top")
    if after.backup and not any(job.type == "backup" for job in after.jobs.values()):
        problems.append("the file keeps its backup (<backups>, the async job) with no job")
    return problems


def _ended_copies(before: FileFacts, after: FileFacts, qemu: QemuFacts) -> list[str]:
    """A copy that left the file leaves no image of its `<mirror>` in QEMU but those its
    disk runs on now (a pivot's): libvirt 9.0 blockdev-dels the rest."""
    problems = []
    for job in before.jobs.values():
        disk = before.disks.get(job.disk or "")
        if "copy" not in (job.type, job.brokentype) or job.name in after.jobs or disk is None:
            continue
        now = after.disks.get(disk.target)
        kept = {name for names in now.chain for name in names} if now is not None else set()
        problems += [f"copy job {job.name}: its mirror's node {name} is still in QEMU"
                     for names in disk.mirror_chain for name in names
                     if name in qemu.nodes and name not in kept]
    return problems


def _ended_bases(before: FileFacts, after: FileFacts, qemu: QemuFacts) -> list[str]:
    problems = []
    for job in before.jobs.values():
        base = before.base_node(job)
        node = qemu.nodes.get(base or "")
        if job.name in after.jobs or node is None or "commit" not in job.type:
            continue
        disk = after.disks.get(job.disk or "")
        on_top = disk is not None and bool(disk.chain) and disk.chain[0][:1] == (base,)
        if not node.read_only and not on_top:
            problems.append(f"base {base} of ended job {job.name} is writable")
    return problems
