"""Validate status XML against the project's schemas (RelaxNG, XSD 1.1, or both).

Validation is separate from loading: blockjob.load() stays lenient whatever the schemas say,
because recovery must never refuse a domain over a schema rule. A <blockjobs> root is checked
against blockjobs.rng/.xsd, anything else against domstatus.rng/.xsd.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from lxml import etree

from blockjob.inputs import MAX_INPUT_BYTES, read_file
from blockjob.statusxml.mirrors import mirror_job_problem
from blockjob.statusxml.parse import parse
from blockjob.statusxml.spans import SourceLines
from blockjob.validation import rng, xsd
from blockjob.validation.problems import Problem, Report, place

ENGINES: dict[str, Callable[[etree._Element], tuple[bool, list[Problem]]]] = {
    "rng": rng.check,
    "xsd": xsd.check,
}

__all__ = ["ENGINES", "Problem", "Report", "validate_bytes", "validate_file", "validate_tree"]


def validate_tree(
    root: etree._Element, filename: str, engines: Sequence[str] = ("rng", "xsd"), *,
    data: bytes | None = None,
) -> Report:
    """`data`: the bytes `root` was parsed from, which give the true line of a problem
    where lxml's does not tell (`SourceLines`); without them it says lxml's."""
    verdicts: dict[str, bool] = {}
    found: dict[str, list[Problem]] = {}
    for name in engines:
        verdicts[name], found[name] = ENGINES[name](root)
    # When both reject, xmlschema's messages (exact element, expected content) say more
    # than libxml2's; an engine that disagrees always shows its own.
    shown = [name for name in engines if not verdicts[name]]
    if len(shown) > 1 and "xsd" in shown:
        shown = ["xsd"]
    mirrors = _mirror_problems(root)
    if mirrors:  # beyond any schema: what libvirt itself refuses to load
        verdicts["libvirt"] = False
    problems = [*(p for name in shown for p in found[name]), *mirrors]
    lines = SourceLines(data) if data is not None and problems else None
    if lines is not None and not all(lines.exact(problem.line) for problem in problems):
        problems = [_counted(problem, root, lines) for problem in problems]
    problems.sort(key=lambda p: p.line)
    return Report(filename, verdicts, tuple(problems))


def _mirror_problems(root: etree._Element) -> list[Problem]:
    found = []
    for mirror in root.iterfind("domain/devices/disk/mirror"):
        message = mirror_job_problem(mirror.get("job"))
        if message is not None:
            line, path = place(mirror)
            found.append(Problem(line, path, message, "libvirt"))
    return found


def validate_bytes(
    data: bytes, filename: str = "<bytes>", engines: Sequence[str] = ("rng", "xsd")
) -> Report:
    """Raises StatusXMLError (with a line) when `data` is not usable XML at all."""
    return validate_tree(parse(data, filename), filename, engines, data=data)


def _counted(problem: Problem, root: etree._Element, lines: SourceLines) -> Problem:
    """`problem` with its true line where lxml's does not tell: its element, found by its
    path, counted among its namesakes in the bytes."""
    if lines.exact(problem.line):
        return problem
    try:
        found = root.xpath(problem.path)
    except etree.XPathError:
        return problem
    element = found[0] if isinstance(found, list) and found else None
    if not isinstance(element, etree._Element):
        return problem
    return dataclasses.replace(problem, line=lines(element))


def validate_file(
    path: str | Path, engines: Sequence[str] = ("rng", "xsd"), *,
    max_bytes: int = MAX_INPUT_BYTES,
) -> Report:
    """Read `path` under the input policy (InputError when it cannot be read) and validate it."""
    return validate_bytes(read_file(path, max_bytes=max_bytes), str(path), engines)
