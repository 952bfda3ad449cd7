"""Every status file libvirt wrote (../shared) loads and round-trips.

Files written before libvirt 6.10 come back with their jobs sorted by name; a
copy whose `<blockjobs>` lxml re-serialized (double quotes, other indentation,
shuffled jobs) comes back in exactly the same canonical bytes.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

import blockjob
from tests.support.corpus import (
    _JOB_START,
    expected_roundtrip,
    status_file_params,
    status_files,
)


@pytest.fixture(params=status_file_params())
def status_file(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_corpus_is_complete() -> None:
    assert len(status_files()) == 42


def test_roundtrip(status_file: Path) -> None:
    doc = blockjob.load(status_file)
    assert doc.dumps() == expected_roundtrip(status_file)


def _reserialize_blockjobs(data: bytes, seed: int) -> bytes:
    """Re-serialize `<blockjobs>` with lxml: double quotes, new indentation, shuffled jobs."""
    start = data.index(b"  <blockjobs")
    close = data.find(b"</blockjobs>", start)
    end = close + len(b"</blockjobs>\n") if close >= 0 else data.index(b"/>\n", start) + 3
    element = etree.fromstring(data[start:end])
    jobs = list(element)
    random.Random(seed).shuffle(jobs)
    for job in jobs:
        element.remove(job)
        element.append(job)
    for node in element.iter():
        node.text = node.text if node.text and node.text.strip() else None
        node.tail = None
    etree.indent(element, space="    ")
    text = etree.tostring(element)
    assert b"'" not in text.split(b">")[0]  # lxml really used double quotes
    return data[:start] + b"   " + text + b"\n" + data[end:]


def test_lxml_reserialized_blockjobs_come_back_canonical(status_file: Path) -> None:
    data = status_file.read_bytes()
    mangled = _reserialize_blockjobs(data, seed=len(data))
    doc = blockjob.loads(mangled, str(status_file))
    assert doc.dumps() == expected_roundtrip(status_file)


def test_node_names_of_valid_jobs_resolve_to_images(status_file: Path) -> None:
    doc = blockjob.load(status_file)
    for job in doc.jobs:
        commit = job.commit
        if job.invalid or commit is None:
            continue
        for name in (commit.base, commit.top, commit.topparent):
            if name is not None:
                image = doc.resolve_node(job, name)
                assert image is not None and image.matches(name), (job.name, name)


def _jobs_moved_out(data: bytes, before: bytes) -> bytes | None:
    """`data` with the second half of its jobs in another `<blockjobs>`, on the line
    before the first one starting with `before`; None without a job to move."""
    start = data.index(b"  <blockjobs")
    end = data.find(b"  </blockjobs>\n", start)
    if end < 0:
        return None
    body_start = data.index(b"\n", start) + 1
    cuts = [m.start() for m in _JOB_START.finditer(data, body_start, end)]
    if not cuts:
        return None
    cut = cuts[len(cuts) // 2]
    moved = b"  <blockjobs active='no'>\n" + data[cut:end] + b"  </blockjobs>\n"
    data = data[:cut] + data[end:]
    at = data.index(before)
    return data[:at] + moved + data[at:]


def _placeless(jobs: list[blockjob.BlockJob]) -> list[blockjob.BlockJob]:
    """`jobs` with their problems not saying on which line: moved jobs have new lines."""
    return [replace(job, problems=tuple(_LINE.sub("", text) for text in job.problems))
            for job in jobs]


_LINE = re.compile(r"^line \d+: ")


@pytest.mark.parametrize("before", [b"  <domain ", b"</domstatus>"],
                         ids=["above-the-domain", "below-it"])
def test_jobs_of_another_blockjobs_read_as_libvirt_reads_them(status_file: Path,
                                                              before: bytes) -> None:
    """libvirt reads `./blockjobs/blockjob`: jobs moved to a second `<blockjobs>` read as
    before, the dump writes them into the first, and the disks keep their lines as loaded."""
    data = status_file.read_bytes()
    moved = _jobs_moved_out(data, before)
    if moved is None:
        pytest.skip("no job to move")
    original = blockjob.loads(data, "f.xml")
    doc = blockjob.loads(moved, "f.xml")
    assert _placeless(doc.jobs) == _placeless(original.jobs)
    assert [job.data for job in doc.jobs] == [job.data for job in original.jobs]
    disks = doc.disks
    assert doc.dumps() == expected_roundtrip(status_file)
    again = blockjob.loads(moved, "f.xml")
    again.dumps()  # split the bytes, cutting the second `<blockjobs>`
    assert again.disks == disks
    target = disks[0].target
    chain = original.disk(target).chain  # type: ignore[union-attr]
    original.set_disk_chain(target, chain)
    again.set_disk_chain(target, chain)
    assert again.dumps() == original.dumps()
