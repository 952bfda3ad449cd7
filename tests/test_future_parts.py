"""What a newer libvirt adds to a valid `<blockjob>` is kept, in place, and written back."""

from __future__ import annotations

import pytest
from lxml import etree

import blockjob
from blockjob.element import Node
from blockjob.model import BlockJob, CommitData, JobState, JobType
from tests.support.docs import jobs

COMMIT = ("<blockjob name='c' type='active-commit' state='ready' jobflags='0x0'>"
          "<disk dst='vda'/><base node='libvirt-1-format'/><top node='libvirt-3-format'/>"
          "</blockjob>")


def _written() -> bytes:
    """A document as this library writes it (libvirt's layout), to edit by hand."""
    return blockjob.loads(jobs(COMMIT)).dumps()


def _future(data: bytes) -> bytes:
    """`data` with parts a future libvirt might write, at the start, middle and end."""
    start = b"    <blockjob name='c' type='active-commit' state='ready' jobflags='0x0'>\n"
    assert start in data
    return data.replace(
        start,
        b"    <blockjob speed='100' name='c' type='active-commit' state='ready' jobflags='0x0'"
        b" autoFinalize='no'>\n      <firstThing/>\n",
    ).replace(
        b"      <base node='libvirt-1-format'/>\n",
        b"      <base node='libvirt-1-format'/>\n"
        b"      <throttle group='g1' limit='5'>\n"
        b"        <window seconds='3'>slow &amp; steady</window>\n"
        b"      </throttle>\n",
    ).replace(
        b"      <top node='libvirt-3-format'/>\n",
        b"      <top node='libvirt-3-format'/>\n      <lastThing/>\n",
    )


def test_a_future_child_and_attribute_survive_load_and_dump_byte_exact() -> None:
    data = _future(_written())
    doc = blockjob.loads(data, "future.xml")
    (job,) = doc.jobs
    assert not job.invalid and job.problems == ()
    assert job.commit is not None and job.commit.top == "libvirt-3-format"
    assert doc.dumps() == data
    assert blockjob.loads(doc.dumps()).dumps() == data


def test_future_parts_are_kept_with_the_known_part_they_followed() -> None:
    (job,) = blockjob.loads(_future(_written())).jobs
    assert job.kept_attributes == ((None, "speed", "100"), ("jobflags", "autoFinalize", "no"))
    assert [(after, node.tag) for after, node in job.kept_children] == [
        (None, "firstThing"), ("base", "throttle"), ("top", "lastThing"),
    ]
    throttle = job.kept_children[1][1]
    assert throttle == Node("throttle", (("group", "g1"), ("limit", "5")), (
        Node("window", (("seconds", "3"),), (), "slow & steady"),
    ))


def test_each_future_part_is_named_in_a_warning_with_its_line() -> None:
    data = _future(_written())
    lines = data.decode().splitlines()
    job_line = next(i for i, text in enumerate(lines, 1) if "<blockjob " in text)
    throttle_line = next(i for i, text in enumerate(lines, 1) if "<throttle" in text)
    doc = blockjob.loads(data, "future.xml")
    assert f"future.xml:{job_line}: job 'c': unknown attribute 'speed' kept as written" \
        in doc.warnings
    assert f"future.xml:{job_line}: job 'c': unknown attribute 'autoFinalize' kept as written" \
        in doc.warnings
    assert f"future.xml:{throttle_line}: job 'c': unknown element <throttle> kept as written" \
        in doc.warnings
    assert len(doc.warnings) == 5


def test_kept_parts_follow_the_job_through_an_edit() -> None:
    doc = blockjob.loads(_future(_written()))
    (job,) = doc.jobs
    doc.replace_job(BlockJob(
        name=job.name, type=job.type, state=JobState.RUNNING, jobflags=job.jobflags,
        disk=job.disk, data=job.data, kept_attributes=job.kept_attributes,
        kept_children=job.kept_children,
    ))
    again = blockjob.loads(doc.dumps())
    (edited,) = again.jobs
    assert edited.state is JobState.RUNNING
    assert (edited.kept_attributes, edited.kept_children) == (
        job.kept_attributes, job.kept_children)


def test_a_kept_child_after_errmsg_stays_on_its_line() -> None:
    # libvirt writes `<errmsg>` without a newline; what follows it shares its line.
    job = BlockJob(
        name="c", type=JobType.ACTIVE_COMMIT, state=JobState.FAILED, errmsg="boom",
        disk="vda", data=CommitData(base="libvirt-1-format", top="libvirt-3-format"),
        kept_children=(("errmsg", Node("reason", (("code", "7"),))),),
    )
    doc = blockjob.loads(jobs())
    doc.add_job(job)
    data = doc.dumps()
    assert b"      <errmsg>boom</errmsg><reason code='7'/>\n      <disk dst='vda'/>\n" in data
    assert blockjob.loads(data).jobs == [job]
    assert blockjob.loads(data).dumps() == data


def test_an_invalid_job_loses_its_unknown_parts_as_in_libvirt() -> None:
    # An invalid job is written as libvirt writes what it recovered: the unresolved top
    # and the parts no row knows are gone.
    data = _future(_written()).replace(b"<top node='libvirt-3-format'/>",
                                       b"<top node='libvirt-99-format'/>")
    doc = blockjob.loads(data)
    (job,) = doc.jobs
    assert job.invalid and job.kept_attributes == () and job.kept_children == ()
    assert doc.dumps() == _written().replace(b"      <top node='libvirt-3-format'/>\n", b"")


def _namespaced(where: str) -> bytes:
    data = _written()
    declared = "" if where == "root" else " xmlns:x='urn:future'"
    if where == "root":
        data = data.replace(b"<domstatus ", b"<domstatus xmlns:x='urn:future' ", 1)
    return data.replace(
        b" jobflags='0x0'>\n", b" jobflags='0x0' x:speed='9'" + declared.encode() + b">\n"
    ).replace(
        b"      <base node='libvirt-1-format'/>\n",
        b"      <base node='libvirt-1-format'/>\n      <x:limit" + declared.encode()
        + b" x:unit='s' xml:lang='en'>\n        <x:value>3</x:value>\n      </x:limit>\n",
    )


def _limit(data: bytes) -> bytes:
    """The kept element as lxml sees it: same names, namespaces, attributes and text."""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    limit = root.find(".//{urn:future}limit")
    assert limit is not None
    return etree.tostring(limit, with_tail=False)


@pytest.mark.parametrize("where", ["root", "job"])
def test_kept_parts_in_a_namespace_dump_to_xml_that_loads_the_same(where: str) -> None:
    data = _namespaced(where)
    doc = blockjob.loads(data)
    (job,) = doc.jobs
    assert not job.invalid
    dumped = doc.dumps()
    again = blockjob.loads(dumped)
    assert again.jobs == doc.jobs and again.dumps() == dumped
    assert _limit(dumped) == _limit(data)
    if where == "root":
        assert dumped == data


def test_known_children_of_another_job_type_and_repeats_are_dropped_as_libvirt_does() -> None:
    data = jobs("<blockjob name='p' type='pull' state='ready'><disk dst='vda'/>"
                "<base node='libvirt-1-format'/><base node='libvirt-2-format'/>"
                "<top node='libvirt-3-format'/></blockjob>")
    doc = blockjob.loads(data)
    (job,) = doc.jobs
    assert not job.invalid and job.kept_children == () and doc.warnings == ()
    written = doc.dumps()
    assert written.count(b"<base ") == 1 and b"<top " not in written
