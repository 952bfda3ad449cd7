"""`blockjob demo` on a real QEMU: three pictures in 80 columns, nothing left behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from blockjob.demo import run_demo
from blockjob.demo.picture import CELLS, Row, render
from tests.support.qemu_fixtures import needs_qemu


def test_render_marks_every_cell_an_extent_touches() -> None:
    lines = render("T", 32 << 20, [Row("img", "#", ((0, 1), (31 << 20, 1 << 20)), "note")])
    assert lines[3] == f"img             |#{'.' * (CELLS - 2)}#| note"


def _section(text: str, title: str, end: str) -> str:
    return text.split(title, 1)[1].split(end, 1)[0]


@needs_qemu
def test_demo_shows_the_story_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    lines: list[str] = []
    assert run_demo(lines.append) == 0
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines if "|" in line)
    before = _section(text, "1. Before the commit", "The daemon started")
    away = _section(text, "2. Daemon away", "Recovery")
    after = _section(text, "3. After recovery", "Base bitmaps now")
    assert "  chk1          |..**......................." in before
    assert "  chk0          |****" in away and "disabled 2.0 MiB" in away
    assert "  chk1          |..**....******......" in after and "recording 4.0 MiB" in after
    assert "(left the chain)" in after and "As expected" in text
    live = _section(text, "4. Commit followed live", "Base bitmaps now")
    assert "  chk1          |..**....******......" in live and "recording 4.0 MiB" in live
    saved = _section(text, "follows JOB_STATUS_CHANGE:", "4. Commit")
    assert "state=running newstate=completed" in saved  # newstate saved before the finish
    killed = _section(text, "A daemon process starts", "5. Daemon killed")
    assert "with SIGKILL while the commit runs: exit status -9." in killed
    assert "state=new" in killed and "state=running" in killed  # saved by the killed daemon
    running = _section(text, "5. Daemon killed", "A restarted daemon")
    assert "  chk1          |..**......" in running and "disabled 1.0 MiB" in running
    assert "state='ready' newstate='ready' jobflags='0x4'" in text
    assert "<mirror type='file' job='active-commit' ready='yes'>" in text
    pivoted = _section(text, "7. After the pivot", "As expected.")
    # README `Live tracking`: chk0 2 MiB, chk1 5 MiB, chk2 2 MiB, bm-off 0 after the pivot.
    assert "Base bitmaps now: bm-off 0 KiB, chk0 2048 KiB, chk1 5120 KiB, chk2 2048 KiB." \
        in pivoted
    assert "  chk1          |..**....******..........**......| recording 5.0 MiB" in pivoted
    pid = int(lines[0].split()[1])
    assert not Path(f"/proc/{pid}").exists()  # QEMU reaped
    assert list(tmp_path.iterdir()) == []    # images, status file and sockets removed
