"""Every status file libvirt wrote (../shared) loads and round-trips.

Files written before libvirt 6.10 come back with their jobs sorted by name; a
copy whose `<blockjobs>` lxml re-serialized (double quotes, other indentation,
shuffled jobs) comes back in exactly the same canonical bytes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from lxml import etree

import blockjob
from tests.support.corpus import expected_roundtrip, status_file_params, status_files


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
