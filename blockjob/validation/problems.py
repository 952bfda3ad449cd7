"""What a validation run found: problems with a place in the file, and per-engine verdicts."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True)
class Problem:
    """One schema violation. `line` is 1-based; `path` is the element's XPath, e.g.
    /domstatus/blockjobs/blockjob[2]/top; `engine` is "rng" or "xsd"."""

    line: int
    path: str
    message: str
    engine: str

    def format(self, filename: str) -> str:
        return f"{filename}:{self.line}: {self.path}: {self.message}"


@dataclass(frozen=True)
class Report:
    """Verdict of every engine that ran, and the problems worth showing."""

    filename: str
    verdicts: dict[str, bool]
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        return all(self.verdicts.values())

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.filename,
            "valid": self.valid,
            "schemas": dict(self.verdicts),
            "problems": [
                {"line": p.line, "path": p.path, "message": p.message, "schema": p.engine}
                for p in self.problems
            ],
        }


def place(element: etree._Element) -> tuple[int, str]:
    """Line and XPath of `element`, the way libxml2 spells paths in its own messages."""
    line = element.sourceline
    return line if isinstance(line, int) and line > 0 else 1, element.getroottree().getpath(element)
