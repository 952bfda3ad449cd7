"""The model is plain data: importing it loads no XML library, and it is built by keywords."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import blockjob
from blockjob.model import BlockJob, CommitData
from blockjob.statusxml.build import builder, filler
from blockjob.statusxml.document import StatusDocument, loads

ROOT = Path(__file__).resolve().parent.parent


def test_importing_the_model_loads_no_lxml() -> None:
    code = "import sys, blockjob.model; print(sorted(m for m in sys.modules if 'lxml' in m))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_package_front_door_still_names_the_codec() -> None:
    assert blockjob.loads is loads and blockjob.StatusDocument is StatusDocument
    assert all(getattr(blockjob, name) is not None for name in blockjob.__all__)
    with pytest.raises(AttributeError, match="no attribute 'lods'"):
        _ = blockjob.lods  # type: ignore[attr-defined]


def test_a_misspelled_field_is_refused_not_defaulted() -> None:
    with pytest.raises(TypeError, match="delete_commited_images"):
        CommitData(delete_commited_images=True)  # type: ignore[call-arg]
    # The codec's fast builder (which skips `__init__`) checks the fields just as strictly.
    fields = {"base": "b", "top": "t", "topparent": None, "disabled_base_bitmaps": ()}
    build = builder(CommitData)
    with pytest.raises(TypeError, match=r"unknown fields \['delete_commited_images'\], "
                                        r"missing \['delete_committed_images'\]"):
        build({**fields, "delete_commited_images": True})
    with pytest.raises(TypeError, match=r"missing \['delete_committed_images'\]"):
        build(fields)
    # Out of the fields' order (checked as a set) and in it (checked as a list) alike.
    assert build({**fields, "delete_committed_images": True}) == CommitData(
        base="b", top="t", delete_committed_images=True)
    in_order = {"base": "b", "top": "t", "topparent": None, "delete_committed_images": True,
                "disabled_base_bitmaps": ()}
    assert build(in_order) == CommitData(base="b", top="t", delete_committed_images=True)
    with pytest.raises(TypeError, match=r"unknown fields \['extra'\], missing \[\]"):
        build({**in_order, "extra": 1})


def test_the_data_readers_filler_checks_the_names_it_may_set_once_up_front() -> None:
    # The reader's data classes are filled from their defaults without a check per job, so
    # a misspelled name must be refused when the reader is made, never yield a default.
    with pytest.raises(TypeError, match=r"unknown fields \['delete_commited_images'\]"):
        filler(CommitData, ["base", "delete_commited_images"])
    with pytest.raises(TypeError, match=r"fields without a default \['name', 'state', 'type'\]"):
        filler(BlockJob, [])
    defaults, build = filler(CommitData, ["base", "top", "delete_committed_images"])
    values = defaults.copy()
    values.update(base="b", top="t", delete_committed_images=True)
    built = build(values)
    assert built == CommitData(base="b", top="t", delete_committed_images=True)
    assert defaults == vars(CommitData())  # the defaults themselves are left alone
