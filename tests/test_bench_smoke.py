"""The benchmark harness runs end to end (tiny repeat counts, tiny directories); no timings."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from bench import corpus, fleet, peers, run
from bench.fleet import HAVE_QEMU
from bench.inputs import FIXTURE
from bench.table import Row, render
from blockjob import loads
from blockjob.demo.lab import Lab
from blockjob.demo.qemu import QemuStartError
from blockjob.qemu.monitor import MonitorUnavailableError

pytestmark = pytest.mark.skipif(
    not FIXTURE.is_file(), reason=f"libvirt status files not found under {FIXTURE.parent.parent}"
)


def test_quick_run_prints_every_case(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run.main(["--quick", "--sizes", "3,6", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for case in ("| load ", "| dump, first of a document", "| dump, one job changed",
                 "| dump, unchanged document", "| save (fsync), one job changed",
                 "| save (fsync), unchanged document",
                 "| restart (load_all + plan), per file", "restart, per-file growth",
                 "validate RelaxNG", "validate XSD 1.1", "peak RSS growth",
                 "| blockjob show FILE, whole process"):
        assert case in out, case
    if HAVE_QEMU:
        assert "| recover 3 real QEMUs, --jobs 16 " in out
        assert "| recover one domain " in out
        assert "skipped libvirtd restart anchor: " in out
    assert "lxml fromstring" in out
    assert "targets missed" in out
    assert list(tmp_path.iterdir()) == [], "scratch directories are removed"


def test_only_runs_the_cases_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--quick", "--only", "start"]) == 0
    out = capsys.readouterr().out
    assert "| blockjob show FILE, whole process" in out
    assert "| load " not in out and "restart" not in out and "recover" not in out
    assert "1 figures, " in out


def test_only_refuses_an_unknown_case(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        run.main(["--only", "start,nosuch"])
    assert caught.value.code == 2
    assert "unknown case 'nosuch'; choose from files, scale, start, recover, anchor" in (
        capsys.readouterr().err)


def test_corpus_files_are_real_files_renamed(tmp_path: Path) -> None:
    sources = corpus.templates()
    total = corpus.build(tmp_path, 4, sources)
    files = sorted(tmp_path.iterdir())
    assert total == sum(p.stat().st_size for p in files)
    names: set[str] = set()
    for path in files:
        doc = loads(path.read_bytes(), str(path))
        assert doc.domain_name == path.stem
        names.update(job.name for job in doc.jobs)
    assert len(names) == sum(len(loads(p.read_bytes()).jobs) for p in files), "job names unique"


def test_ratio_and_verdict() -> None:
    slower = Row("load", "x", 3e-6, "floor", 2e-6, "<= 1.5")
    assert slower.verdict == "ok"
    assert Row("load", "x", 4e-6, "floor", 2e-6, "<= 1.5").verdict == "MISS"
    assert Row("load", "x", 1e-6, "peer", 2e-6, ">= 3").verdict == "MISS"
    assert Row("load", "x", 1e-6, "peer", 4e-6, ">= 3").verdict == "ok"
    table = render([slower, Row("v", "x", None, "floor", 1e-6, note="n/a")])
    assert "1.50x" in table
    assert "n/a" in table


def test_missing_peer_is_reported_as_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module set to None in sys.modules makes its import fail, as when it is not installed.
    monkeypatch.setitem(sys.modules, "bench.pydantic_model", None)
    monkeypatch.setitem(sys.modules, "xsdata.formats.dataclass.parsers", None)
    loaders, skipped, workdir = peers.all_loaders()
    workdir.cleanup()
    assert set(skipped) == {"pydantic-xml", "xsdata"}
    assert "not installed" in skipped["pydantic-xml"]
    assert set(loaders) == {"xmlschema to_dict"}


def _flaky_setup(monkeypatch: pytest.MonkeyPatch, failures: Sequence[Exception]) -> list[str]:
    """`bench.fleet._start_once` raising `failures` in turn, then succeeding; returns the
    names it was called with."""
    calls: list[str] = []

    def start_once(lab: Lab) -> None:
        calls.append(lab.name)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]

    monkeypatch.setattr(fleet, "_start_once", start_once)
    return calls


def _lab() -> Lab:
    return Lab(Path("/nonexistent"), [], name="dom0007")


def test_fleet_setup_starts_a_stalled_domain_again(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stall = MonitorUnavailableError("/tmp/qmp.sock", "timed out after 30 s")
    calls = _flaky_setup(monkeypatch, [stall, TimeoutError("did not conclude")])
    fleet._start(_lab())
    assert calls == ["dom0007"] * 3
    err = capsys.readouterr().err
    assert "dom0007: set-up attempt 1 failed (/tmp/qmp.sock: QEMU monitor unavailable" in err
    assert "set-up attempt 2 failed (did not conclude)" in err


def test_fleet_setup_gives_up_after_its_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    stalls = [QemuStartError(f"stall {n}") for n in range(fleet.SETUP_ATTEMPTS)]
    calls = _flaky_setup(monkeypatch, stalls)
    with pytest.raises(QemuStartError, match=f"stall {fleet.SETUP_ATTEMPTS - 1}"):
        fleet._start(_lab())
    assert len(calls) == fleet.SETUP_ATTEMPTS


def test_fleet_setup_does_not_retry_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flaky_setup(monkeypatch, [KeyError("libvirt-3-format")])
    with pytest.raises(KeyError):
        fleet._start(_lab())
    assert len(calls) == 1
