"""Concurrent recovery against real QEMUs: the same reports and end states as one at a time,
and a domain whose monitor hangs does not hold up the others."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import blockjob
from bench.fleet import Templates, end_state, fleet, reconciled
from blockjob.cli import main
from blockjob.demo.lab import Lab
from blockjob.recovery import recover
from tests.support.qemu_fixtures import QEMU_MARKS
from tests.test_recovery_plan import document

pytestmark = QEMU_MARKS
DOMAINS = 5
# Only keeps a broken implementation from hanging the suite; nothing here is timed.
LIMIT = 30.0


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates(tmp_path_factory.mktemp("templates") / "images")


def _extras(root: Path, labs: list[Lab]) -> list[str]:
    """Around the domains: a file without jobs (named for its domain), one that does not
    load, a domain whose QEMU is gone, and one status file named three times: as itself,
    through `..`, and through a symlink (which the store refuses to read)."""
    extra = root / "extra"
    extra.mkdir(exist_ok=True)
    (extra / "lab1.xml").write_bytes(document(None).dumps())
    (extra / "broken.xml").write_bytes(b"<domstatus>\n<blockjobs>\n</domstatus>\n")
    (extra / "again.xml").unlink(missing_ok=True)
    (extra / "again.xml").symlink_to(labs[2].status_path)
    labs[1].qemu.kill()
    paths = [str(lab.status_path) for lab in labs]
    again = labs[2].directory / ".." / labs[2].directory.name / labs[2].status_path.name
    return [str(extra / "lab1.xml"), *paths[:3], str(extra / "broken.xml"), *paths[3:],
            str(again), str(extra / "again.xml")]


def _recover_cli(root: Path, templates: Templates, jobs: int,
                 capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str, list[str]]:
    with fleet(root / "domains", DOMAINS, templates) as labs:
        argv = _extras(root, labs)
        code = main(["recover", "--json", "--jobs", str(jobs), *argv])
        as_json = capsys.readouterr().out
        states = [end_state(lab, []) for lab in labs if lab is not labs[1]]
        assert all(reconciled(lab) for lab in labs if lab is not labs[1])
        # Run again (now nothing to do) for the text report of the same set.
        main(["recover", "--jobs", str(jobs), *argv])
        text = capsys.readouterr().out
        for number, lab in enumerate(labs):
            as_json = as_json.replace(lab.monitor_path, f"@MONITOR{number}")
            text = text.replace(lab.monitor_path, f"@MONITOR{number}")
    return code, as_json, text, states


def test_jobs_8_reports_and_leaves_what_jobs_1_does(
    tmp_path: Path, templates: Templates, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _recover_cli(tmp_path, templates, 1, capsys)
    eight = _recover_cli(tmp_path, templates, 8, capsys)
    assert one == eight
    code, as_json, _, states = one
    assert code == 2  # the broken file cannot be used; the dead domain needs attention
    report = json.loads(as_json)
    assert [d["status"] for d in report["domains"]] == [
        "reconciled", "reconciled", "attention", "reconciled", "attention", "reconciled",
        "reconciled", "reconciled", "attention"]
    assert "QEMU monitor unavailable" in report["domains"][2]["error"]
    assert report["domains"][3]["jobs"][0]["done"] == 5
    assert report["domains"][-2]["jobs"] == [], "the second name found the job done"
    assert "symbolic links" in report["domains"][-1]["error"]
    assert len(set(states)) == 1, "every live domain ends the same way"


def _receive(conn: socket.socket) -> dict[str, object]:
    """One JSON message (qemu.qmp ends none with a newline)."""
    data = b""
    while True:
        chunk = conn.recv(4096)
        assert chunk, "the client went away"
        data += chunk
        try:
            message: dict[str, object] = json.loads(data)
        except ValueError:
            continue
        return message


class SilentMonitor:
    """A QMP server that greets, accepts capabilities, then answers nothing until released:
    a QEMU that hangs. It lets go when `release` is set, or after `hold` seconds."""

    def __init__(self, path: Path, hold: float = LIMIT) -> None:
        self.hold = hold
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.release = threading.Event()
        self.asked = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            greeting = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0},
                                            "package": ""}, "capabilities": []}}
            conn.sendall(json.dumps(greeting).encode() + b"\n")
            request = _receive(conn)  # qmp_capabilities
            reply = {"return": {}, **({"id": request["id"]} if "id" in request else {})}
            conn.sendall(json.dumps(reply).encode() + b"\n")
            _receive(conn)  # the first real command: never answered
            self.asked.set()
            self.release.wait(self.hold)

    def close(self) -> None:
        self.release.set()
        self.thread.join(LIMIT)
        self.server.close()


@contextmanager
def silent_monitor(path: Path, hold: float = LIMIT) -> Iterator[SilentMonitor]:
    server = SilentMonitor(path, hold)
    try:
        yield server
    finally:
        server.close()


def test_a_hanging_monitor_does_not_hold_up_the_other_domains(
    tmp_path: Path, templates: Templates
) -> None:
    with fleet(tmp_path / "domains", 4, templates) as labs:
        hung = labs[0]
        sock = tmp_path / "hung.sock"
        hung.status_path.write_bytes(
            hung.status_path.read_bytes().replace(hung.monitor_path.encode(), str(sock).encode()))
        others = labs[1:]
        finished_first: list[bool] = []

        def watch() -> None:
            # Let the hung monitor go once every other domain is reconciled on disk; run
            # one at a time, they would never start, and this gives up after LIMIT.
            deadline = time.monotonic() + LIMIT
            while time.monotonic() < deadline:
                if all(blockjob.load(lab.status_path).jobs == [] for lab in others):
                    finished_first.append(True)
                    break
                time.sleep(0.02)
            server.release.set()

        with silent_monitor(sock) as server:
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            report = recover([lab.status_path for lab in labs], jobs=4, timeout=LIMIT)
            watcher.join(LIMIT)
        assert finished_first == [True], "the others finished while the hung monitor waited"
        assert server.asked.is_set()
        first, *rest = report.domains
        assert first.status == "attention"
        assert first.error is None and first.jobs[0].error is not None
        assert "QEMU monitor unavailable" in first.jobs[0].error
        assert [domain.status for domain in rest] == ["reconciled"] * 3
        assert all(reconciled(lab) for lab in others)
