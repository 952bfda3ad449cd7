"""The document API: editing jobs, node-name conventions, chain edits, libvirt's byte rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from lxml import etree

import blockjob
from blockjob import BlockJob, CommitData, JobState, JobType, PullData
from tests.support.corpus import REAL
from tests.support.docs import disk, jobs, status

DATA = Path(__file__).parent / "data"
_BROKEN_JOB = "<blockjob name='j' type='broken' state='failed'/>"


def _doc() -> blockjob.StatusDocument:
    return blockjob.loads(jobs())


def test_added_jobs_are_written_sorted_by_name_bytes() -> None:
    doc = _doc()
    for name in ("b", "B", "a", "\u00e9"):
        doc.add_job(BlockJob(name=name, type=JobType.BROKEN, state=JobState.FAILED))
    assert [job.name for job in doc.jobs] == ["B", "a", "b", "\u00e9"]
    text = doc.dumps().decode()
    assert text.index("name='B'") < text.index("name='a'") < text.index("name='\u00e9'")


def test_active_follows_jobs_on_disks_in_live_states() -> None:
    doc = blockjob.loads(jobs(), "f")
    # vdb carries a legacy <mirror job='copy'>, which alone makes the section active.
    assert doc.active
    idle = blockjob.loads(doc.dumps().replace(b"job='copy'", b"job='active-commit'"))
    assert not idle.active
    idle.add_job(BlockJob(name="j", type=JobType.COPY, state=JobState.PENDING, disk="vda"))
    assert not idle.active
    idle.replace_job(BlockJob(name="j", type=JobType.COPY, state=JobState.PIVOTING, disk="vda"))
    assert idle.active
    assert b"<blockjobs active='yes'>" in idle.dumps()


def test_a_mirror_without_job_is_a_legacy_copy_that_makes_blockjobs_active() -> None:
    # libvirt reads a `<mirror>` without `job` as a copy, which counts for `active`.
    data = jobs().replace(b" job='copy'", b"", 1)
    assert b"<mirror type='file' file=" in data and b"job='copy'" not in data
    assert blockjob.loads(data).active


def test_empty_blockjobs_is_self_closing() -> None:
    assert b"  <blockjobs active='yes'/>\n" in _doc().dumps()


def test_api_rejects_duplicates_and_unknown_disks() -> None:
    doc = _doc()
    doc.add_job(BlockJob(name="j", type=JobType.COPY, state=JobState.READY, disk="vda"))
    with pytest.raises(ValueError, match="already exists"):
        doc.add_job(BlockJob(name="j", type=JobType.COPY, state=JobState.READY))
    with pytest.raises(ValueError, match="already has block job 'j'"):
        doc.add_job(BlockJob(name="k", type=JobType.COPY, state=JobState.READY, disk="vda"))
    with pytest.raises(ValueError, match="no disk 'vdq'"):
        doc.add_job(BlockJob(name="k", type=JobType.COPY, state=JobState.READY, disk="vdq"))
    with pytest.raises(ValueError, match="no block job named 'zz'"):
        doc.remove_job("zz")
    with pytest.raises(ValueError, match="no block job named 'zz'"):
        doc.replace_job(BlockJob(name="zz", type=JobType.COPY, state=JobState.READY))
    assert doc.remove_job("j").name == "j" and doc.jobs == []


def test_errmsg_is_written_without_newline_and_control_characters_are_dropped() -> None:
    doc = _doc()
    doc.add_job(BlockJob(name="e", type=JobType.COPY, state=JobState.FAILED, disk="vda",
                         errmsg="bad\x07 'x' <y> & \"z\"\ttab"))
    doc.add_job(BlockJob(name="f", type=JobType.COPY, state=JobState.FAILED, errmsg="alone"))
    text = doc.dumps().decode()
    assert ("    <blockjob name='e' type='copy' state='failed'>\n"
            "      <errmsg>bad &apos;x&apos; &lt;y&gt; &amp; &quot;z&quot;\ttab</errmsg>"
            "<disk dst='vda'/>\n    </blockjob>\n") in text
    assert "      <errmsg>alone</errmsg></blockjob>\n" in text


def test_node_name_convention_follows_the_document() -> None:
    storage = blockjob.load(DATA / "every-type-in.xml")
    fmt = blockjob.load(DATA / "orphan-chains-in.xml")
    image = storage.disk("vda").chain.backing  # type: ignore[union-attr]
    assert image is not None
    assert storage.node_name_for(image) == "libvirt-2-storage"
    assert fmt.node_name_for(image) == "libvirt-2-format"
    assert _doc().node_name_for(image) == "libvirt-2-storage"


def test_resolve_node_finds_images_in_libvirt_order() -> None:
    doc = blockjob.load(DATA / "every-type-in.xml")
    job = doc.job("commit-vda-libvirt-2-format")
    assert job is not None
    image = doc.resolve_node(job, "libvirt-1-storage")
    assert image is not None and image.path == "/img/vda-base.qcow2"
    assert doc.resolve_node(job, "libvirt-9-format") is None  # vdb's mirror, not vda's


def test_set_disk_chain_splices_out_committed_images_and_keeps_other_bytes() -> None:
    path = DATA / "every-type-in.xml"
    original = path.read_bytes()
    doc = blockjob.load(path)
    top = doc.disk("vda").chain  # type: ignore[union-attr]
    assert top is not None and top.backing is not None and top.backing.backing is not None
    base = top.backing.backing
    doc.set_disk_chain("vda", dataclasses.replace(top, backing=base))
    assert [image.format_node for image in doc.disk("vda").chain.images()] == [  # type: ignore[union-attr]
        "libvirt-3-format", "libvirt-1-format"]
    out = doc.dumps()
    assert b"vda-mid.qcow2" not in out.split(b"<domain")[1]
    before, after = original.split(b"<domain ")[1], out.split(b"<domain ")[1]
    removed = before.index(b"        <backingStore type='file' index='2'>")
    assert after[:removed] == before[:removed]
    assert after.endswith(before[before.index(b"        <target dev='vda'"):])
    # The commit job's top is gone from the chain: reloading marks it invalid, not lost.
    job = doc.job("commit-vda-libvirt-2-format")
    assert job is not None and job.invalid
    assert blockjob.loads(out).dumps() == out


def test_commit_data_round_trips_through_the_api() -> None:
    doc = _doc()
    job = BlockJob(
        name="commit-vda-libvirt-2-format", type=JobType.COMMIT, state=JobState.NEW, jobflags=0,
        disk="vda", data=CommitData(base="libvirt-1-storage", top="libvirt-2-storage",
                                    topparent="libvirt-3-storage",
                                    disabled_base_bitmaps=("chk'1", "chk<2>")),
    )
    doc.add_job(job)
    again = blockjob.loads(doc.dumps())
    assert again.jobs == [job]


def test_set_disk_chain_after_jobs_changed_the_blockjobs_length() -> None:
    doc = blockjob.load(DATA / "every-type-in.xml")
    top = doc.disk("vda").chain  # type: ignore[union-attr]
    assert top is not None and top.backing is not None
    doc.remove_job("commit-vda-libvirt-2-format")
    doc.remove_job("create-libvirt-11-storage")
    doc.set_disk_chain("vda", dataclasses.replace(top, backing=top.backing.backing))
    assert [i.format_node for i in doc.disk("vda").chain.images()] == [  # type: ignore[union-attr]
        "libvirt-3-format", "libvirt-1-format"]


def test_set_disk_chain_can_drop_the_disk_mirror_alone() -> None:
    doc = blockjob.load(DATA / "every-type-in.xml")
    doc.remove_job("copy-vdb-libvirt-9-format")
    before = doc.dumps()
    doc.set_disk_chain("vdb", drop_mirror=True)
    after = doc.dumps()
    assert b"<mirror" in before and b"<mirror" not in after
    assert doc.disk("vdb").mirror is None  # type: ignore[union-attr]
    # Only the mirror's lines went away; with it the legacy-copy activity is gone.
    kept = [line for line in before.splitlines() if b"vdb-copy" not in line]
    assert len(after.splitlines()) < len(kept)
    assert b"<blockjobs active='yes'>" in after  # other jobs still run


def test_set_disk_chain_of_an_unknown_disk_is_refused() -> None:
    with pytest.raises(ValueError, match="no disk 'vdz'"):
        blockjob.load(DATA / "every-type-in.xml").set_disk_chain("vdz", drop_mirror=True)


def test_a_document_with_blockjobs_spelled_in_a_comment_is_written_right() -> None:
    comment = b"  <!-- <blockjobs/> -->\n"
    plain = blockjob.loads(jobs(_BROKEN_JOB))
    doc = blockjob.loads(jobs(_BROKEN_JOB).replace(b"  <blockjobs", comment + b"  <blockjobs", 1))
    assert doc.dumps() == plain.dumps().replace(b"  <blockjobs", comment + b"  <blockjobs", 1)
    doc.remove_job("j")
    plain.remove_job("j")
    assert doc.dumps() == plain.dumps().replace(b"  <blockjobs", comment + b"  <blockjobs", 1)


def test_tab_lf_and_cr_in_values_survive_saves() -> None:
    # A reader turns TAB, LF and CR in attribute values into spaces, and CR in text into
    # LF: they are written as character references, so the job stays what it was.
    name = "libvirt-1-fo\trm\na\rt"
    doc = blockjob.loads(status(
        "<blockjobs active='no'/>",
        disk("vda", (3, 2, 1)).replace("name='libvirt-1-format'",
                                       "name='libvirt-1-fo&#9;rm&#10;a&#13;t'"),
    ))
    job = BlockJob(name="c\t1", type=JobType.COMMIT, state=JobState.FAILED, errmsg="a\r\n\tb",
                   disk="vda", data=CommitData(base=name, top="libvirt-3-format",
                                               topparent="libvirt-2-format"))
    doc.add_job(job)
    data = doc.dumps()
    assert b"<blockjob name='c&#9;1'" in data
    assert b"<base node='libvirt-1-fo&#9;rm&#10;a&#13;t'/>" in data
    assert b"<errmsg>a&#13;\n\tb</errmsg>" in data
    again = blockjob.loads(data)
    assert again.jobs == [job]
    assert again.dumps() == data


@pytest.mark.parametrize("data", [
    b"<!-- </domstatus> -->\n<domstatus/>\n",
    b"<!-- \n  <blockjobs active='no'/>\n</domstatus> -->\n<domstatus/>\n",
    b"<domstatus><x/></domstatus>\n<!-- </domstatus> -->\n",
    b"<domstatus><x><!-- </domstatus> --></x></domstatus>\n",
])
def test_blockjobs_goes_in_the_root_whatever_comments_spell(data: bytes) -> None:
    doc = blockjob.loads(data)
    doc.add_job(BlockJob(name="j", type=JobType.BROKEN, state=JobState.FAILED))
    dumped = doc.dumps()
    root = etree.fromstring(dumped)
    assert [job.get("name") for job in root.iterfind("blockjobs/blockjob")] == ["j"]
    assert blockjob.loads(dumped).dumps() == dumped


def _nested_on_the_line(tag: bytes) -> bytes:
    """A document whose `<tag>` shares its line with a namesake nested in `<foo>` before it."""
    data = jobs(_BROKEN_JOB)
    if tag == b"domain":
        data = data.replace(b"<blockjobs active='no'>" + _BROKEN_JOB.encode() + b"</blockjobs>",
                            b"<monitor/>")
    return data.replace(b"  <" + tag + b" ", b"  <foo><" + tag + b" active='no'/></foo><"
                        + tag + b" ", 1)


@pytest.mark.parametrize("tag", [b"blockjobs", b"domain"])
def test_a_namesake_nested_on_the_same_line_is_left_alone(tag: bytes) -> None:
    data = _nested_on_the_line(tag)
    doc = blockjob.loads(data)
    doc.add_job(BlockJob(name="added", type=JobType.BROKEN, state=JobState.FAILED))
    dumped = doc.dumps()
    assert b"<foo><" + tag + b" active='no'/></foo>" in dumped
    root = etree.fromstring(dumped)
    jobs_read = [job.get("name") for job in root.iterfind("blockjobs/blockjob")]
    assert jobs_read == (["added", "j"] if tag == b"blockjobs" else ["added"])
    assert root.find("foo/blockjobs/blockjob") is None
    assert blockjob.loads(dumped).dumps() == dumped


def _disk_in_metadata_on_the_line(target: str) -> bytes:
    """A document whose disk vda shares its line with a `<disk>` in `<metadata>` before it."""
    decoy = f"<disk type='file'><source file='/decoy'/><target dev='{target}'/></disk>"
    return status("<blockjobs active='no'/>").replace(
        b"<devices><disk ", f"<metadata>{decoy}</metadata><devices><disk ".encode(), 1)


@pytest.mark.parametrize("target", ["vda", "other"])
def test_set_disk_chain_rewrites_the_disk_not_a_namesake_on_its_line(target: str) -> None:
    doc = blockjob.loads(_disk_in_metadata_on_the_line(target))
    vda = doc.disk("vda")
    assert vda is not None and vda.chain is not None and vda.chain.backing is not None
    assert vda.chain.path == "/img/vda-3.qcow2"
    doc.set_disk_chain("vda", vda.chain.backing)
    dumped = doc.dumps()
    assert f"<metadata><disk type='file'><source file='/decoy'/><target dev='{target}'/>"\
        .encode() in dumped
    again = blockjob.loads(dumped)
    assert again.disk("vda").chain.path == "/img/vda-2.qcow2"  # type: ignore[union-attr]
    assert again.dumps() == dumped


def test_set_disk_chain_of_a_disk_using_a_prefix_declared_above_it() -> None:
    data = status("<blockjobs active='no'/>").replace(
        b"<domain ", b"<domain xmlns:q='urn:q' ", 1).replace(
        b"<target dev='vda'", b"<q:tuning q:level='1'/><target dev='vda'", 1)
    doc = blockjob.loads(data)
    vda = doc.disk("vda")
    assert vda is not None and vda.chain is not None
    doc.set_disk_chain("vda", vda.chain.backing)
    dumped = doc.dumps()
    assert b"<q:tuning q:level='1'/>" in dumped  # the domain declares q already
    assert blockjob.loads(dumped).dumps() == dumped


def test_an_invalid_job_is_written_from_its_fields_as_libvirt_writes_it() -> None:
    # libvirt writes what it recovered of an invalid job (an unknown state as `failed`),
    # and so does the dump, with the caller's edits: a new name, state and disk.
    doc = blockjob.load(DATA / "invalid-jobs-in.xml")
    invalid = doc.job("unknown-state")
    assert invalid is not None and invalid.invalid and invalid.disk == "vdc"
    assert invalid.state is JobState.FAILED
    assert b"<blockjob name='unknown-state' type='pull' state='failed'" in doc.dumps()
    doc.remove_job("unknown-state")
    doc.remove_job("bad-shallownew")  # vdd is free now
    doc.add_job(dataclasses.replace(invalid, name="renamed", state=JobState.READY, disk="vdd"))
    again = blockjob.loads(doc.dumps())
    moved = again.job("renamed")
    assert moved is not None and not moved.invalid
    assert (moved.state, moved.disk) == (JobState.READY, "vdd")
    assert again.dumps() == doc.dumps()


_BACKUP_JOB = "<job type='none' async='backup' flags='0x0'/>"
_BACKUPS = "<backups>\n    <domainbackup mode='push'/>\n  </backups>"


def _backup_document(before_domain: str) -> bytes:
    """A status document with `before_domain` at the top level, on one line before `<domain>`."""
    return status("<blockjobs active='yes'/>").replace(  # vdb's copy mirror: active
        b"  <domain ", f"  {before_domain}\n  <domain ".encode(), 1)


@pytest.mark.parametrize(("top", "kept"), [
    (f"<job type='none'/>{_BACKUP_JOB}", "<job type='none'/>"),
    (f"{_BACKUP_JOB}<job type='none'/>", "<job type='none'/>"),
    (f"<job type='none'/>\n  {_BACKUP_JOB}{_BACKUP_JOB}", "<job type='none'/>"),
    (f"<backups xmlns='urn:x'/>{_BACKUPS}", "<backups xmlns='urn:x'/>"),
    (f"<q:job xmlns:q='urn:q' async='backup'/><job xmlns='urn:x' async='backup'/>{_BACKUP_JOB}",
     "<q:job xmlns:q='urn:q' async='backup'/><job xmlns='urn:x' async='backup'/>"),
], ids=["other-job-first", "other-job-after", "two-backup-jobs", "namespaced-backups",
        "namespaced-jobs"])
def test_end_backup_removes_only_the_backup_parts_of_a_shared_line(top: str, kept: str) -> None:
    # The element meant was told from its namesakes on the line by the root's *first* child
    # of its name: the other `<job>` went and the backup's stayed, or (two backup jobs) a
    # ValueError; a `<backups>` in a namespace was removed instead of libvirt's.
    doc = blockjob.loads(_backup_document(top))
    doc.end_backup()
    assert doc.dumps() == _backup_document(kept).replace(b"  \n", b"")
    assert blockjob.loads(doc.dumps()).dumps() == doc.dumps()


_BACKUP_DISKS = ("<backups><domainbackup mode='push'><disks>{}</disks></domainbackup>"
                 "</backups>")


@pytest.mark.parametrize(("disk", "edited"), [
    ("<disk name='vda' backup='yes' state='running' type='file'/>",
     "<disk name='vda' backup='yes' state='complete' type='file'/>"),
    ("<disk type=\"file\" state = \"running\" name='vda'><target file='/b'/></disk>",
     "<disk type=\"file\" state = 'complete' name='vda'><target file='/b'/></disk>"),
    ("<disk name='vda' backup='yes' type='file'/>",
     "<disk name='vda' backup='yes' state='complete' type='file'/>"),
    ("<disk\n type='file' name=\"v state='x'\" state='running'/><disk name='vda'/>",
     "<disk\n type='file' name=\"v state='x'\" state='running'/>"
     "<disk name='vda' state='complete'/>"),
], ids=["libvirt", "spaced-and-double-quoted", "without-state", "state-in-a-value"])
def test_a_backup_disk_state_changes_only_that_attribute(disk: str, edited: str) -> None:
    doc = blockjob.loads(_backup_document(_BACKUP_DISKS.format(disk)))
    doc.set_backup_disk_state("vda", "complete")
    assert doc.dumps() == _backup_document(_BACKUP_DISKS.format(edited))
    doc.set_backup_disk_state("vdz", "failed")  # no such disk in the backup: nothing to do
    assert doc.dumps() == _backup_document(_BACKUP_DISKS.format(edited))


def test_a_backup_disk_state_edit_of_a_file_libvirt_wrote() -> None:
    path = REAL / "backup-push-running.xml"
    if not path.exists():
        pytest.skip(f"{path} not found")
    data = path.read_bytes()
    doc = blockjob.load(path)
    doc.set_backup_disk_state("vda", "failed")
    running = b"<disk name='vda' backup='yes' state='running' "
    assert doc.dumps() == data.replace(running, running.replace(b"running", b"failed"))


@pytest.mark.parametrize("encoding", ["UTF-16", "ISO-8859-1"])
def test_a_declared_encoding_is_not_honoured_when_parts_are_read_again(encoding: str) -> None:
    # Every file is read as UTF-8 (`parse`); parts read again honoured the declaration: a
    # UTF-16 one made `end_backup` raise XMLSyntaxError, an ISO-8859-1 one read the UTF-8
    # bytes of kept text as two characters each, written back as four bytes.
    declared = f"<?xml version='1.0' encoding='{encoding}'?>\n".encode()
    data = declared + _backup_document(_BACKUP_JOB).replace(
        b"<domain ", b"<domain xmlns:q='urn:q' ", 1).replace(
        b"<target dev='vda'", "<q:tuning q:level='\u00e9'/><target dev='vda'".encode(), 1)
    doc = blockjob.loads(data)
    doc.end_backup()
    assert doc.dumps() == data.replace(f"  {_BACKUP_JOB}\n".encode(), b"")
    vda = doc.disk("vda")
    assert vda is not None and vda.chain is not None
    doc.set_disk_chain("vda", vda.chain.backing)  # parsed whole: q is declared above it
    assert "<q:tuning q:level='\u00e9'/>".encode() in doc.dumps()


def test_a_job_image_read_again_from_a_document_declaring_iso_8859_1() -> None:
    # The image is built on first use from `<blockjobs>`, parsed whole when a prefix of it is
    # declared above: the declaration made `/img/café` read `/img/cafÃ©`.
    job = ("<blockjob name='c' type='create' state='running'><q:x/>"
           "<src type='file' format='qcow2'><source file='/img/caf\u00e9' index='41'>"
           "<privateData><nodenames><nodename type='storage' name='libvirt-41-storage'/>"
           "</nodenames></privateData></source></src></blockjob>")
    data = b"<?xml version='1.0' encoding='ISO-8859-1'?>\n" + jobs(job).replace(
        b"<domstatus ", b"<domstatus xmlns:q='urn:q' ", 1)
    (read,) = blockjob.loads(data).jobs
    assert isinstance(read.data, blockjob.CreateData) and read.data.src is not None
    assert read.data.src.path == "/img/caf\u00e9"


def test_a_document_past_line_65535_is_edited_in_place() -> None:
    # lxml's lines stop at 65535: every edit of an element past it raised ValueError ("no
    # <blockjobs> start tag ending on line 65535"), or could rewrite the wrong element.
    padding = "<!-- <disk> <blockjobs/> -->\n  " + "<x/>\n  " * 70_000
    data = _backup_document(_BACKUP_JOB).replace(
        b"  <blockjobs", padding.encode() + b"<blockjobs", 1)
    doc = blockjob.loads(data)
    doc.add_job(BlockJob(name="j", type=JobType.BROKEN, state=JobState.FAILED))
    added = doc.dumps()
    assert added.startswith(data[: data.index(b"<blockjobs")])
    assert [job.name for job in blockjob.loads(added).jobs] == ["j"]
    doc.end_backup()
    assert doc.dumps() == added.replace(f"  {_BACKUP_JOB}\n".encode(), b"")
    vda = doc.disk("vda")
    assert vda is not None and vda.chain is not None and vda.chain.backing is not None
    doc.set_disk_chain("vda", vda.chain.backing)
    again = blockjob.loads(doc.dumps())
    assert again.disk("vda").chain.path == "/img/vda-2.qcow2"  # type: ignore[union-attr]
    assert again.dumps() == doc.dumps()


def test_an_invalid_job_on_a_disk_counts_for_blockjobs_active_as_libvirt_counts_it() -> None:
    # libvirt counts every job bound to a disk by the state it holds, broken data or not.
    invalid = ("<blockjob name='r' type='commit' state='running'><disk dst='vda'/>"
               "<base node='gone'/><top node='libvirt-2-format'/></blockjob>")
    data = jobs(invalid).replace(b"job='copy'", b"job='active-commit'")  # no legacy copy
    doc = blockjob.loads(data)
    (job,) = doc.jobs
    assert job.invalid and doc.active
    doc.replace_job(dataclasses.replace(job, state=JobState.FAILED))
    assert b"<blockjobs active='no'>" in doc.dumps()


def test_a_second_job_on_a_repeated_disk_is_written_unbound() -> None:
    # The domain repeats vda (libvirt <= 5.7): 'y' is read invalid and unbound, and written
    # so, without the node name of vda's image, as the next load reads it; with 'x' gone,
    # 'z' may take vda, and the next load binds 'z', not 'y'.
    data = status(
        "<blockjobs active='no'><blockjob name='x' type='copy' state='ready'><disk dst='vda'/>"
        "</blockjob><blockjob name='y' type='pull' state='ready'><disk dst='vda'/>"
        "<base node='libvirt-1-format'/></blockjob></blockjobs>",
        disk("vda", (1,)) + disk("vda", (2,)))
    doc = blockjob.loads(data)
    y = doc.job("y")
    assert y is not None and y.invalid and y.disk is None and y.data == PullData()
    assert blockjob.loads(doc.dumps()).dumps() == doc.dumps()
    doc.remove_job("x")
    doc.add_job(BlockJob("z", JobType.COPY, JobState.READY, disk="vda"))
    assert [(job.name, job.disk) for job in blockjob.loads(doc.dumps()).jobs] == [
        ("y", None), ("z", "vda")]


def test_a_disk_past_line_65535_is_not_taken_for_one_ending_on_line_65535() -> None:
    # vda's start tag ends past line 65535, so lxml says 65535; once the document was split
    # around `<blockjobs>`, that line was looked for in the bytes after it, where it is a
    # number like any other: a `<disk>` in `<metadata>` naming vda too ended there.
    decoy = "<metadata><disk type='file'><source file='/decoy'/><target dev='vda'/></disk>"
    lines = status("<blockjobs active='yes'/>").decode().split("\n")
    above = len(lines[: next(i for i, line in enumerate(lines) if "<domain " in line) + 1])
    padding = "<!--" + "\n" * (65_535 - above - 2) + "-->" + decoy + "</metadata>\n"
    data = status("<blockjobs active='yes'/>").replace(
        b"    <name>unit</name>\n", b"    <name>unit</name>\n" + padding.encode(), 1)
    doc = blockjob.loads(data)
    doc.dumps()  # the disks are then read from the bytes after `<blockjobs>`
    vda = doc.disk("vda")
    assert vda is not None and vda.chain is not None
    assert vda.chain.path == "/img/vda-3.qcow2"
    decoyed = blockjob.loads(data.replace(b"dev='vda'/></disk></metadata>",
                                          b"dev='vdb'/></disk></metadata>"))
    decoyed.dumps()
    assert decoyed.disk_has_mirror("vdb")  # the decoy has none


@pytest.mark.parametrize(("domain", "name"), [
    ("<domain><name>vm1</name><uuid>u</uuid></domain>", "vm1"),  # first, as libvirt writes
    ("<domain><uuid>u</uuid><name>vm2</name><name>vm3</name></domain>", "vm2"),
    ("<domain><!-- <name>c</name> --><name>vm4</name></domain>", "vm4"),
    ("<domain><x:name xmlns:x='urn:x'>n</x:name><name>vm5</name></domain>", "vm5"),
    ("<domain><uuid>u</uuid></domain>", None),
    ("<domain/>", None),
])
def test_the_domain_name_is_its_first_name_child_wherever_it_is(
    domain: str, name: str | None
) -> None:
    """The first child is looked at first; any other place is searched as before."""
    doc = blockjob.loads(f"<domstatus><blockjobs/>{domain}</domstatus>".encode())
    assert doc.domain_name == name


def test_the_first_domain_monitor_and_blockjobs_of_the_root_are_read() -> None:
    """Namesakes in a namespace, in comments or nested are not the root's children read;
    of two, the first is (a second `<blockjobs>` adds its jobs, and a warning)."""
    doc = blockjob.loads(
        b"<domstatus xmlns:x='urn:x'><!-- <monitor path='c'/> --><x:monitor path='x'/>"
        b"<x:domain><name>x</name></x:domain><x:blockjobs>" + _BROKEN_JOB.encode() +
        b"</x:blockjobs><vcpus><monitor path='nested'/></vcpus>"
        b"<monitor path='first'/><monitor path='second'/>"
        b"<blockjobs/><domain><name>vm1</name></domain><domain><name>vm2</name></domain>"
        b"<blockjobs>" + _BROKEN_JOB.replace("'j'", "'k'").encode() + b"</blockjobs>"
        b"</domstatus>")
    assert (doc.monitor_path, doc.domain_name) == ("first", "vm1")
    assert [job.name for job in doc.jobs] == ["k"]
    assert [w for w in doc.warnings if "another <blockjobs>" in w] == ["<bytes>:1: another "
                                                                      "<blockjobs>: its jobs "
                                                                      "are read, and written "
                                                                      "into the first"]
