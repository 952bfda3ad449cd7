"""The block-job model: what a status file records about one job.

Enum values are libvirt's exact strings. They are an append-only contract:
a status file written years ago must still name the same things.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Protocol

from blockjob.element import Node


class SerializedNode(Protocol):
    """An element the codec kept in serialized form, turned into a Node on request."""

    def node(self) -> Node: ...


class JobType(StrEnum):
    PULL = "pull"
    COPY = "copy"
    COMMIT = "commit"
    ACTIVE_COMMIT = "active-commit"
    BACKUP = "backup"
    CREATE = "create"
    BROKEN = "broken"


class JobState(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    READY = "ready"
    NEW = "new"
    RUNNING = "running"
    CONCLUDED = "concluded"
    ABORTING = "aborting"
    PENDING = "pending"
    PIVOTING = "pivoting"


# States in which a job bound to a disk makes `<blockjobs active='yes'>`.
ACTIVE_STATES = frozenset(
    {JobState.RUNNING, JobState.READY, JobState.ABORTING, JobState.PIVOTING}
)


@dataclass(frozen=True, eq=False)
class StorageSource:
    """One image of a chain: the wrapper's type/format, its `<source>`, its backing.

    `element` is the `<source>` element, either as a Node or, for a domain disk's
    chain, kept serialized by the codec: a restart reads the chains of many disks but
    looks at few `<source>` elements, and bytes cost less to keep than nodes (turned
    into a Node on first use). Its `index` attribute is held in `index`,
    because where libvirt writes it depends on the image's place in the chain.
    `backing` is the next image down; `terminated` says a `<backingStore/>`
    terminator follows when there is no next image.
    """

    type: str
    format: str
    element: Node | SerializedNode
    index: int | None = None
    format_children: tuple[Node, ...] = ()
    backing: StorageSource | None = None
    terminated: bool = False
    storage_node: str | None = None
    format_node: str | None = None

    @cached_property
    def source(self) -> Node:
        """The `<source>` element, without `index`."""
        node = self.element if isinstance(self.element, Node) else self.element.node()
        if node.attr("index") is None:
            return node
        return node.with_attrs(tuple(kv for kv in node.attrs if kv[0] != "index"))

    def _key(self) -> tuple[object, ...]:
        return (self.type, self.format, self.source, self.index, self.format_children,
                self.backing, self.terminated, self.storage_node, self.format_node)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorageSource) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def images(self) -> list[StorageSource]:
        """This image and every image below it, top first."""
        out: list[StorageSource] = []
        image: StorageSource | None = self
        while image is not None:
            out.append(image)
            image = image.backing
        return out

    def matches(self, node_name: str) -> bool:
        return node_name in (self.format_node, self.storage_node)

    @property
    def path(self) -> str | None:
        """The file, device or network name the image lives at."""
        for key in ("file", "dev", "dir", "name", "volume"):
            value = self.source.attr(key)
            if value is not None:
                return value
        return None


@dataclass(frozen=True)
class JobChains:
    """Chains of a job that is not bound to a disk (libvirt's orphan chains)."""

    disk: StorageSource | None = None
    mirror: StorageSource | None = None


@dataclass(frozen=True)
class PullData:
    base: str | None = None


@dataclass(frozen=True)
class CommitData:
    base: str | None = None
    top: str | None = None
    topparent: str | None = None
    delete_committed_images: bool = False
    # Bitmaps disabled in `base` before the commit started; they must be
    # re-enabled (and merged) when the job ends, whatever happened meanwhile.
    disabled_base_bitmaps: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreateData:
    src: StorageSource | None = None
    storage_only: bool = False


@dataclass(frozen=True)
class CopyData:
    shallownew: bool = False


@dataclass(frozen=True)
class BackupData:
    bitmap: str | None = None
    store: StorageSource | None = None


JobData = PullData | CommitData | CreateData | CopyData | BackupData


@dataclass(frozen=True)
class BlockJob:
    """One tracked block job.

    `jobflags` is None when the attribute was absent (jobs from libvirt < 6.1);
    such a job keeps omitting it. An invalid job holds what libvirt recovers of it
    (`problems` says what was lost), and is written back from these fields as libvirt
    writes it.

    `kept_attributes` and `kept_children` hold what a valid job carried that this
    version does not know (a newer libvirt's additions), each with the name of the
    known attribute or child it followed (None: it came first). They are written
    back unchanged, in that place.
    """

    name: str
    type: JobType
    state: JobState
    newstate: JobState | None = None
    brokentype: JobType | None = None
    jobflags: int | None = None
    errmsg: str | None = None
    disk: str | None = None
    mirror: bool = False
    chains: JobChains | None = None
    data: JobData | None = None
    invalid: bool = False
    problems: tuple[str, ...] = ()
    kept_attributes: tuple[tuple[str | None, str, str], ...] = ()
    kept_children: tuple[tuple[str | None, Node], ...] = ()

    @property
    def commit(self) -> CommitData | None:
        return self.data if isinstance(self.data, CommitData) else None

    @property
    def disabled_base_bitmaps(self) -> tuple[str, ...]:
        commit = self.commit
        return commit.disabled_base_bitmaps if commit is not None else ()
