"""Byte-level mutation of real status files through the loader, the store, `show` and `validate`.

The only outcomes allowed are success or the project's typed error (for the commands: an exit
code of 0, 1 or 2 with no traceback). Whatever loads must dump, and the dump must load and
dump to the same bytes. The normal test run fuzzes a modest number of cases;
`make fuzz` sets BLOCKJOB_FUZZ_EXAMPLES=20000.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blockjob
from blockjob.cli import main
from blockjob.errors import BlockJobError
from blockjob.store.status_store import StatusStore
from tests.support.corpus import FIXTURES, REAL
from tests.test_store_support import status_bytes

EXAMPLES = int(os.environ.get("BLOCKJOB_FUZZ_EXAMPLES", "300"))

# Real files when ../shared is there; a small synthetic one always, so CI never fuzzes nothing.
SEEDS = [status_bytes("seed", "synthetic")] + [
    path.read_bytes() for folder in (FIXTURES, REAL) if folder.is_dir()
    for path in sorted(folder.glob("*.xml"))
]

# Fragments that steer mutations into the parser's and the codec's interesting corners.
TOKENS = [
    b"<", b">", b"&", b"'", b'"', b"</", b"/>", b"=", b"<!--", b"-->", b"<![CDATA[", b"]]>",
    b"<!DOCTYPE x>", b"<!ENTITY", b"&amp;", b"&#0;", b"&#x110000;", b"&lt;", b"\x00", b"\xff",
    b"\xc3", b"\xef\xbb\xbf", b"<?xml version='1.0'?>", b"<?pi x?>", b"xmlns:x='urn:x' ",
    b"x:", b"<blockjob name='x' type='commit' state='running'>", b"</blockjob>",
    b"<blockjobs active='yes'>", b"</blockjobs>", b"<disk type='file' device='disk'>",
    b"</disk>", b"<target dev='vda' bus='virtio'/>", b"<source file='/x.qcow2'/>",
    b"<backingStore/>", b"<backingStore type='file' index='2'>", b"</backingStore>",
    b"<mirror type='file' job='copy'>", b"<name>", b"</name>", b"<domain type='kvm'>",
    b"</domain>", b"node='", b"index='99999999999999999999' ", b"jobflags='0xz' ",
    b"type='", b"state='", b"newstate='", b"<base node='", b"<top node='", b"<chains>",
    b"<disabledBaseBitmaps>", b"<bitmap name='b'/>", b"<nodenames>", b"<nodename type='",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["byte", "delete", "insert", "token", "repeat", "truncate"]))
        if kind == "byte" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 200))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 400))]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


def _fuzz(check: Callable[[bytes], None]) -> int:
    """Run `check` on `examples` mutated files; the number of cases run."""
    cases = 0

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(mutated())
    def case(data: bytes) -> None:
        nonlocal cases
        cases += 1
        check(data)

    case()
    print(f"\n{check.__name__}: {cases} fuzz cases, all succeeded or raised a typed error")
    assert cases > 0
    return cases


def _exercise(doc: blockjob.StatusDocument) -> None:
    for job in doc.jobs:
        doc.job(job.name)
        if job.disk is not None:
            doc.job_for_disk(job.disk)
    _ = (doc.active, doc.disks, doc.warnings, doc.domain_name, doc.monitor_path)


def _loads_and_dumps(data: bytes) -> None:
    try:
        doc = blockjob.loads(data, "fuzz.xml")
    except BlockJobError:
        return
    _exercise(doc)
    _dump_is_stable(doc)


def _dump_is_stable(doc: blockjob.StatusDocument) -> None:
    """What we write from anything we accepted loads again, and dumps to the same bytes."""
    out = doc.dumps()
    assert blockjob.loads(out, "fuzz-again.xml").dumps() == out


@pytest.mark.fuzz
def test_fuzz_loader() -> None:
    _fuzz(_loads_and_dumps)


# Cases fuzzing found, replayed on every run.
@pytest.mark.parametrize("data", [
    b"<domstatus/>",
    b"<domstatus path='/x' type='unix'/>",
    b"<domstatus></domstatus>",
    # A start tag spanning lines: lxml gives the line of its `>`, not of its `<`.
    b"<domstatus>\n<blockjobs active='no'\n x='a\nb'>\n</blockjobs>\n</domstatus>\n",
    b"<domstatus>\n  <blockjobs\n    active='yes'\n  >\n  </blockjobs>\n</domstatus>\n",
    b"<domstatus>\n<disk\ndst='vda'/><blockjobs active='no'/></domstatus>",
    # A namesake in a comment, CDATA section or processing instruction on the same line.
    b"<domstatus><!-- <blockjobs> --><blockjobs\nactive='no'/></domstatus>",
    b"<domstatus><?pi <blockjobs ?><blockjobs active='no'/></domstatus>",
    b"<domstatus><x><![CDATA[<blockjobs>]]></x><blockjobs active='no'/></domstatus>",
    b"<domstatus><!-- <? --><blockjobs active='no'/></domstatus>",
    # A longer name that starts the same, before the real one on its line.
    b"<domstatus><blockjobsx/><blockjobs\tactive='no'/></domstatus>",
])
def test_found_by_fuzzing(data: bytes) -> None:
    _loads_and_dumps(data)


@pytest.mark.fuzz
def test_fuzz_store_load_all(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)

    def load_all(data: bytes) -> None:
        (tmp_path / "seed.xml").write_bytes(data)
        report = store.load_all()  # must not raise: a bad file is a failure entry
        assert len(report.documents) + len(report.failures) == 1
        if report.documents:
            _dump_is_stable(report.documents["seed"])
            store.save(report.documents["seed"])

    _fuzz(load_all)


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    err.flush()
    return code, err.buffer.getvalue().decode("utf-8", "replace")


@pytest.mark.fuzz
@pytest.mark.parametrize("command", ["show", "validate", "roundtrip"])
def test_fuzz_command(tmp_path: Path, command: str) -> None:
    path = tmp_path / "fuzz.xml"

    def run_command(data: bytes) -> None:
        path.write_bytes(data)
        code, err = _run([command, str(path)])
        assert code in (0, 1, 2), err
        assert "Traceback" not in err
        if code:
            assert err.startswith(f"{path}:"), err

    run_command.__name__ = f"blockjob {command}"
    _fuzz(run_command)


def test_multi_line_blockjobs_start_tag_of_a_real_file_dumps_after_a_change() -> None:
    """Found by fuzzing real files: the document loaded, then `dumps()` raised ValueError."""
    data = SEEDS[-1].replace(b"<blockjobs active=", b"<blockjobs\n  active=", 1)
    assert data != SEEDS[-1]
    doc = blockjob.loads(data, "multi-line.xml")
    for job in doc.jobs:
        doc.remove_job(job.name)
    _dump_is_stable(doc)
    assert b"<blockjobs\n" not in doc.dumps()
