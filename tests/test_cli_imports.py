"""Each command imports what it uses and no more: `show` needs neither the schema engine nor
the QMP client, `validate` no QMP client, `recover` no schema engine, no asyncio and no
thread-pool library; `import blockjob` alone loads nothing heavy.

The imports are read from `python -X importtime`, which lists every module a real
`python -m blockjob ...` process loaded. Nothing here is timed.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

import blockjob
from blockjob.cli import COMMANDS, main
from blockjob.recovery import RecoveryReport

DATA = Path(__file__).parent / "data"
FILE = str(DATA / "every-type-in.xml")
HEAVY = ("xmlschema", "qemu.qmp", "asyncio")


def imported(*args: str, expect: int = 0) -> set[str]:
    """The modules a fresh interpreter imported while running `args`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == expect, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert lines, "no -X importtime output"
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}  # [0] is the header


@pytest.mark.parametrize("argv", [["show", FILE], ["show", "--json", FILE], ["roundtrip", FILE]],
                         ids=" ".join)
def test_reading_commands_import_neither_schema_engine_nor_qmp(argv: list[str]) -> None:
    modules = imported("-m", "blockjob", *argv)
    assert "blockjob.statusxml.document" in modules  # the probe sees the command's imports
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    assert not any(m.startswith(("blockjob.qemu", "blockjob.validation", "blockjob.recovery"))
                   for m in modules)


def test_validate_imports_no_qmp_client() -> None:
    modules = imported("-m", "blockjob", "validate", FILE)
    assert "xmlschema" in modules
    assert "qemu.qmp" not in modules and "asyncio" not in modules
    assert not any(m.startswith(("blockjob.qemu", "blockjob.recovery")) for m in modules)


def test_recover_imports_no_schema_engine_asyncio_or_thread_pool_library(tmp_path: Path) -> None:
    # Its start-up is part of every restart it finishes (docs/performance.md).
    modules = imported("-m", "blockjob", "recover", "--dry-run", str(tmp_path))
    assert "blockjob.qemu.wire" in modules and "blockjob.recovery.run" in modules
    unwanted = {*HEAVY, "concurrent.futures", "logging", "secrets", "random"}
    assert not modules & unwanted, sorted(modules & unwanted)
    assert not any(m.startswith("blockjob.validation") for m in modules)


def test_usage_error_imports_no_command() -> None:
    modules = imported("-m", "blockjob", "nosuch", expect=2)
    assert not any(m.startswith(tuple(f"blockjob.cli.{name}" for name in COMMANDS))
                   for m in modules)


def test_importing_the_package_loads_nothing_until_a_name_is_used() -> None:
    modules = imported("-c", "import blockjob")
    assert {m for m in modules if m.startswith("blockjob")} == {"blockjob"}
    assert "lxml.etree" not in modules


def test_every_public_name_resolves_to_its_defining_module() -> None:
    for name in blockjob.__all__:
        value = getattr(blockjob, name)
        assert getattr(value, "__name__", name) == name
        assert value.__module__.startswith("blockjob."), (name, value.__module__)
    assert set(blockjob.__all__) <= set(dir(blockjob))


def test_star_import_gives_the_public_names() -> None:
    names: dict[str, object] = {}
    exec("from blockjob import *", names)
    assert set(blockjob.__all__) <= set(names)
    assert names["load"] is blockjob.load


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        blockjob.nosuch  # type: ignore[attr-defined]  # noqa: B018


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"    {name} " in out


# An argument only the command's own `configure` adds.
OWN_ARGUMENT = {"roundtrip": " file", "show": "--json", "validate": "--schema",
                "recover": "--dry-run", "demo": ""}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_help_shows_its_own_arguments(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([name, "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: blockjob {name} [-h]")
    assert OWN_ARGUMENT[name] in out.splitlines()[0]
    assert COMMANDS[name] in " ".join(out.split())


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["nosuch"])
    assert caught.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


@pytest.mark.parametrize("own_process", [False, True])
def test_the_collector_stays_off_only_while_a_command_is_imported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, own_process: bool
) -> None:
    """As its process's entry (no argv), main freezes what start-up imported out of the
    collector's reach (docs/performance.md); called with arguments it leaves a caller's
    objects as they were. Either way the collector runs again for the command."""
    seen: list[bool] = []

    def recover(*args: object, **kwargs: object) -> RecoveryReport:
        seen.append(gc.isenabled())
        return RecoveryReport([])

    monkeypatch.setattr("blockjob.cli.recover.recover", recover)
    argv = ["blockjob", "recover", "--dry-run", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    frozen = gc.get_freeze_count()
    try:
        assert (main() if own_process else main(argv[1:])) == 0
        assert seen == [True] and gc.isenabled()
        assert (gc.get_freeze_count() > frozen) is own_process
    finally:
        gc.unfreeze()
