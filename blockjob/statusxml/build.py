"""Frozen dataclasses built fast, and only from exactly their fields.

The generated `__init__` of a frozen dataclass stores each field through its own
`object.__setattr__` call: about 10 us for a `BlockJob`, more than reading the rest of
its element. The reader builds one per job of every file at each daemon restart, so it
adopts a dict of the fields as the instance's `__dict__` instead, after checking that
its keys name every field and nothing else: a misspelled one raises TypeError, it never
yields a default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

_T = TypeVar("_T")


def builder(cls: type[_T]) -> Callable[[dict[str, Any]], _T]:
    """A constructor of `cls` from a dict that holds every field (no defaults), and is kept."""
    in_order = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    expected = frozenset(in_order)
    new = object.__new__
    adopt = object.__setattr__

    def build(values: dict[str, Any]) -> _T:
        # Keys in the fields' order (every caller's) compare as a list: two thirds of the
        # cost of comparing them as a set, which is asked only when that fails.
        if [*values] != in_order and values.keys() != expected:
            unknown = sorted(values.keys() - expected)
            missing = sorted(expected - values.keys())
            raise TypeError(f"{cls.__name__}: unknown fields {unknown}, missing {missing}")
        instance = new(cls)
        adopt(instance, "__dict__", values)
        return instance

    return build


def filler(
    cls: type[_T], names: Iterable[str]
) -> tuple[dict[str, Any], Callable[[dict[str, Any]], _T]]:
    """The default of every field of `cls`, and a constructor of `cls` from a copy of them
    in which only fields among `names` were set. The names are checked here, once: a dict
    made so holds every field and nothing else, so building checks nothing (`builder`'s
    check costs about 2,000 instructions a dict, and a reader fills one per job)."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    defaults = {f.name: f.default for f in fields}
    unknown = sorted(set(names) - defaults.keys())
    undefaulted = sorted(name for name, value in defaults.items()
                         if value is dataclasses.MISSING)
    if unknown or undefaulted:
        raise TypeError(f"{cls.__name__}: unknown fields {unknown}, "
                        f"fields without a default {undefaulted}")
    new = object.__new__
    adopt = object.__setattr__

    def build(values: dict[str, Any]) -> _T:
        instance = new(cls)
        adopt(instance, "__dict__", values)
        return instance

    return defaults, build
