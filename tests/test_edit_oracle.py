"""The document's edits (jobs, `end_backup`, `set_disk_chain`) on documents made to fool a
byte-span edit, judged by `tests/support/edit_oracle.py`: expat's offsets say where each
element is, an lxml tree edited the plain way says what the result must mean.

Comments, CDATA sections and processing instructions spelling the edited tags, namespaced
namesakes, several `<job>` elements, odd quoting and spacing, self-closing forms, CRLF or CR
line ends, no final newline, one-line documents, a BOM, a declared ISO-8859-1 with non-ASCII
bytes; the same documents with a few bytes mutated (whatever still loads); and the shared
corpus, dressed the same ways. After every edit the
dump must load, give back the jobs and disks, and dump to the same bytes again. `make test`
runs short campaigns; `make fuzz` sets BLOCKJOB_FUZZ_EXAMPLES for long ones. (Documents past
line 65535, where libxml2's line numbers stop, are too slow to generate here: see
tests/test_document.py.)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import blockjob
from blockjob import BlockJob, JobState, JobType
from blockjob.errors import BlockJobError
from blockjob.statusxml.disks import Disk
from blockjob.statusxml.sources import disk_mirror_node
from tests.support import edit_oracle as oracle
from tests.support.corpus import FIXTURES, REAL
from tests.support.docs import disk
from tests.test_fuzz import TOKENS

_DECL = "<?xml version='1.0' encoding='ISO-8859-1'?>\n"
_BOM = "\ufeff"
_WARNING = "<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE. caf\u00e9\n-->\n"

# Top-level pieces that look like what an edit looks for, and are not it.
DECOYS = (
    "<!-- <blockjobs active='yes'><blockjob name='c' type='copy' state='ready'/></blockjobs> -->",
    "<!-- <backups> <job type='none' async='backup'/> </backups> <disk> -->",
    "<?pi <blockjobs active='no'/> <job async='backup'/> <backups> ?>",
    "<metadata><![CDATA[<blockjobs/><backups/><job async='backup'/><disk type='file'>]]>"
    "</metadata>",
    "<blockjobs xmlns='urn:x' active='yes'><blockjob name='ns' type='broken' state='failed'/>"
    "</blockjobs>",
    "<x:blockjobs xmlns:x='urn:x' active='no'/>",
    "<backups xmlns='urn:x'><domainbackup/></backups>",
    "<q:backups xmlns:q='urn:q'/>",
    "<job xmlns='urn:x' async='backup'/>",
    "<q:job xmlns:q='urn:q' async='backup'/>",
    "<job type='none'/>",
    "<job type='modify' async='migration out'/>",
    "<note v='&lt;blockjobs active=&apos;no&apos;/&gt;' w='job async=\"backup\">'/>",
    "<foo><blockjobs active='no'/><backups/><job async='backup'/><disk/></foo>",
    "<blockjobsx/><backupsx/><jobx async='backup'/>",
)
BACKUP_JOBS = (
    "<job type='none' async='backup' flags='0x0' asyncStarted='1795627393027'/>",
    '<job async="backup" type="none"/>',
    "<job\n    type='none'\n    async = 'backup'\n  />",
    "<job\ttype='none'\tasync='&#98;ackup'></job>",
    "<job type='none' async='backup'><!-- </job> --></job>",
)
BACKUPS = (
    "<backups/>",
    "<backups></backups>",
    "<backups>\n    <domainbackup mode='push'>\n      <disks/>\n    </domainbackup>\n  </backups>",
    "<backups\n>\n<!-- <backups> --></backups\n>",
)
_COMMIT = ("<blockjob name='commit-vda' type='commit' state='running'><disk dst='vda'/>"
           "<base node='libvirt-1-format'/><top node='libvirt-2-format'/>"
           "<topparent node='libvirt-3-format'/></blockjob>")
_INVALID = ("<blockjob name='inv' type='copy' state='sleeping' extra=\"x\">"
            "<disk dst='vdb'/><!-- kept? --><q:x xmlns:q='urn:q'/></blockjob>")
_BROKEN = "<blockjob name='caf\u00e9' type='broken' state='failed'/>"
_NESTED = ("<blockjob name='nested' type='broken' state='failed'><x><blockjobs active='no'/>"
           "<blockjob name='inner' type='copy' state='ready'/></x></blockjob>")
BLOCKJOBS = (
    None,
    "<blockjobs active='no'/>",
    f"<blockjobs active='yes'>\n    {_COMMIT}\n    {_BROKEN}\n  </blockjobs>",
    f"<blockjobs active='yes'>{_INVALID}{_BROKEN}<!-- <blockjobs> --></blockjobs>",
    f"<blockjobs\n  active='yes'\n>{_COMMIT}\n{_INVALID}</blockjobs\n>",
    f"<blockjobs active='no'>{_NESTED}</blockjobs>",
)
# Another `<blockjobs>`, after the first: its jobs are read and written into the first.
EXTRA_BLOCKJOBS = (
    "<blockjobs active='no'/>",
    "<blockjobs active='yes'><blockjob name='second' type='broken' state='failed'/></blockjobs>",
    "<blockjobs>\n    " + _NESTED.replace("'nested'", "'nested2'") + "\n  </blockjobs>",
)
SEPARATORS = ("\n  ", "", " ", "\n\n  ", "\n<!-- <disk> <blockjobs/> -->\n  ", "<?x ?>")
_DISKS = (disk("vda", (3, 2, 1)), disk("vdb", (5, 4), mirror=9))
_DECOY_DISKS = (
    "<disk type='file'><source file='/decoy'/><target dev='vda'/></disk>",
    "<disk xmlns='urn:x' type='file'><source file='/ns'/><target dev='vdb'/></disk>",
    "<!-- <disk type='file'><target dev='vda'/></disk> -->",
)


@dataclasses.dataclass(frozen=True)
class Shape:
    """How a generated document is dressed."""

    prefix: str
    newline: str  # what every "\n" becomes
    final_newline: bool


@st.composite
def hostile_documents(draw: st.DrawFn) -> bytes:
    seps = st.sampled_from(SEPARATORS)
    top: list[str] = ["<monitor path='/run/m.sock' type='unix'/>"]
    top += draw(st.lists(st.sampled_from(DECOYS), max_size=4))
    top += draw(st.lists(st.sampled_from(BACKUP_JOBS), max_size=2))
    blockjobs = draw(st.sampled_from(BLOCKJOBS))
    if blockjobs is not None:
        top.insert(draw(st.integers(1, len(top))), blockjobs)
    if draw(st.booleans()):
        top.append(draw(st.sampled_from(BACKUPS)))
    top += draw(st.lists(st.sampled_from(DECOYS), max_size=2))
    disk_sep = draw(seps)
    devices = disk_sep.join(_DISKS)
    if draw(st.booleans()):
        devices = draw(st.sampled_from(_DECOY_DISKS)) + disk_sep + devices
    if draw(st.booleans()):
        devices += disk_sep + draw(st.sampled_from(_DECOY_DISKS))
    metadata = f"<metadata>{_DECOY_DISKS[0]}</metadata>" if draw(st.booleans()) else ""
    top.append(f"<domain type='qemu' id='1'>\n    <name>caf\u00e9</name>{metadata}"
               f"<devices>{devices}</devices>\n  </domain>")
    if blockjobs is not None and draw(st.integers(0, 3)) == 0:
        after = top.index(blockjobs) + 1
        top.insert(draw(st.integers(after, len(top))), draw(st.sampled_from(EXTRA_BLOCKJOBS)))
    top.insert(draw(st.integers(1, len(top))), draw(st.sampled_from(DECOYS)))
    body = "".join(f"{draw(seps)}{piece}" for piece in top)
    shape = Shape(draw(st.sampled_from(["", _DECL, _BOM, _WARNING, _BOM + _DECL])),
                  draw(st.sampled_from(["\n", "\r\n", "\r"])), draw(st.booleans()))
    return dress(f"<domstatus state='running'>{body}\n</domstatus>", shape)


def dress(text: str, shape: Shape) -> bytes:
    text = shape.prefix + text + ("\n" if shape.final_newline else "")
    return text.replace("\n", shape.newline).encode()


# Edits, each with what it may touch -------------------------------------------------------

Edit = Callable[[blockjob.StatusDocument], oracle.Select]


def _add(doc: blockjob.StatusDocument) -> oracle.Select:
    free = next((d.target for d in doc.disks if doc.job_for_disk(d.target) is None), None)
    name = f"added-{len(doc.jobs)}-\u00e9'\"<&"
    while doc.job(name) is not None:
        name += "+"
    doc.add_job(BlockJob(name=name, type=JobType.COPY, state=JobState.READY, jobflags=0,
                         disk=free, mirror=False, data=blockjob.CopyData()))
    return oracle.every_blockjobs


def _remove(doc: blockjob.StatusDocument) -> oracle.Select:
    if doc.jobs:
        doc.remove_job(doc.jobs[-1].name)
    return oracle.every_blockjobs


def _replace(doc: blockjob.StatusDocument) -> oracle.Select:
    for job in doc.jobs:
        state = JobState.FAILED if job.state is not JobState.FAILED else JobState.CONCLUDED
        doc.replace_job(dataclasses.replace(job, state=state))
    return oracle.every_blockjobs


def _end_backup(doc: blockjob.StatusDocument) -> oracle.Select:
    doc.end_backup()
    return oracle.backup_parts


def _disk_and_blockjobs(target: str) -> oracle.Select:
    """A disk edit rewrites the disk, and `<blockjobs active>` follows its mirror."""
    disk = oracle.disk_of(target)
    return lambda root: [*oracle.every_blockjobs(root), *disk(root)]


def _disk_edit(pick: Callable[[Disk], bool], *, drop_mirror: bool = False,
               mirror_ready: bool = False) -> Edit:
    """Rewrite the first disk `pick` accepts: drop or ready its mirror, or else take the
    top image off its chain."""
    def edit(doc: blockjob.StatusDocument) -> oracle.Select:
        disk = next((d for d in doc.disks if pick(d)), None)
        if disk is None:
            return oracle.every_blockjobs
        mirror_only = drop_mirror or mirror_ready
        chain = disk.chain.backing if disk.chain is not None and not mirror_only else None
        doc.set_disk_chain(disk.target, chain, drop_mirror=drop_mirror,
                           mirror_ready=mirror_ready)
        return _disk_and_blockjobs(disk.target)

    return edit


def _new_mirror(doc: blockjob.StatusDocument) -> oracle.Select:
    """Give the first disk with a chain a `<mirror>` into its backing image (a copy begun)."""
    disk = next((d for d in doc.disks if d.chain is not None), None)
    if disk is None or disk.chain is None:
        return oracle.every_blockjobs
    image = disk.chain.backing or disk.chain
    doc.set_disk_chain(disk.target, mirror=disk_mirror_node(image, "copy", ready=False))
    return _disk_and_blockjobs(disk.target)


EDITS: dict[str, Edit] = {
    "add": _add, "remove": _remove, "replace": _replace, "end_backup": _end_backup,
    "chain": _disk_edit(lambda d: d.chain is not None and d.chain.backing is not None),
    "drop_mirror": _disk_edit(lambda d: d.mirror is not None, drop_mirror=True),
    "mirror_ready": _disk_edit(lambda d: d.mirror is not None, mirror_ready=True),
    "new_mirror": _new_mirror,
}


def run_edits(data: bytes, edits: list[str], *, reload_between: list[bool] | None = None
              ) -> None:
    """Load `data`, then check the first dump and each edit against the oracle."""
    doc = blockjob.loads(data, "hostile.xml")
    before = data
    steps: list[tuple[str, Edit | None]] = [("first dump", None)]
    steps += [(name, EDITS[name]) for name in edits]
    for i, (name, edit) in enumerate(steps):
        select = edit(doc) if edit is not None else oracle.every_blockjobs
        after = doc.dumps()
        try:
            oracle.check_edit(before, after, select)
        except AssertionError as exc:
            raise AssertionError(f"step {i} ({name}): {exc}") from exc
        again = blockjob.loads(after, "again.xml")
        assert again.dumps() == after, f"step {i} ({name}): a reload dumps other bytes"
        assert [j.name for j in again.jobs] == [j.name for j in doc.jobs], \
            f"step {i} ({name}): other jobs"
        # An invalid job is written as libvirt writes what it recovered, which may read
        # back valid (an unknown state written `failed`); a valid job stays as it is.
        valid = [j for j in doc.jobs if not j.invalid]
        assert [j for j in again.jobs if j in valid] == valid
        for held in doc.disks:
            assert again.disk(held.target) == _with_line(held, again.disk(held.target))
        if reload_between is not None and reload_between[i % len(reload_between)]:
            doc = again
        before = after


def _with_line(disk: Disk | None, like: Disk | None) -> object:
    """`disk` with the lines of `like`: lines are where a disk is, not what it is."""
    if disk is None or like is None:
        return disk
    return dataclasses.replace(disk, line=like.line, mirror_line=like.mirror_line)


edit_lists = st.lists(st.sampled_from(sorted(EDITS)), min_size=1, max_size=6)
# `make fuzz` sets BLOCKJOB_FUZZ_EXAMPLES; corpus files are larger, so they get a tenth.
HOSTILE_EXAMPLES = int(os.environ.get("BLOCKJOB_FUZZ_EXAMPLES", "150"))
CORPUS_EXAMPLES = max(HOSTILE_EXAMPLES // 10, 40)


def _corpus() -> list[bytes]:
    return [path.read_bytes() for folder in (FIXTURES, REAL) if folder.is_dir()
            for path in sorted(folder.glob("*.xml"))]


CORPUS = _corpus()
_SHAPES = st.builds(Shape, st.sampled_from(["", _DECL, _BOM]), st.sampled_from(["\n", "\r\n"]),
                    st.just(False))


@pytest.mark.fuzz
@settings(max_examples=HOSTILE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile_documents(), edit_lists, st.lists(st.booleans(), min_size=1, max_size=3))
def test_fuzz_edits_of_hostile_documents(
    data: bytes, edits: list[str], reloads: list[bool]
) -> None:
    run_edits(data, edits, reload_between=reloads)


@pytest.mark.fuzz
@settings(max_examples=CORPUS_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(CORPUS or [b""]), edit_lists, _SHAPES)
def test_fuzz_edits_of_the_corpus(data: bytes, edits: list[str], shape: Shape) -> None:
    if not CORPUS:
        pytest.skip("libvirt status files not found under ../shared")
    run_edits(dress(data.decode(), shape), edits)


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    """A hostile document with a few bytes changed, deleted, repeated or inserted."""
    data = bytearray(draw(hostile_documents()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["delete", "token", "repeat", "insert"]))
        if kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "token":
            data[at:at] = draw(st.sampled_from([*TOKENS, *(t.encode() for t in DECOYS)]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
    return bytes(data)


@pytest.mark.fuzz
@settings(max_examples=HOSTILE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_documents(), edit_lists)
def test_fuzz_edits_of_mutated_documents(data: bytes, edits: list[str]) -> None:
    # Whatever loads must take every edit; most mutations make a file that is refused.
    try:
        blockjob.loads(data)
    except BlockJobError:
        return
    assume(oracle.readable(data))
    run_edits(data, edits)


def test_the_oracle_sees_a_byte_changed_outside_and_the_wrong_element_removed() -> None:
    before = b"<r>\n  <!-- c -->\n  <job async='backup'/>\n  <job/>\n</r>\n"
    right = before.replace(b"  <job async='backup'/>\n", b"")
    oracle.check_edit(before, right, oracle.backup_parts)
    with pytest.raises(AssertionError, match="bytes outside the edited elements changed"):
        oracle.check_edit(before, right.replace(b"c -->", b"d -->"), oracle.backup_parts)
    with pytest.raises(AssertionError, match="bytes outside the edited elements changed"):
        oracle.check_edit(before, before.replace(b"  <job/>\n", b""), oracle.backup_parts)


@pytest.mark.parametrize(("data", "edit"), [
    (b"<domstatus>text <blockjobs/> more\n  <backups/>\n</domstatus>", "add"),
    (b"<domstatus>\n  <blockjobs active='no'/>\n!\n  <job async='backup'/>\n  <backups/>\n"
     b"</domstatus>\n", "end_backup"),
    (b"<domstatus>\n  <blockjobs active='no'/>!-- <blockjobs active='yes'><blockjob name='c' "
     b"type='copy' state='ready'/></blockjobs> -->\n  <backups/>\n</domstatus>\n", "add"),
], ids=["blockjobs-amid-text", "backup-parts-after-text", "second-blockjobs-amid-text"])
def test_edits_beside_text_of_the_root(data: bytes, edit: str) -> None:
    # Found by the mutation campaign: the oracle then counted the blanks the edit adds or
    # removes around the element it rewrites, and (the third) it dropped the blanks on both
    # sides of a removed element in the old bytes, where the new ones keep both, joined.
    run_edits(data, [edit])
