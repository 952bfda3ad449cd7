"""The `<blockjob>` element, declared once.

One row per attribute and child, in the order libvirt writes them: its XML name,
its kind (how it is read and written), the job types it belongs to and the model
field that holds it. The reader, the writer, node-name resolution and the
`show --json` keys all follow this table (see `reader.py`, `writer.py`,
`summary.py`). The rows every job has (name to chains) carry libvirt's leniency
rules of their own, so the reader spells those out; the type-specific rows are read
generically, by kind. `tests/test_mapping.py` writes and reads a job of every type with
every row set, and checks both schemas accept it.

Adding a child: one model field, one row here, both schemas, golden files.

Attributes and children that no row names (a newer libvirt's) are kept on a valid job
(`BlockJob.kept_attributes`/`kept_children`), each with the known attribute or child it
followed, written back in that place, and reported as a warning naming file and line;
an invalid job is written as libvirt writes what it recovered, without them. Known
children that do not belong to the job's type are dropped as libvirt drops them. A
known child may repeat: its value is read as libvirt's XPath reads it (the attribute of
the first one that has it; the items of every `<disabledBaseBitmaps>`), and it is
written back once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from blockjob.model import (
    BackupData,
    BlockJob,
    CommitData,
    CopyData,
    CreateData,
    JobData,
    JobType,
    PullData,
)


class Kind(Enum):
    # Attributes of `<blockjob>`.
    NAME = "the job's name"
    JOB_TYPE = "a job type"
    STATE = "a job state"
    FLAGS = "a hexadecimal number"
    YES = "a flag written as ='yes'"
    # Children of `<blockjob>`.
    TEXT = "an element's text"
    DISK = "<disk dst mirror>: the domain disk the job is bound to"
    CHAINS = "<chains>: an unbound job's own disk and mirror chains"
    NODE = "<tag node>: a node name of an image in the job's chains"
    FLAG = "an empty element, or one attribute with one value"
    NAMES = "a list of <item name> elements"
    NAMED = "<tag name>"
    IMAGE = "a job storage source"


ATTRIBUTE_KINDS = frozenset({Kind.NAME, Kind.JOB_TYPE, Kind.STATE, Kind.FLAGS, Kind.YES})


@dataclass(frozen=True, eq=False)  # rows compare by identity: looked up per job
class Row:
    """One attribute or child of `<blockjob>`.

    `types` None: every job has it, in a field of `BlockJob`. Otherwise it belongs
    to those job types, in a field of their data class (`DATA_CLASSES`); `required`
    says for which of them a missing one makes the job invalid. `value` is the
    attribute and value a FLAG is written with (none: the empty element), `item` the
    elements of a NAMES list. `json` is the `show --json` key ("": the field's name;
    None: not shown).
    """

    xml: str
    kind: Kind
    field: str
    types: frozenset[JobType] | None = None
    required: frozenset[JobType] = frozenset()
    value: tuple[str, str] | None = None
    item: str | None = None
    json: str | None = ""

    @property
    def attribute(self) -> bool:
        return self.kind in ATTRIBUTE_KINDS

    @property
    def key(self) -> str | None:
        return self.field if self.json == "" else self.json


_COMMITS = frozenset({JobType.COMMIT, JobType.ACTIVE_COMMIT})

ROWS: tuple[Row, ...] = (
    Row("name", Kind.NAME, "name"),
    Row("type", Kind.JOB_TYPE, "type"),
    Row("state", Kind.STATE, "state"),
    Row("newstate", Kind.STATE, "newstate"),
    Row("brokentype", Kind.JOB_TYPE, "brokentype"),
    Row("jobflags", Kind.FLAGS, "jobflags"),
    Row("shallownew", Kind.YES, "shallownew", frozenset({JobType.COPY})),
    Row("errmsg", Kind.TEXT, "errmsg"),
    Row("disk", Kind.DISK, "disk"),
    Row("chains", Kind.CHAINS, "chains", json=None),
    Row("base", Kind.NODE, "base", frozenset({JobType.PULL, *_COMMITS}), required=_COMMITS),
    Row("top", Kind.NODE, "top", _COMMITS, required=_COMMITS),
    Row("topparent", Kind.NODE, "topparent", frozenset({JobType.COMMIT}),
        required=frozenset({JobType.COMMIT})),
    Row("deleteCommittedImages", Kind.FLAG, "delete_committed_images", _COMMITS),
    Row("disabledBaseBitmaps", Kind.NAMES, "disabled_base_bitmaps", _COMMITS, item="bitmap"),
    Row("create", Kind.FLAG, "storage_only", frozenset({JobType.CREATE}),
        value=("mode", "storage"), json="create_mode"),
    Row("src", Kind.IMAGE, "src", frozenset({JobType.CREATE}),
        required=frozenset({JobType.CREATE}), json=None),
    Row("bitmap", Kind.NAMED, "bitmap", frozenset({JobType.BACKUP})),
    Row("store", Kind.IMAGE, "store", frozenset({JobType.BACKUP}),
        required=frozenset({JobType.BACKUP}), json=None),
)

# The model class holding the rows of each job type (a broken job has none).
DATA_CLASSES: dict[JobType, type[JobData]] = {
    JobType.PULL: PullData,
    JobType.COPY: CopyData,
    JobType.COMMIT: CommitData,
    JobType.ACTIVE_COMMIT: CommitData,
    JobType.CREATE: CreateData,
    JobType.BACKUP: BackupData,
}

# Derived once, for the reader and writer's loops.
KNOWN_ATTRIBUTES = frozenset(row.xml for row in ROWS if row.attribute)
KNOWN_CHILDREN = frozenset(row.xml for row in ROWS if not row.attribute)
JOB_ROWS = tuple(row for row in ROWS if row.types is None)
ROWS_OF_TYPE = {
    kind: tuple(row for row in ROWS if row.types is not None and kind in row.types)
    for kind in DATA_CLASSES
}
# Per class of `BlockJob.data` (NoneType: a job without data), its rows.
ROWS_OF_CLASS: dict[type[JobData | None], tuple[Row, ...]] = {
    type(None): (),
    **{
        cls: tuple(row for row in ROWS if row.types is not None
                   and any(DATA_CLASSES[kind] is cls for kind in row.types))
        for cls in DATA_CLASSES.values()
    },
}
# Node-name references, by job type.
NODE_ROWS = {
    kind: tuple(row for row in rows if row.kind is Kind.NODE)
    for kind, rows in ROWS_OF_TYPE.items()
}


def plan(cls: type[JobData | None]) -> tuple[tuple[Row, bool], ...]:
    """The rows a job whose data is a `cls` has, in table order, each with whether its
    field is on the data (True) or on the job."""
    own = ROWS_OF_CLASS[cls]
    return tuple((row, row.types is not None) for row in ROWS if row.types is None or row in own)


def node_references(data: JobData | None) -> tuple[str | None, ...]:
    """The node names a job's data refers to, in table order (None where unset)."""
    return tuple(getattr(data, row.field) for row in ROWS_OF_CLASS[type(data)]
                 if row.kind is Kind.NODE)


def value_of(row: Row, job: BlockJob) -> object:
    """The model's value for `row`, or None when the job's data has no such field."""
    if row.types is None:
        return getattr(job, row.field)
    data = job.data
    return getattr(data, row.field) if row in ROWS_OF_CLASS[type(data)] else None
