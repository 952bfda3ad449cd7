"""Golden-file testing of status XML for projects built on blockjob (pytest optional).

`assert_golden` compares our own output byte for byte; `assert_same_status` compares files
another program wrote by meaning; `assert_valid` applies the package's schemas;
`golden_pairs` lists a directory's `NAME-in.xml` / `NAME-out.xml` pairs. Each raises
AssertionError itself (never an `assert` statement), so it works under `python -O` and with
any test runner. `plugin` is the pytest side, loaded through the `pytest11` entry point.

May import: blockjob.statusxml, blockjob.store.atomic, blockjob.validation (the schema
engine only when `assert_valid` runs: importing this package stays fast). Never pytest,
outside `plugin`.
"""

from blockjob.testing.golden import REGENERATE_VARIABLE, assert_golden
from blockjob.testing.meaning import assert_same_status
from blockjob.testing.pairs import GoldenPair, golden_pairs
from blockjob.testing.valid import assert_valid

__all__ = [
    "REGENERATE_VARIABLE",
    "GoldenPair",
    "assert_golden",
    "assert_same_status",
    "assert_valid",
    "golden_pairs",
]
