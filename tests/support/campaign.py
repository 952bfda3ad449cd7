"""The marks of what `make fuzz` alone runs (its campaigns); `make test` skips it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import pytest

_Test = TypeVar("_Test", bound=Callable[..., object])

FUZZ_ONLY = [pytest.mark.fuzz,
             pytest.mark.skipif("BLOCKJOB_FUZZ_EXAMPLES" not in os.environ,
                                reason="make fuzz only")]


def fuzz_only(test: _Test) -> _Test:
    """`test` marked `fuzz`, and skipped outside `make fuzz`."""
    for mark in FUZZ_ONLY:
        test = mark(test)
    return test
