"""Which base bitmaps a commit disables and how they are finished (docs/format.md#bitmaps)."""

from __future__ import annotations

from blockjob.qemu.bitmaps import (
    bitmaps_to_disable,
    chain_is_valid,
    finish_actions,
    reenable_actions,
)
from blockjob.qemu.monitor import Bitmap, BlockNode

G = 65536


def bm(name: str, *, recording: bool = True, count: int = 0, inconsistent: bool = False,
       persistent: bool = True) -> Bitmap:
    return Bitmap(name, recording, persistent, False, count, G, inconsistent)


def nodes(**bitmaps: list[Bitmap]) -> dict[str, BlockNode]:
    return {name: BlockNode(name, "qcow2", True, tuple(found)) for name, found in bitmaps.items()}


CHAIN = ["top", "mid", "base"]


def test_chain_is_valid_needs_one_unbroken_consistent_run() -> None:
    graph = nodes(top=[bm("a"), bm("gap")], mid=[bm("a"), bm("bad", inconsistent=True)],
                  base=[bm("a"), bm("gap"), bm("bad"), bm("only")])
    assert chain_is_valid(CHAIN, "a", graph)
    assert chain_is_valid(CHAIN, "only", graph)
    assert not chain_is_valid(CHAIN, "gap", graph)   # reappears below a gap
    assert not chain_is_valid(CHAIN, "bad", graph)   # an inconsistent copy
    assert not chain_is_valid(CHAIN, "nowhere", graph)


def test_only_recording_consistent_bitmaps_with_a_valid_chain_are_disabled() -> None:
    graph = nodes(top=[bm("gap")], mid=[],
                  base=[bm("rec"), bm("off", recording=False), bm("broken", inconsistent=True),
                        bm("gap")])
    # From mid down, "gap" is one run (base only); from top down it reappears after a gap.
    assert bitmaps_to_disable(CHAIN[1:], "base", graph) == ("rec", "gap")
    assert bitmaps_to_disable(CHAIN, "base", graph) == ("rec",)
    assert bitmaps_to_disable(CHAIN, "missing-node", graph) == ()


def test_finish_merges_adds_and_enables_like_libvirt_6_2() -> None:
    graph = nodes(
        top=[bm("chk1"), bm("chk2")],
        mid=[bm("chk1", count=3), bm("chk2", count=1), bm("old", recording=False)],
        base=[bm("chk0", recording=False), bm("chk1", recording=False),
              bm("bm-off", recording=False)],
    )
    actions, problems = finish_actions(["mid"], CHAIN, "base", ["chk1", "chk0"], graph)
    assert problems == []
    assert actions == [
        {"type": "block-dirty-bitmap-enable", "data": {"node": "base", "name": "chk1"}},
        {"type": "block-dirty-bitmap-merge", "data": {
            "node": "base", "target": "chk1", "bitmaps": [{"node": "mid", "name": "chk1"}]}},
        {"type": "block-dirty-bitmap-add", "data": {
            "node": "base", "name": "chk2", "persistent": True, "granularity": G,
            "disabled": False}},
        {"type": "block-dirty-bitmap-merge", "data": {
            "node": "base", "target": "chk2", "bitmaps": [{"node": "mid", "name": "chk2"}]}},
        # a disabled checkpoint stays disabled in base, but keeps its content
        {"type": "block-dirty-bitmap-add", "data": {
            "node": "base", "name": "old", "persistent": True, "granularity": G,
            "disabled": True}},
        {"type": "block-dirty-bitmap-merge", "data": {
            "node": "base", "target": "old", "bitmaps": [{"node": "mid", "name": "old"}]}},
        {"type": "block-dirty-bitmap-enable", "data": {"node": "base", "name": "chk0"}},
    ]


def test_finish_skips_invalid_chains_and_reports_them() -> None:
    graph = nodes(top=[bm("x")], mid=[bm("x", inconsistent=True)], base=[])
    actions, problems = finish_actions(["mid"], CHAIN, "base", [], graph)
    assert actions == []
    assert problems == ["bitmap 'x' has an invalid chain; not merged"]


def test_finish_twice_only_merges_again() -> None:
    graph = nodes(top=[], mid=[bm("chk2")], base=[bm("chk2")])
    actions, _ = finish_actions(["mid"], CHAIN, "base", [], graph)
    assert [a["type"] for a in actions] == ["block-dirty-bitmap-merge"]


def test_finish_after_the_pivots_merge_sees_no_gap_below_a_top_only_bitmap() -> None:
    """An active commit pivoted by the tracker merged top's `ck1` (a libvirt checkpoint,
    top only) into base before job-complete; the finish then read top, mid, base as a
    gap, skipped the merge and reported "invalid chain": `recover` said attention."""
    first, problems = finish_actions(["top", "mid"], CHAIN, "base", [],
                                     nodes(top=[bm("ck1")], mid=[], base=[]))
    assert problems == [] and [a["type"] for a in first] == [
        "block-dirty-bitmap-add", "block-dirty-bitmap-merge"]
    again, problems = finish_actions(["top", "mid"], CHAIN, "base", [],
                                     nodes(top=[bm("ck1")], mid=[], base=[bm("ck1")]))
    assert problems == [] and [a["type"] for a in again] == ["block-dirty-bitmap-merge"]


def test_reenable_touches_only_disabled_ones_and_reports_lost_bitmaps() -> None:
    graph = nodes(base=[bm("on"), bm("off", recording=False),
                        bm("crashed", recording=False, inconsistent=True)])
    actions, problems = reenable_actions("base", ["on", "off", "crashed", "gone"], graph)
    enable_off = {"type": "block-dirty-bitmap-enable", "data": {"node": "base", "name": "off"}}
    assert actions == [enable_off]
    assert problems == [
        "bitmap 'crashed' in base is inconsistent; it can only be removed",
        "bitmap 'gone' is gone from base; nothing to re-enable",
    ]
