"""Status files with CRLF or CR line ends, read and written again.

libvirt writes LF, and a parser reads CRLF and CR as LF (XML 1.0 section 2.11). What the
document writes itself (`<blockjobs>`, a disk it rewrites) is libvirt's LF bytes; every
other byte stays. The seams must take the replaced lines' own line ends along: with CRLF
an LF was left before the file's CRLF (a blank line after `</blockjobs>` and after a
rewritten disk), with CR `<blockjobs>` also got a line of its own indentation before it
and a rewritten disk a wrong indentation. So the dump of such a file, its line ends read
as a parser reads them, must be exactly the dump of the same file written with LF.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import blockjob
from blockjob import BlockJob, JobState, JobType
from blockjob.validation.check import validate_bytes
from tests.support.corpus import REAL
from tests.support.docs import jobs, status

Edit = Callable[[blockjob.StatusDocument], object]


def _as_lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _shorter_chain(doc: blockjob.StatusDocument) -> None:
    disk = next((d for d in doc.disks if d.chain is not None and d.chain.backing), None)
    if disk is not None and disk.chain is not None:
        doc.set_disk_chain(disk.target, disk.chain.backing)


def _drop_mirror(doc: blockjob.StatusDocument) -> None:
    disk = next((d for d in doc.disks if d.mirror is not None), None)
    if disk is not None:
        doc.set_disk_chain(disk.target, drop_mirror=True)


def _remove_all(doc: blockjob.StatusDocument) -> None:
    for job in doc.jobs:
        doc.remove_job(job.name)


EDITS: dict[str, Edit] = {
    "none": lambda doc: None,
    "add": lambda doc: doc.add_job(BlockJob("zz", JobType.BROKEN, JobState.FAILED)),
    "remove-all": _remove_all,
    "chain": _shorter_chain,
    "drop-mirror": _drop_mirror,
    "end-backup": blockjob.StatusDocument.end_backup,
}
SMALL = {
    "jobs": jobs("<blockjob name='j' type='copy' state='ready'><disk dst='vdb'/></blockjob>"),
    "no-blockjobs": status("<fdset index='0'/>"),  # `<blockjobs>` goes before the domain
    "self-closed": status("<blockjobs active='no'/>"),
}


def _check(data: bytes, edit: Edit, eol: bytes) -> None:
    expected = blockjob.loads(data, "lf.xml")
    edit(expected)
    doc = blockjob.loads(data.replace(b"\n", eol), "other.xml")
    edit(doc)
    assert _as_lf(doc.dumps()) == expected.dumps()


@pytest.mark.parametrize("eol", [b"\r\n", b"\r"], ids=["crlf", "cr"])
@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("name", SMALL)
def test_a_crlf_or_cr_file_is_written_as_its_lf_twin(name: str, edit: str, eol: bytes) -> None:
    _check(SMALL[name], EDITS[edit], eol)


@pytest.mark.parametrize("eol", [b"\r\n", b"\r"], ids=["crlf", "cr"])
@pytest.mark.parametrize("edit", EDITS)
def test_real_status_files_with_crlf_or_cr_are_written_as_their_lf_twins(
    edit: str, eol: bytes
) -> None:
    files = sorted(REAL.glob("*.xml")) if REAL.is_dir() else []
    if not files:
        pytest.skip(f"libvirt 9.0 status files not found under {REAL}")
    for path in files:
        _check(Path(path).read_bytes(), EDITS[edit], eol)


def test_problems_in_a_file_with_cr_line_ends_name_their_lines() -> None:
    """lxml counts LF only: every element of a file with lone-CR line ends was reported
    on line 1."""
    _problems_name_their_lines(_BAD_JOBS.replace(b"\n", b"\r"), "cr.xml")


# A job with an unknown state and disk, and one without a name: two problems, a warning.
_BAD_JOBS = jobs("<blockjob name='x' type='pull' state='bogus'>\n  <disk dst='nope'/>"
                 "</blockjob>\n<blockjob type='pull' state='ready'/>")


def _problems_name_their_lines(data: bytes, name: str) -> tuple[blockjob.StatusDocument,
                                                                   list[bytes]]:
    """`_BAD_JOBS`, line ends changed: its problems, warning and schema problems name the
    lines a parser counts (CR, LF or CRLF each end one). The document and those lines."""
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    line_of = next(number for number, text in enumerate(lines, 1) if b"name='x'" in text)
    doc = blockjob.loads(data, name)
    (job,) = doc.jobs
    assert job.problems == (f"line {line_of}: unknown job state 'bogus'",
                            f"line {line_of + 1}: disk 'nope' not found in the domain")
    assert doc.warnings == (f"{name}:{line_of + 2}: block job without a name dropped",)
    report = validate_bytes(data, name, ("xsd",))
    assert sorted(problem.line for problem in report.problems) == [line_of, line_of + 2]
    return doc, lines


def _disk(target: str) -> str:
    return (f"\n      <disk type='file' device='disk'>\n        <source file='/i/{target}'/>"
            f"\n        <target dev='{target}' bus='virtio'/>\n      </disk>")


@pytest.mark.parametrize("targets", [("vda",), ("vda", "vdb")], ids=["one", "two"])
@pytest.mark.parametrize("edit", ["none", "add"])
def test_the_disks_of_a_file_with_cr_line_ends_name_their_lines(
    targets: tuple[str, ...], edit: str
) -> None:
    """A disk read from its own bytes took lxml's line 1, and after an edit every disk
    read from the dump did (its new `<blockjobs>` has LF line ends, so the rest counted
    as one line)."""
    data = status("<blockjobs active='no'/>", "".join(map(_disk, targets)) + "\n    ")
    lf = blockjob.loads(data)
    lines = [lf.disk(target).line for target in targets]  # type: ignore[union-attr]
    assert lines == [disk.line for disk in lf.disks] and 1 not in lines
    for ask in ("disk", "disks"):
        doc = blockjob.loads(data.replace(b"\n", b"\r"))
        EDITS[edit](doc)
        doc.dumps()
        if ask == "disk":
            assert [doc.disk(target).line for target in targets] == lines  # type: ignore[union-attr]
        else:
            assert [disk.line for disk in doc.disks] == lines


def test_the_disks_of_a_domain_before_blockjobs_keep_their_lines_after_an_edit() -> None:
    """The dump's lines were taken for the loaded ones as if the domain followed
    `<blockjobs>`: a job added shifted every disk's line by the lines it took."""
    data = status("<blockjobs active='no'/>", _disk("vda") + "\n    ")
    at = data.index(b"  <blockjobs")
    data = data[:at] + data[data.index(b"\n", at) + 1:].replace(
        b"</domstatus>", b"  <blockjobs active='no'/>\n</domstatus>")
    line = next(number for number, text in enumerate(data.split(b"\n"), 1)
                if b"<disk " in text)
    for ask in ("disk", "disks"):
        doc = blockjob.loads(data)
        EDITS["add"](doc)
        doc.dumps()
        disk = doc.disk("vda") if ask == "disk" else doc.disks[0]
        assert disk is not None and disk.line == line


def test_a_disk_of_a_domain_before_blockjobs_is_rewritten_after_an_edit() -> None:
    """Its line was moved by the lines the new `<blockjobs>` took, as if it followed it:
    with three jobs added, the next disk's (rewritten instead), with one, no disk's
    (ValueError)."""
    data = status("<blockjobs active='no'/>", _disk("vda") + _disk("vdb") + "\n    ")
    at = data.index(b"  <blockjobs")
    data = data[:at] + data[data.index(b"\n", at) + 1:].replace(
        b"</domstatus>", b"  <blockjobs active='no'/>\n</domstatus>")
    chain = blockjob.loads(data.replace(b"/i/vda", b"/i/new")).disk("vda")
    assert chain is not None
    for added in (1, 3):
        done = []
        for jobs_first in (True, False):
            doc = blockjob.loads(data)
            for _ in range(added if jobs_first else 0):
                doc.add_job(BlockJob(f"z{len(doc.jobs)}", JobType.BROKEN, JobState.FAILED))
            doc.dumps()
            doc.set_disk_chain("vda", chain.chain)
            for _ in range(0 if jobs_first else added):
                doc.add_job(BlockJob(f"z{len(doc.jobs)}", JobType.BROKEN, JobState.FAILED))
            done.append(doc.dumps())
        assert done[0] == done[1] and b"/i/new" in done[0]


def test_problems_in_a_file_with_lf_and_cr_line_ends_name_their_lines() -> None:
    """lxml counts LF only: with lone-CR line ends among LF ones, problems were named on
    the lines of the LFs before them (a file with no LF at all was counted right)."""
    at = _BAD_JOBS.index(b"<blockjobs")
    # CR above, LF from <blockjobs> on
    data = _BAD_JOBS[:at].replace(b"\n", b"\r") + _BAD_JOBS[at:]
    doc, lines = _problems_name_their_lines(data, "mixed.xml")
    disk_line = next(number for number, text in enumerate(lines, 1) if b"<disk type" in text)
    assert [blockjob.loads(data).disk("vda").line, doc.disks[0].line] == [disk_line] * 2  # type: ignore[union-attr]
