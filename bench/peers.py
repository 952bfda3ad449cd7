"""Loaders from peer libraries, each turning status-file bytes into its own model of `<blockjobs>`.

Every peer gets lxml's parse of the whole file and the `<blockjobs>` element handed to it:
the cheapest path each library offers, so the comparison flatters the peers, not us. A peer
that is not installed (the optional `[bench]` extra) is reported as skipped.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree
from xmlschema import XMLResource

from bench.inputs import SCHEMAS
from blockjob.validation import schemafiles

Loader = Callable[[bytes], object]
_PACKAGE = "blockjobs_xsdata"


def _blockjobs(data: bytes) -> etree._Element:
    found = etree.fromstring(data).find("blockjobs")
    assert found is not None, "input without <blockjobs>"
    return found


class UnavailableError(RuntimeError):
    """The peer library is not installed or could not be set up."""


def xsdata_loader(workdir: Path) -> Loader:
    """xsdata bindings generated from schemas/blockjobs.xsd into `workdir`, then imported."""
    try:
        from xsdata.formats.dataclass.parsers import XmlParser  # noqa: PLC0415
        from xsdata.formats.dataclass.parsers.config import ParserConfig  # noqa: PLC0415
        from xsdata.formats.dataclass.parsers.handlers import LxmlEventHandler  # noqa: PLC0415
    except ImportError as exc:
        raise UnavailableError(f"xsdata not installed ({exc.name})") from None
    # The generator formats its output with ruff, which lives beside this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = ["generate", str(SCHEMAS / "blockjobs.xsd"), "--package", _PACKAGE]
    done = subprocess.run(
        [sys.executable, "-m", "xsdata", *command],
        cwd=workdir, env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0 or not (workdir / _PACKAGE).is_dir():
        # e.g. "No module named 'click'": the generator needs xsdata's `cli` extra.
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UnavailableError(f"xsdata generate failed: {last[0]}")
    sys.path.insert(0, str(workdir))
    try:
        bindings: Any = importlib.import_module(f"{_PACKAGE}.blockjobs")
    finally:
        sys.path.remove(str(workdir))
    config = ParserConfig(fail_on_unknown_properties=False, fail_on_unknown_attributes=False)
    parser = XmlParser(config=config, handler=LxmlEventHandler)
    model = bindings.Blockjobs
    return lambda data: parser.parse(_blockjobs(data), model)


def pydantic_loader() -> Loader:
    try:
        from bench.pydantic_model import BlockJobs  # noqa: PLC0415
    except ImportError as exc:
        raise UnavailableError(f"pydantic-xml not installed ({exc.name})") from None
    # types-lxml and pydantic-xml spell lxml's element type differently.
    return lambda data: BlockJobs.from_xml_tree(_blockjobs(data))  # type: ignore[arg-type]


def xmlschema_loader() -> Loader:
    """xmlschema's decoding of `<blockjobs>` to a dict (lax: invalid jobs decode too)."""
    schema = schemafiles.xsd("blockjobs")

    def load(data: bytes) -> object:
        source = XMLResource(_blockjobs(data), allow="none", defuse="always")  # type: ignore[arg-type]
        return schema.to_dict(source, validation="lax")

    return load


def all_loaders() -> tuple[dict[str, Loader], dict[str, str], tempfile.TemporaryDirectory[str]]:
    """(loaders by peer name, reasons for skipped peers, the workdir to keep alive)."""
    workdir = tempfile.TemporaryDirectory(prefix="blockjob-bench-")
    loaders: dict[str, Loader] = {}
    skipped: dict[str, str] = {}
    makers: dict[str, Callable[[], Loader]] = {
        "xsdata": lambda: xsdata_loader(Path(workdir.name)),
        "pydantic-xml": pydantic_loader,
        "xmlschema to_dict": xmlschema_loader,
    }
    for name, make in makers.items():
        try:
            loaders[name] = make()
        except UnavailableError as exc:
            skipped[name] = str(exc)
    return loaders, skipped, workdir
