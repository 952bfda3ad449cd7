"""What `pip wheel .` ships: the package and its schemas, no test code."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
# A guard against a hang, not a speed claim: the build takes seconds.
BUILD_TIMEOUT = 300


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel, built offline from a copy of the tree (a build writes into its source)."""
    pytest.importorskip("setuptools", minversion="68", reason="`make venv` installs it")
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", ".*_cache", ".hypothesis", "__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [built] = (work / "dist").glob("blockjob-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_no_test_code(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    code = [name for name in names if not name.startswith("blockjob-")]
    assert "blockjob/__init__.py" in code and "blockjob/cli/__init__.py" in code
    assert all(name.startswith("blockjob/") for name in code), code
    stems = {Path(name).stem for name in code}
    assert not {stem for stem in stems if stem.startswith("test") or stem == "conftest"}
    assert not [name for name in code if "/support/" in name or "/tests/" in name]
    for name in code:
        if name.endswith(".py"):
            text = wheel.read(name).decode()
            assert "hypothesis" not in text, name
            # Only the pytest plugin offered to users (`blockjob.testing`) may use pytest.
            assert "import pytest" not in text or name.startswith("blockjob/testing/"), name


def test_the_wheel_ships_the_schemas_and_the_command(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for schema in ("blockjobs.rng", "blockjobs.xsd", "domstatus.rng", "domstatus.xsd"):
        assert f"blockjob/schemas/{schema}" in names
    [entry_points] = [name for name in names if name.endswith("entry_points.txt")]
    assert "blockjob = blockjob.cli:main" in wheel.read(entry_points).decode()
