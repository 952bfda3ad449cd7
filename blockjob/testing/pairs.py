"""The `NAME-in.xml` / `NAME-out.xml` pairs of a golden directory (libvirt's naming)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

_IN = "-in.xml"
_OUT = "-out.xml"


class GoldenPair(NamedTuple):
    """An input and the file its output must equal. `expected` may not exist yet: then
    `assert_golden` fails saying so, and regeneration creates it."""

    name: str
    input: Path
    expected: Path

    def __str__(self) -> str:
        return self.name


def golden_pairs(directory: str | os.PathLike[str]) -> list[GoldenPair]:
    """Every `NAME-in.xml` of `directory` (not its subdirectories) with its `NAME-out.xml`,
    sorted by NAME. With the pytest plugin, parametrized tests get NAME as their id.

    An `-out.xml` without its `-in.xml` is an error: it would never be checked again.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: golden directory not found")
    names = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    inputs = {name.removesuffix(_IN) for name in names if name.endswith(_IN)}
    orphans = [name for name in names if name.endswith(_OUT) and name[: -len(_OUT)] not in inputs]
    if orphans:
        raise ValueError(
            f"{folder}: golden outputs without an input (rename or delete them): "
            + ", ".join(orphans)
        )
    return [
        GoldenPair(name, folder / f"{name}{_IN}", folder / f"{name}{_OUT}")
        for name in sorted(inputs)
    ]
