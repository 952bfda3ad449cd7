"""The pytest plugin, as a downstream project meets it: the README example run by pytester.

The project is the README's test file with `data/lab-in.xml` beside it. It starts with no
golden files, so its first run fails and regeneration writes them.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from lxml import etree

import blockjob
from blockjob.testing import REGENERATE_VARIABLE
from tests.support.corpus import REAL

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
_EXAMPLE = re.compile(r"## Golden-file testing.*?```python\n(.*?)```", re.DOTALL)


@pytest.fixture(autouse=True)
def _no_regeneration(monkeypatch: pytest.MonkeyPatch) -> None:
    # An outer `pytest --blockjob-regenerate` must not turn the failures below into rewrites.
    monkeypatch.delenv(REGENERATE_VARIABLE, raising=False)


def readme_example() -> str:
    found = _EXAMPLE.search((ROOT / "README.md").read_text())
    assert found is not None, "README.md lost its golden-file example"
    return found.group(1)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_tool=readme_example())
    data = pytester.path / "data"
    data.mkdir()
    (data / "lab-in.xml").write_bytes((DATA / "every-type-in.xml").read_bytes())
    return data


def _forget_finished_jobs(path: Path) -> bytes:
    """What the README's tool must write, computed here without the example's code."""
    doc = blockjob.load(path)
    finished = [job.name for job in doc.jobs if job.state in ("completed", "failed", "cancelled")]
    assert finished, "the input has no finished job: the example would show nothing"
    for name in finished:
        doc.remove_job(name)
    return doc.dumps()


def test_readme_example_regenerates_then_passes(pytester: pytest.Pytester, project: Path) -> None:
    first = pytester.runpytest("-rf")
    first.assert_outcomes(passed=1, failed=2)
    first.stdout.fnmatch_lines([
        f"*{project / 'lab-out.xml'}: the golden file does not exist; set "
        f"{REGENERATE_VARIABLE}=1 or run pytest --blockjob-regenerate to create it*",
        f"*{project / 'lab-no-jobs.xml'}: the golden file does not exist*",
    ])
    assert not (project / "lab-out.xml").exists()

    regenerated = pytester.runpytest("--blockjob-regenerate", "-v")
    regenerated.assert_outcomes(passed=3)
    regenerated.stdout.fnmatch_lines(
        ["blockjob: rewriting golden files", "*test_tool_output?lab? PASSED*"])
    assert (project / "lab-out.xml").read_bytes() == _forget_finished_jobs(project / "lab-in.xml")
    no_jobs = blockjob.load(project / "lab-no-jobs.xml")
    assert no_jobs.jobs == [] and no_jobs.domain_name == "golden"
    assert os.stat(project / "lab-out.xml").st_mode & 0o777 == 0o644

    pytester.runpytest().assert_outcomes(passed=3)
    assert REGENERATE_VARIABLE not in os.environ  # the option's switch ended with its session


def test_a_changed_golden_file_fails_with_its_diff_and_the_environment_rewrites_it(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = project / "lab-out.xml"
    pytester.runpytest("--blockjob-regenerate", "-k", "test_tool_output").assert_outcomes(passed=1)
    right = golden.read_bytes()
    lines = right.split(b"\n")
    number = next(n for n, line in enumerate(lines, start=1) if b"<blockjob " in line)
    wrong = lines[number - 1].replace(b"<blockjob ", b"<blockjob stale='yes' ")
    golden.write_bytes(b"\n".join([*lines[: number - 1], wrong, *lines[number:]]))

    failed = pytester.runpytest("-k", "test_tool_output")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines([
        f"E*AssertionError: {golden}: the output differs from the golden file from line "
        f"{number} on (set {REGENERATE_VARIABLE}=1 or run pytest --blockjob-regenerate to "
        "accept it)",
        f"E*--- {golden} (golden)",
        f"E*+++ {golden} (actual)",
        f"E*@@ -{number - 3},7 +{number - 3},7 @@",
        f"E*-{wrong.decode()}",
        f"E*+{lines[number - 1].decode()}",
    ])
    # The failure points at the test's line, not into the kit.
    failed.stdout.fnmatch_lines([">*assert_golden(doc, pair.expected)"])
    assert "blockjob/testing/golden.py" not in failed.stdout.str()

    monkeypatch.setenv(REGENERATE_VARIABLE, "1")
    pytester.runpytest("-k", "test_tool_output").assert_outcomes(passed=1)
    assert golden.read_bytes() == right
    monkeypatch.delenv(REGENERATE_VARIABLE)
    pytester.runpytest("-k", "test_tool_output").assert_outcomes(passed=1)


def test_a_misspelt_switch_is_a_usage_error_said_once(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the report header raised it as an INTERNALERROR traceback (exit 3).
    monkeypatch.setenv(REGENERATE_VARIABLE, "true")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {REGENERATE_VARIABLE} must be 1 (rewrite golden files) or 0, not 'true'"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert not (project / "lab-out.xml").exists()
    # The option says what to do, whatever the variable says.
    pytester.runpytest("--blockjob-regenerate").assert_outcomes(passed=3)


SAME_STATUS_TEST = """
from pathlib import Path

from blockjob.testing import assert_same_status

HERE = Path(__file__).parent


def test_reformatted_copy_is_the_same():
    assert_same_status(HERE / "libvirt.xml", HERE / "reformatted.xml")


def test_copy_with_a_changed_job_is_not():
    assert_same_status(HERE / "libvirt.xml", HERE / "changed.xml")
"""


def _reformatted(data: bytes) -> bytes:
    """`data` as lxml writes it: indentation, double quotes, attributes and jobs reversed."""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    for element in root.iter(tag=etree.Element):
        attributes = list(element.attrib.items())[::-1]
        element.attrib.clear()
        element.attrib.update(attributes)
        if element.tag == "blockjobs":
            element[:] = list(element)[::-1]
    return etree.tostring(root.getroottree(), pretty_print=True, xml_declaration=True,
                          encoding="UTF-8")


def _with_state(data: bytes, job: str, state: str) -> bytes:
    root = etree.fromstring(data)
    [element] = root.findall(f"blockjobs/blockjob[@name='{job}']")
    element.set("state", state)
    return etree.tostring(root.getroottree())


def test_same_status_accepts_a_reformatted_real_file_and_names_a_changed_job(
    pytester: pytest.Pytester,
) -> None:
    if not REAL.is_dir():
        pytest.skip(f"libvirt status files not found under {REAL}")
    # The file with the most jobs, so that their order is changed too.
    real = max(sorted(REAL.glob("*.xml")), key=lambda path: path.read_bytes().count(b"<blockjob "))
    original = real.read_bytes()
    reformatted = _reformatted(original)
    job = blockjob.load(real).jobs[0]
    assert len(blockjob.load(real).jobs) > 1 and job.state == "running"
    names = re.findall(rb'<blockjob [^>]*name="([^"]*)"', reformatted)
    assert len(names) > 1 and names == sorted(names, reverse=True)  # libvirt sorts them up
    changed = _with_state(reformatted, job.name, "ready")
    pytester.makepyfile(test_status=SAME_STATUS_TEST)
    for name, data in (("libvirt", original), ("reformatted", reformatted), ("changed", changed)):
        (pytester.path / f"{name}.xml").write_bytes(data)

    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "E*libvirt.xml and *changed.xml differ in meaning:",
        f"E*block job '{job.name}' differs:",
        f'E*-<blockjob *name="{job.name}" state="running" *>',
        f'E*+<blockjob *name="{job.name}" state="ready" *>',
    ])
    assert "outside the block jobs" not in result.stdout.str()


# Runs pytest with everything this repository adds for its own tests unimportable: what a
# project that installed only blockjob and pytest has. Importing any of them fails loudly.
ONLY_BLOCKJOB_AND_PYTEST = """
import importlib.abc
import sys

ABSENT = {"hypothesis", "_hypothesis_pytestplugin", "tests", "bench"}


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"{name} is not installed downstream", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
import pytest

sys.exit(pytest.main(sys.argv[1:]))
"""

REWRITTEN = """
import sys


def test_the_plugin_module_was_rewritten():
    loader = sys.modules["blockjob.testing.plugin"].__loader__
    assert type(loader).__name__ == "AssertionRewritingHook"
"""


def test_the_kit_needs_only_blockjob_and_pytest(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # blockjob as plain files on the path, the way a wheel installs it (the editable
    # install's import hook would hide the package from pytest's assertion rewriting).
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    script = pytester.path / "only_blockjob_and_pytest.py"
    script.write_text(ONLY_BLOCKJOB_AND_PYTEST)
    pytester.makepyfile(test_rewritten=REWRITTEN)
    argv = [sys.executable, str(script), "-p", "no:hypothesispytest", "-p", "no:cacheprovider"]

    created = pytester.run(*argv, "--blockjob-regenerate")
    created.assert_outcomes(passed=4)
    assert "blockjob: rewriting golden files" in created.outlines
    assert (project / "lab-out.xml").is_file() and (project / "lab-no-jobs.xml").is_file()
    checked = pytester.run(*argv, "-v")
    checked.assert_outcomes(passed=4)
    checked.stdout.fnmatch_lines(["plugins: blockjob-*", "*test_tool_output?lab? PASSED*"])
    assert "hypothesis" not in checked.stdout.str()


def test_importing_the_kit_loads_neither_pytest_nor_the_schema_engine(
    pytester: pytest.Pytester,
) -> None:
    code = (
        "import sys\n"
        "import blockjob.testing\n"
        "print(sorted(m for m in ('pytest', 'xmlschema') if m in sys.modules))\n"
        "blockjob.testing.assert_valid(open(sys.argv[1], 'rb').read())\n"
        "print('xmlschema' in sys.modules)\n"
    )
    result = pytester.run(sys.executable, "-c", code, str(DATA / "every-type-out.xml"))
    assert result.ret == 0, result.stderr.str()
    assert result.outlines == ["[]", "True"]
