"""libvirt's parse rules: what keeps a job, what marks it invalid, what refuses the file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import blockjob
from blockjob import CommitData, JobState, JobType, StatusXMLError
from tests.support.docs import disk, jobs, status

COMMIT = (
    "<blockjob name='c' type='commit' state='running'><disk dst='vda'/>"
    "<base node='libvirt-1-format'/><top node='libvirt-2-format'/>"
    "<topparent node='libvirt-3-format'/>{extra}</blockjob>"
)


def _one(*elements: str) -> blockjob.BlockJob:
    (job,) = blockjob.loads(jobs(*elements)).jobs
    return job


def test_valid_commit_keeps_disabled_base_bitmaps_in_document_order() -> None:
    extra = "<disabledBaseBitmaps><bitmap name='z'/><bitmap name='a'/></disabledBaseBitmaps>"
    job = _one(COMMIT.format(extra=extra))
    assert not job.invalid
    assert job.disabled_base_bitmaps == ("z", "a")


def test_bitmap_without_name_marks_commit_invalid() -> None:
    job = _one(COMMIT.format(extra="<disabledBaseBitmaps><bitmap/></disabledBaseBitmaps>"))
    assert job.invalid
    assert "without a name" in job.problems[0]


def test_job_without_name_is_dropped_with_a_warning() -> None:
    doc = blockjob.loads(jobs("<blockjob type='copy' state='ready'/>"), "f.xml")
    assert doc.jobs == []
    assert doc.warnings == ("f.xml:3: block job without a name dropped",)


@pytest.mark.parametrize(("between", "line"), [("\n  ", 4), ("", 3)], ids=["below", "beside"])
def test_the_jobs_of_a_second_blockjobs_are_read_and_written_into_the_first(
        between: str, line: int) -> None:
    """libvirt reads `./blockjobs/blockjob` and writes one <blockjobs>: a job of a second
    one is a job like any other (its disabled bitmaps are re-enabled like any other's)."""
    job_j = "<blockjob name='j' type='copy' state='ready'/>"
    job_x = "<blockjob name='x' type='copy' state='ready'/>"
    data = status(f"<blockjobs active='no'>{job_j}</blockjobs>{between}"
                  f"<blockjobs active='yes'>{job_x}</blockjobs>")
    doc = blockjob.loads(data, "f.xml")
    assert [job.name for job in doc.jobs] == ["j", "x"]
    assert doc.warnings == (f"f.xml:{line}: another <blockjobs>: its jobs are read, and "
                            "written into the first",)
    merged = blockjob.loads(status(f"<blockjobs active='no'>{job_j}{job_x}</blockjobs>"))
    assert doc.dumps() == merged.dumps()
    assert doc.dumps().count(b"<blockjobs") == 1


def test_a_job_name_taken_in_an_earlier_blockjobs_refuses_the_file() -> None:
    job = "<blockjob name='j' type='copy' state='ready'/>"
    data = status(f"<blockjobs active='no'>{job}</blockjobs>\n"
                  f"  <blockjobs active='no'>{job}</blockjobs>")
    with pytest.raises(StatusXMLError, match="f.xml:4: duplicate block job name 'j' "
                                             r"\(first at line 3\)"):
        blockjob.loads(data, "f.xml")


def test_what_a_second_blockjobs_holds_besides_jobs_is_said_like_the_firsts() -> None:
    data = status("<blockjobs active='no'/>\n"
                  "  <blockjobs active='no' x='1'><other/></blockjobs>")
    warnings = blockjob.loads(data, "f.xml").warnings
    assert warnings[:2] == ("f.xml:4: unknown attribute 'x' of <blockjobs> dropped",
                            "f.xml:4: unknown element <other> in <blockjobs> dropped")


@pytest.mark.parametrize(
    ("element", "problem"),
    [
        ("<blockjob name='j' type='stream' state='ready'/>", "unknown job type 'stream'"),
        ("<blockjob name='j' state='ready'/>", "unknown job type ''"),
        ("<blockjob name='j' type='copy' state='dozing'/>", "unknown job state 'dozing'"),
        ("<blockjob name='j' type='copy' state='ready' newstate='x'/>", "unknown new state 'x'"),
        ("<blockjob name='j' type='copy' state='ready'><disk dst='vdz'/></blockjob>",
         "disk 'vdz' not found in the domain"),
        ("<blockjob name='j' type='copy' state='ready'><disk dst='vdb' mirror='no'/></blockjob>",
         "disk mirror='no': only 'yes' is known"),
        ("<blockjob name='j' type='copy' state='ready' shallownew='no'/>",
         "shallownew='no': only 'yes' is known"),
        ("<blockjob name='j' type='create' state='ready'/>", "<src> is missing"),
        ("<blockjob name='j' type='create' state='ready'><create mode='all'/>"
         "<src type='file' format='raw'><source file='/c' index='3'/></src></blockjob>",
         "<create mode='all'>: only 'storage' is known"),
        ("<blockjob name='j' type='backup' state='ready'><disk dst='vda'/></blockjob>",
         "<store> is missing"),
        ("<blockjob name='j' type='backup' state='ready'><disk dst='vda'/>"
         "<store type='file' format='qcow2'><source file='/s'/></store></blockjob>",
         "<store> needs type, format, <source> and source/@index"),
        ("<blockjob name='j' type='backup' state='ready'><disk dst='vda'/>"
         "<store type='floppy' format='qcow2'><source file='/s' index='1'/></store></blockjob>",
         "<store>: unknown storage type 'floppy'"),
        ("<blockjob name='j' type='backup' state='ready'><disk dst='vda'/>"
         "<store type='file' format='qcow9'><source file='/s' index='1'/></store></blockjob>",
         "<store>: unknown image format 'qcow9'"),
        ("<blockjob name='j' type='backup' state='ready'><disk dst='vda'/>"
         "<store type='file' format='qcow2'><source file='/s' index='x1'/></store></blockjob>",
         "<store>: index 'x1' is not an unsigned decimal number"),
        ("<blockjob name='j' type='pull' state='ready'><disk dst='vda'/>"
         "<base node='nope'/></blockjob>", "<base> node name 'nope' not found"),
        ("<blockjob name='j' type='copy' state='ready'><chains><disk type='file' format='raw'>"
         "<source file='/o'/></disk></chains></blockjob>", "orphan chains: <disk> needs"),
        ("<blockjob name='j' type='copy' state='ready'><chains><disk type='file' format='raw'>"
         "<source file='/o' index='7'/><backingStore type='file'><source file='/p'/>"
         "</backingStore></disk></chains></blockjob>",
         "orphan chains: <backingStore> needs <format type> and <source>"),
        # libvirt reads the images below a chain's top by the same rules.
        ("<blockjob name='j' type='copy' state='ready'><chains><disk type='file' format='raw'>"
         "<source file='/o' index='7'/><backingStore type='none'><format type='raw'/>"
         "<source file='/p'/></backingStore></disk></chains></blockjob>",
         "orphan chains: <backingStore>: unknown storage type 'none'"),
        ("<blockjob name='j' type='copy' state='ready'><chains><disk type='file' format='raw'>"
         "<source file='/o' index='7'/><backingStore type='file'><format type='qcow9'/>"
         "<source file='/p'/></backingStore></disk></chains></blockjob>",
         "orphan chains: <backingStore>: unknown image format 'qcow9'"),
        # What libvirt's network-source parser refuses.
        *((f"<blockjob name='j' type='create' state='ready'><src type='network' format='raw'>"
           f"<source {source} index='3'>{host}</source></src></blockjob>", problem)
          for source, host, problem in (
              ("protocol='iscsi2' name='t'", "", "<src>: unknown network protocol 'iscsi2'"),
              ("name='t'", "", "<src>: unknown network protocol ''"),
              ("protocol='rbd'", "", "<src>: a rbd source needs a name"),
              ("protocol='nbd'", "<host transport='unix'/>", "<src>: a unix host needs a socket"),
              ("protocol='nbd'", "<host name='h' transport='ipx'/>",
               "<src>: unknown host transport 'ipx'"),
              ("protocol='nbd'", "<host name='h' port='65536'/>",
               "<src>: host port '65536' is not a number up to 65535"),
          )),
    ],
)
def test_bad_job_is_kept_invalid_with_its_problem(element: str, problem: str) -> None:
    job = _one(element)
    assert job.invalid
    # The whole job is on line 3 of the document.
    assert any(p.startswith(f"line 3: {problem}") for p in job.problems), job.problems


def test_problems_name_the_line_of_the_element_they_are_about() -> None:
    doc = blockjob.loads(jobs(
        "<blockjob name='c' type='active-commit' state='running'>\n"
        "  <disk dst='vda'/>\n"
        "  <base node='libvirt-1-format'/>\n"
        "  <top node='nope'/>\n"
        "</blockjob>\n"
        "<blockjob name='b' type='backup' state='ready'>\n"
        "  <disk dst='vdb'/>\n"
        "  <store type='floppy' format='qcow2'><source file='/s' index='1'/></store>\n"
        "</blockjob>\n"
        "<blockjob name='d' type='active-commit' state='ready'>\n"
        "  <disk dst='vdz'/><base node='libvirt-1-format'/>\n"
        "  <disabledBaseBitmaps>\n"
        "    <bitmap/>\n"
        "  </disabledBaseBitmaps>\n"
        "</blockjob>"
    ))
    problems = {job.name: job.problems for job in doc.jobs}
    assert problems["c"] == ("line 6: <top> node name 'nope' not found in the job's chains",)
    assert problems["b"] == ("line 10: <store>: unknown storage type 'floppy'",)
    assert problems["d"] == (
        "line 13: disk 'vdz' not found in the domain",
        "line 13: <base> node name 'libvirt-1-format' not found in the job's chains",
        "line 12: <top node> is missing",
        "line 15: <disabledBaseBitmaps><bitmap> without a name",
    )


def test_invalid_job_defaults_follow_libvirt() -> None:
    job = _one("<blockjob name='j' type='stream' state='dozing'><disk dst='vda'/></blockjob>")
    assert (job.type, job.state, job.disk) == (JobType.BROKEN, JobState.FAILED, "vda")


_SRC = "<src type='file' format='raw'><source file='/c' index='3'/></src>"
_WRITTEN_SRC = ("      <src type='file' format='raw'>\n        <source file='/c' index='3'/>\n"
                "      </src>\n")
_ORPHAN = "<{tag} type='file' format='raw'><source file='/o'{index}/></{tag}>"


@pytest.mark.parametrize(("element", "written"), [
    # An unknown newstate is not kept.
    ("<blockjob name='j' type='copy' state='ready' newstate='x'><disk dst='vda'/></blockjob>",
     "<blockjob name='j' type='copy' state='ready'>\n      <disk dst='vda'/>\n    </blockjob>\n"),
    # A missing type is `broken`, a missing state `failed`; the unknown disk is gone.
    ("<blockjob name='j'><disk dst='vdz'/><errmsg>e</errmsg></blockjob>",
     "<blockjob name='j' type='broken' state='failed'>\n      <errmsg>e</errmsg></blockjob>\n"),
    # With a disk, a mirror attribute other than 'yes' still takes the disk's mirror.
    ("<blockjob name='j' type='copy' state='ready'><disk dst='vdb' mirror='no'/></blockjob>",
     "<blockjob name='j' type='copy' state='ready'>\n      <disk dst='vdb' mirror='yes'/>\n"
     "    </blockjob>\n"),
    # libvirt reads a create job's `<src>` before its mode: a bad mode keeps the source...
    (f"<blockjob name='j' type='create' state='running'><create mode='all'/>{_SRC}</blockjob>",
     f"<blockjob name='j' type='create' state='running'>\n{_WRITTEN_SRC}    </blockjob>\n"),
    # ...and a bad source ends the reading before the mode.
    ("<blockjob name='j' type='create' state='running'><create mode='storage'/>"
     "<src type='file' format='raw'><source file='/c'/></src></blockjob>",
     "<blockjob name='j' type='create' state='running'/>\n"),
    # A backup job keeps its bitmap when its store is broken.
    ("<blockjob name='j' type='backup' state='running'><bitmap name='b'/></blockjob>",
     "<blockjob name='j' type='backup' state='running'>\n      <bitmap name='b'/>\n"
     "    </blockjob>\n"),
    # An orphan's chains are read one by one: a broken mirror chain leaves the disk chain.
    ("<blockjob name='j' type='copy' state='ready'><chains>"
     + _ORPHAN.format(tag="disk", index=" index='7'") + _ORPHAN.format(tag="mirror", index="")
     + "</chains></blockjob>",
     "<blockjob name='j' type='copy' state='ready'>\n      <chains>\n"
     "        <disk type='file' format='raw'>\n          <source file='/o' index='7'/>\n"
     "        </disk>\n      </chains>\n    </blockjob>\n"),
])
def test_an_invalid_job_is_written_as_libvirt_writes_what_it_recovered(
    element: str, written: str
) -> None:
    doc = blockjob.loads(jobs(element))
    (job,) = doc.jobs
    assert job.invalid
    assert f"\n    {written}".encode() in doc.dumps()


def test_commit_needs_top_base_and_topparent() -> None:
    job = _one("<blockjob name='c' type='commit' state='running'><disk dst='vda'/>"
               "<base node='libvirt-1-format'/><topparent node='libvirt-1-format'/></blockjob>")
    assert job.invalid
    assert job.problems == ("line 3: <top node> is missing",)


def test_an_unresolved_node_name_is_not_kept_nor_written() -> None:
    # libvirt stores the image a name resolves to, and writes nothing for one it lacks;
    # the job keeps the references that resolve.
    doc = blockjob.loads(jobs(
        "<blockjob name='c' type='commit' state='running'><disk dst='vda'/>"
        "<base node='libvirt-1-format'/><top node='libvirt-1-format'/>"
        "<topparent node='nope'/><deleteCommittedImages/></blockjob>"))
    (job,) = doc.jobs
    assert job.problems == ("line 3: <topparent> node name 'nope' not found in the job's chains",)
    assert job.data == CommitData(base="libvirt-1-format", top="libvirt-1-format",
                                  delete_committed_images=True)
    assert b"<top node='libvirt-1-format'/>\n      <deleteCommittedImages/>\n" in doc.dumps()


def test_active_commit_has_no_topparent() -> None:
    job = _one("<blockjob name='c' type='active-commit' state='ready'><disk dst='vda'/>"
               "<base node='libvirt-1-storage'/><top node='libvirt-3-storage'/></blockjob>")
    assert not job.invalid and job.commit is not None and job.commit.topparent is None


def test_mirror_chain_resolves_only_for_mirror_jobs() -> None:
    with_mirror = _one("<blockjob name='p' type='pull' state='ready'>"
                       "<disk dst='vdb' mirror='yes'/><base node='libvirt-9-format'/></blockjob>")
    without = _one("<blockjob name='p' type='pull' state='ready'>"
                   "<disk dst='vdb'/><base node='libvirt-9-format'/></blockjob>")
    assert not with_mirror.invalid and with_mirror.mirror
    assert without.invalid


def test_only_storage_and_format_node_names_resolve() -> None:
    slice_disk = disk("vda", (3, 2, 1)).replace(
        "<nodename type='storage' name='libvirt-1-storage'/>",
        "<nodename type='slice-storage' name='libvirt-1-slice'/>",
    )
    doc = blockjob.loads(status(
        "<blockjobs active='no'><blockjob name='c' type='commit' state='running'>"
        "<disk dst='vda'/><base node='libvirt-1-slice'/><top node='libvirt-2-storage'/>"
        "<topparent node='libvirt-3-format'/></blockjob></blockjobs>",
        slice_disk,
    ))
    assert doc.jobs[0].problems == (
        "line 3: <base> node name 'libvirt-1-slice' not found in the job's chains",
    )


def test_node_names_anywhere_down_a_deep_chain_resolve() -> None:
    deep = disk("vda", tuple(range(40, 0, -1)))
    doc = blockjob.loads(status(
        "<blockjobs active='no'><blockjob name='c' type='commit' state='running'>"
        "<disk dst='vda'/><base node='libvirt-1-format'/><top node='libvirt-1-storage'/>"
        "<topparent node='libvirt-40-format'/></blockjob></blockjobs>",
        deep,
    ))
    assert not doc.jobs[0].invalid


_ORPHAN_PULL = (
    "<blockjob name='p' type='pull' state='running'><base node='{base}'/><chains>"
    "<disk type='file' format='qcow2'><source file='/top' index='5'><privateData><nodenames>"
    "<nodename type='format' name='top-format'/></nodenames></privateData></source>"
    "<backingStore type='file' index='6'><format type='raw'/><source file='/base'>"
    "<privateData><nodenames><nodename type='storage' name='base-storage'/></nodenames>"
    "</privateData></source><backingStore/></backingStore></disk>"
    "<mirror type='file' format='raw'><source file='/copy' index='7'><privateData><nodenames>"
    "<nodename type='format' name='copy-format'/></nodenames></privateData></source></mirror>"
    "</chains></blockjob>"
)


@pytest.mark.parametrize(
    ("base", "invalid"),
    [("top-format", False), ("base-storage", False), ("copy-format", False),
     ("libvirt-1-format", True)],  # vda's: an orphan job has no disk chain
)
def test_orphan_job_resolves_its_own_chains(base: str, invalid: bool) -> None:
    job = _one(_ORPHAN_PULL.format(base=base))
    assert job.invalid is invalid
    assert job.chains is not None


def test_mirror_yes_without_disk_mirror_disappears() -> None:
    job = _one("<blockjob name='j' type='copy' state='ready'>"
               "<disk dst='vda' mirror='yes'/></blockjob>")
    assert not job.invalid and not job.mirror


def test_jobflags_absent_stays_absent_and_garbage_is_dropped_with_warning() -> None:
    doc = blockjob.loads(jobs("<blockjob name='a' type='copy' state='ready'/>",
                              "<blockjob name='b' type='copy' state='ready' jobflags='0xzz'/>",
                              "<blockjob name='c' type='copy' state='ready' jobflags='1F'/>"))
    assert [j.jobflags for j in doc.jobs] == [None, None, 0x1F]
    assert "unparsable jobflags '0xzz' dropped" in doc.warnings[0]


@pytest.mark.parametrize(("written", "read"), [
    (" 0x1f", 0x1F), ("+1", 1), ("-1", 0xFFFF_FFFF), ("-0x2", 0xFFFF_FFFE), ("0XfF", 0xFF),
    ("0xffffffff", 0xFFFF_FFFF), ("0x100000000", None), ("0x0x1", None), ("0x", None),
    ("0x-1", None), ("1 ", None), ("\N{ARABIC-INDIC DIGIT ONE}", None),
])
def test_jobflags_are_read_as_libvirt_reads_an_unsigned_int_in_base_16(
    written: str, read: int | None
) -> None:
    # strtoul's syntax, the whole value, 32 bits: `virXMLPropUInt(node, "jobflags", 16, ...)`.
    # Beyond 32 bits, or with a second prefix, it is unparsable and dropped.
    job = _one(f"<blockjob name='j' type='copy' state='ready' jobflags='{written}'/>")
    assert job.jobflags == read


def test_unknown_brokentype_is_dropped_with_warning() -> None:
    doc = blockjob.loads(jobs("<blockjob name='b' type='broken' state='ready' brokentype='x'/>"))
    assert doc.jobs[0].brokentype is None and not doc.jobs[0].invalid
    assert "unknown brokentype 'x' ignored" in doc.warnings[0]


def test_chains_of_a_job_with_a_disk_are_ignored_with_warning() -> None:
    doc = blockjob.loads(jobs("<blockjob name='j' type='copy' state='ready'><disk dst='vda'/>"
                              "<chains/></blockjob>"))
    assert doc.jobs[0].chains is None
    assert "<chains> of a job bound to a disk ignored" in doc.warnings[0]


def test_duplicate_name_refuses_the_file_with_its_line() -> None:
    data = jobs("<blockjob name='x' type='copy' state='ready'/>\n",
                "<blockjob name='x' type='copy' state='ready'/>")
    with pytest.raises(StatusXMLError) as caught:
        blockjob.loads(data, "dup.xml")
    assert (caught.value.file, caught.value.line) == ("dup.xml", 4)
    assert str(caught.value) == "dup.xml:4: duplicate block job name 'x' (first at line 3)"


def test_two_jobs_on_one_disk_refuse_the_file() -> None:
    data = jobs("<blockjob name='x' type='copy' state='ready'><disk dst='vda'/></blockjob>",
                "<blockjob name='y' type='copy' state='ready'><disk dst='vda'/></blockjob>")
    with pytest.raises(StatusXMLError, match="disk 'vda' already has block job 'x' assigned"):
        blockjob.loads(data)


def test_repeated_disk_target_keeps_second_job_invalid() -> None:
    data = status(
        "<blockjobs active='no'><blockjob name='x' type='copy' state='ready'><disk dst='vda'/>"
        "</blockjob><blockjob name='y' type='copy' state='ready'><disk dst='vda'/></blockjob>"
        "</blockjobs>",
        disk("vda", (1,)) + disk("vda", (2,)),
    )
    first, second = blockjob.loads(data).jobs
    assert not first.invalid and second.invalid and second.disk is None
    assert "repeated in the domain and already has job" in second.problems[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<domstatus><blockjobs>", "not well-formed XML"),
        (b"<domain/>", "root element is <domain>, expected <domstatus>"),
        (b"", "not well-formed XML"),
        (b"<!DOCTYPE domstatus><domstatus/>", "document type declarations"),
    ],
)
def test_unloadable_documents_raise_typed_errors(data: bytes, message: str) -> None:
    with pytest.raises(StatusXMLError) as caught:
        blockjob.loads(data, "bad.xml")
    assert caught.value.file == "bad.xml" and caught.value.line is not None
    assert message in caught.value.message


@pytest.mark.parametrize("data", [
    b"<domstatus>\n<domain>\0<name>x</name></domain></domstatus>\n",  # a NUL
    b"<domstatus>\n<domain><name>\xff\xfe</name></domain></domstatus>\n",  # not UTF-8
])
def test_a_nul_or_bytes_not_utf8_are_refused_on_one_line_with_their_line(data: bytes) -> None:
    # libxml2 ends some messages with a newline: the error spanned two lines of output.
    with pytest.raises(StatusXMLError) as caught:
        blockjob.loads(data, "bad.xml")
    assert caught.value.line == 2
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("bad.xml:2: not well-formed XML: ")


@pytest.mark.parametrize(
    ("errmsg", "read"),
    [
        ("disk <!-- x -->full", "disk full"),
        ("a<b>c</b>d", "acd"),
        ("<?pi x?>no <![CDATA[<space>]]>", "no <space>"),
        ("<!-- only a comment -->", None),
    ],
)
def test_errmsg_is_its_string_value_as_libvirt_reads_it(errmsg: str, read: str | None) -> None:
    doc = blockjob.loads(jobs(f"<blockjob name='j' type='copy' state='failed'>"
                              f"<errmsg>{errmsg}</errmsg><disk dst='vda'/></blockjob>"))
    (job,) = doc.jobs
    assert not job.invalid and job.errmsg == read
    written = b"<errmsg>" + (read or "").replace("<", "&lt;").replace(">", "&gt;").encode()
    assert (written in doc.dumps()) is (read is not None)


def test_an_invalid_job_is_written_as_libvirt_recovers_it() -> None:
    # libvirt keeps what it read of a broken job (its errmsg, its disk) and nothing else:
    # unknown children and text are gone, the unknown type is written `broken`.
    doc = blockjob.loads(jobs(
        "<blockjob name='j' type='stream' state='running' future='1'>\n"
        "<errmsg>disk <!-- x -->full</errmsg><disk dst='vda'/>text\n"
        "<foo>t<b/>u</foo><bar>  <c/>  </bar></blockjob>"
    ), "f.xml")
    (job,) = doc.jobs
    assert job.invalid and doc.warnings == ()
    dumped = doc.dumps()
    assert b"    <blockjob name='j' type='broken' state='running'>\n" \
           b"      <errmsg>disk full</errmsg><disk dst='vda'/>\n    </blockjob>\n" in dumped
    assert blockjob.loads(dumped).dumps() == dumped


def test_a_kept_child_warns_of_the_text_beside_its_elements() -> None:
    doc = blockjob.loads(jobs(
        "<blockjob name='j' type='copy' state='ready'><disk dst='vda'/>"
        "<future>a<b/></future></blockjob>"
    ), "f.xml")
    assert not doc.jobs[0].invalid
    assert doc.warnings == (
        "f.xml:3: job 'j': unknown element <future> kept as written",
        "f.xml:3: job 'j': text beside the child elements of <future> dropped",
    )


def test_every_disabled_base_bitmaps_list_is_read_and_written_back_as_one() -> None:
    # libvirt 6.2-6.4 read `./disabledBaseBitmaps/bitmap`: every list, in document order.
    extra = ("<disabledBaseBitmaps><bitmap name='chk0'/></disabledBaseBitmaps>"
             "<disabledBaseBitmaps><bitmap name='chk1'/><bitmap name='chk2'/>"
             "</disabledBaseBitmaps>")
    doc = blockjob.loads(jobs(COMMIT.format(extra=extra)))
    (job,) = doc.jobs
    assert not job.invalid and job.disabled_base_bitmaps == ("chk0", "chk1", "chk2")
    dumped = doc.dumps()
    assert dumped.count(b"<disabledBaseBitmaps>") == 1
    assert blockjob.loads(dumped).jobs == [job]


def test_a_nameless_bitmap_in_a_later_list_marks_the_commit_invalid() -> None:
    extra = ("<disabledBaseBitmaps><bitmap name='chk0'/></disabledBaseBitmaps>"
             "<disabledBaseBitmaps><bitmap/></disabledBaseBitmaps>")
    assert _one(COMMIT.format(extra=extra)).invalid


_IMAGE = "type='file' format='qcow2'><source file='/{name}' index='{index}'/>"


@pytest.mark.parametrize(
    ("element", "read"),
    [
        # `string(./disk/@dst)`: the first <disk> that has a dst.
        ("<blockjob name='j' type='copy' state='ready'><disk/><disk dst='vda'/></blockjob>",
         lambda job: job.disk == "vda"),
        ("<blockjob name='j' type='copy' state='ready'><disk dst='vdb'/><disk mirror='yes'/>"
         "</blockjob>", lambda job: (job.disk, job.mirror) == ("vdb", True)),
        # An empty value is libvirt's "absent", even with a later one.
        ("<blockjob name='j' type='copy' state='ready'><disk dst=''/><disk dst='vda'/>"
         "</blockjob>", lambda job: job.disk is None),
        ("<blockjob name='j' type='pull' state='ready'><disk dst='vda'/><base/>"
         "<base node='libvirt-1-format'/></blockjob>",
         lambda job: job.data.base == "libvirt-1-format"),
        (COMMIT.replace("<top node='libvirt-2-format'/>", "<top/><top node='libvirt-2-format'/>"),
         lambda job: job.data.top == "libvirt-2-format"),
        ("<blockjob name='j' type='create' state='ready'><create/><create mode='storage'/>"
         f"<src {_IMAGE.format(name='a', index=1)}</src></blockjob>",
         lambda job: job.data.storage_only),
        ("<blockjob name='j' type='backup' state='ready'><disk dst='vda'/><bitmap/>"
         f"<bitmap name='b'/><store {_IMAGE.format(name='s', index=2)}</store></blockjob>",
         lambda job: job.data.bitmap == "b"),
        # `./chains/disk` and `./chains/mirror`: the first under any <chains>.
        ("<blockjob name='j' type='copy' state='ready'><chains/><chains>"
         f"<mirror {_IMAGE.format(name='m', index=3)}</mirror></chains><chains>"
         f"<disk {_IMAGE.format(name='d', index=4)}</disk></chains></blockjob>",
         lambda job: (job.chains.disk.path, job.chains.mirror.path) == ("/d", "/m")),
        # `string(./source/@index)` of a job image.
        ("<blockjob name='j' type='create' state='ready'><src type='file' format='raw'>"
         "<source file='/a'/><source file='/b' index='5'/></src></blockjob>",
         lambda job: (job.data.src.path, job.data.src.index) == ("/a", 5)),
        # `string(./format/@type)` of a `<backingStore>`.
        ("<blockjob name='j' type='copy' state='ready'><chains><disk type='file' format='qcow2'>"
         "<source file='/t' index='6'/><backingStore type='file'><format/><format type='raw'/>"
         "<source file='/u'/></backingStore></disk></chains></blockjob>",
         lambda job: job.chains.disk.backing.format == "raw"),
    ],
    ids=["disk-dst", "disk-mirror", "empty-dst", "base-node", "top-node", "create-mode",
         "backup-bitmap", "chains", "source-index", "backing-format"],
)
def test_values_are_read_as_libvirts_xpath_reads_them(
    element: str, read: Callable[[Any], bool]
) -> None:
    doc = blockjob.loads(jobs(element))
    (job,) = doc.jobs
    assert not job.invalid, job.problems
    assert read(job)
    assert blockjob.loads(doc.dumps()).dumps() == doc.dumps()


def test_node_names_of_the_chains_libvirt_finds_resolve() -> None:
    pull = _ORPHAN_PULL.format(base="copy-format").replace("<chains>", "<chains/><chains>", 1)
    job = _one(pull)
    assert not job.invalid and job.chains is not None and job.chains.mirror is not None


def test_a_problem_names_the_line_of_the_element_whose_value_was_read() -> None:
    doc = blockjob.loads(jobs(
        "<blockjob name='j' type='pull' state='ready'>\n<disk/>\n<disk dst='vdz'/>\n"
        "<base/>\n<base node='nope'/></blockjob>"))
    assert doc.jobs[0].problems == ("line 5: disk 'vdz' not found in the domain",
                                    "line 7: <base> node name 'nope' not found in the job's chains")


def test_unknown_parts_of_blockjobs_are_dropped_with_a_warning_each() -> None:
    doc = blockjob.loads(status(
        "<blockjobs active='no' xmlns:q='urn:q' q:extra='1' mode='x'>\n"
        "<foo a='1'/><blockjob name='a' type='copy' state='ready'/>\n"
        "<q:blockjob name='b' type='copy' state='ready'/><!-- kept quiet --></blockjobs>"
    ), "f.xml")
    assert [job.name for job in doc.jobs] == ["a"]
    assert doc.warnings == (
        "f.xml:3: unknown attribute 'q:extra' of <blockjobs> dropped",
        "f.xml:3: unknown attribute 'mode' of <blockjobs> dropped",
        "f.xml:4: unknown element <foo> in <blockjobs> dropped",
        "f.xml:5: unknown element <q:blockjob> in <blockjobs> dropped",
    )
    assert b"foo" not in doc.dumps() and b"q:" not in doc.dumps()


def test_jobs_after_an_unknown_element_find_their_images() -> None:
    doc = blockjob.loads(jobs(
        "<foo/><blockjob name='c' type='create' state='running'><src type='file' "
        "format='qcow2'><source file='/new' index='3'/></src></blockjob>"))
    (job,) = doc.jobs
    assert isinstance(job.data, blockjob.CreateData) and job.data.src is not None
    assert job.data.src.path == "/new"


def test_a_comment_in_blockjobs_or_in_a_job_changes_nothing() -> None:
    plain = blockjob.loads(jobs(COMMIT.format(extra="")))
    doc = blockjob.loads(jobs("<!-- a -->", COMMIT.format(extra="<!-- b --><!-- c -->")))
    assert doc.warnings == () and doc.jobs == plain.jobs
    assert doc.dumps() == plain.dumps()
