"""blockjob.testing used directly (no plugin): messages, regeneration, pairs, validity."""

from __future__ import annotations

from pathlib import Path

import pytest

import blockjob
from blockjob.testing import (
    REGENERATE_VARIABLE,
    GoldenPair,
    assert_golden,
    assert_valid,
    golden_pairs,
)
from tests.support.docs import jobs

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "every-type-out.xml"


@pytest.fixture(autouse=True)
def _comparing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REGENERATE_VARIABLE, raising=False)


def _failure(actual: blockjob.StatusDocument | bytes, path: Path) -> str:
    with pytest.raises(AssertionError) as caught:
        assert_golden(actual, path)
    return str(caught.value)


def test_equal_bytes_and_documents_pass() -> None:
    assert_golden(GOLDEN.read_bytes(), GOLDEN)
    assert_golden(blockjob.load(DATA / "every-type-in.xml"), str(GOLDEN))


def test_a_mismatch_shows_the_path_the_line_and_a_unified_diff(tmp_path: Path) -> None:
    golden = tmp_path / "x-out.xml"
    golden.write_bytes(b"one\ntwo\nthree\nfour\n")
    message = _failure(b"one\ntwo\n3\nfour\n", golden)
    assert message.splitlines() == [
        f"{golden}: the output differs from the golden file from line 3 on (set "
        f"{REGENERATE_VARIABLE}=1 or run pytest --blockjob-regenerate to accept it)",
        f"--- {golden} (golden)",
        f"+++ {golden} (actual)",
        "@@ -1,4 +1,4 @@",
        " one",
        " two",
        "-three",
        "+3",
        " four",
    ]


def test_invisible_differences_are_shown(tmp_path: Path) -> None:
    golden = tmp_path / "x-out.xml"
    golden.write_bytes(b"<a/>\r\n<b/>")
    message = _failure(b"<a/>\n<b/>\n", golden)
    assert "from line 1 on" in message
    assert "-<a/>\\r\n" in message and "+<a/>\n" in message
    assert "-<b/>\n\\ No newline at end of file\n" in message and "+<b/>\n" in message


def test_tabs_and_spaces_at_the_end_of_a_line_are_shown(tmp_path: Path) -> None:
    # Both sides of the diff looked the same on a terminal.
    golden = tmp_path / "x-out.xml"
    golden.write_bytes(b"<a>\n  <b/>  \n\t<c/>\n</a>\n")
    message = _failure(b"<a>\n  <b/>\n  <c/>\n</a>\n", golden)
    assert "from line 2 on" in message
    assert "\n-  <b/>\\x20\\x20\n-\\t<c/>\n+  <b/>\n+  <c/>\n" in message


def test_undecodable_bytes_are_escaped_in_the_diff(tmp_path: Path) -> None:
    golden = tmp_path / "x-out.xml"
    golden.write_bytes(b"caf\xc3\xa9\n")
    assert "+caf\\xe9" in _failure(b"caf\xe9\n", golden)


def test_a_missing_golden_file_fails_and_is_not_created(tmp_path: Path) -> None:
    golden = tmp_path / "new-out.xml"
    assert _failure(b"<a/>\n", golden) == (
        f"{golden}: the golden file does not exist; set {REGENERATE_VARIABLE}=1 or run "
        "pytest --blockjob-regenerate to create it"
    )
    assert not golden.exists()


@pytest.fixture
def regenerating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REGENERATE_VARIABLE, "1")


@pytest.mark.usefixtures("regenerating")
def test_regeneration_rewrites_keeping_the_mode_and_creates_missing_files(tmp_path: Path) -> None:
    golden = tmp_path / "x-out.xml"
    golden.write_bytes(b"old\n")
    golden.chmod(0o640)
    assert_golden(b"new\n", golden)
    assert golden.read_bytes() == b"new\n"
    assert golden.stat().st_mode & 0o777 == 0o640

    created = tmp_path / "sub" / "dir" / "y-out.xml"
    assert_golden(blockjob.load(DATA / "every-type-in.xml"), created)
    assert created.read_bytes() == GOLDEN.read_bytes()
    assert created.stat().st_mode & 0o777 == 0o644
    # Whatever the atomic write keeps aside is never taken for a golden file.
    assert [path.name for path in tmp_path.glob("*.xml")] == ["x-out.xml"]


@pytest.mark.usefixtures("regenerating")
def test_regeneration_writes_through_a_symlinked_golden_file(tmp_path: Path) -> None:
    # The link was replaced by a file of its own, and the shared file it named kept the
    # old bytes: the other tests using it then failed, or passed on a stale output.
    shared = tmp_path / "shared-out.xml"
    shared.write_bytes(b"old\n")
    link = tmp_path / "x-out.xml"
    link.symlink_to(shared.name)
    assert_golden(b"new\n", link)
    assert link.is_symlink() and shared.read_bytes() == b"new\n"
    dangling = tmp_path / "y-out.xml"
    dangling.symlink_to("made-out.xml")
    assert_golden(b"made\n", dangling)
    assert dangling.is_symlink() and (tmp_path / "made-out.xml").read_bytes() == b"made\n"


@pytest.mark.usefixtures("regenerating")
def test_regeneration_leaves_an_equal_file_alone(tmp_path: Path) -> None:
    golden = tmp_path / "x-out.xml"
    golden.write_bytes(b"same\n")
    before = golden.stat()
    assert_golden(b"same\n", golden)
    after = golden.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("value", ["", "0"])
def test_regeneration_off_values_compare(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REGENERATE_VARIABLE, value)
    with pytest.raises(AssertionError):
        assert_golden(b"different\n", GOLDEN)


@pytest.mark.parametrize("value", ["true", "yes", " 1"])
def test_a_misspelt_switch_is_an_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REGENERATE_VARIABLE, value)
    with pytest.raises(ValueError, match=f"must be 1 .* or 0, not '{value}'"):
        assert_golden(GOLDEN.read_bytes(), GOLDEN)


def test_text_is_refused_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"got str \(encode text first\)"):
        assert_golden("<a/>", GOLDEN)  # type: ignore[arg-type]


# golden_pairs ---------------------------------------------------------------------------


def test_pairs_are_the_inputs_sorted_with_their_outputs(tmp_path: Path) -> None:
    for name in ("b-in.xml", "b-out.xml", "a-in.xml", "a-out.xml", "new-in.xml", "notes.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c-in.xml").write_text("")
    assert golden_pairs(tmp_path) == [
        GoldenPair("a", tmp_path / "a-in.xml", tmp_path / "a-out.xml"),
        GoldenPair("b", tmp_path / "b-in.xml", tmp_path / "b-out.xml"),
        GoldenPair("new", tmp_path / "new-in.xml", tmp_path / "new-out.xml"),
    ]
    assert str(golden_pairs(tmp_path)[0]) == "a"


def test_an_output_without_input_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "gone-out.xml").write_text("")
    (tmp_path / "kept-in.xml").write_text("")
    with pytest.raises(ValueError, match=f"^{tmp_path}: golden outputs without an input .*: "
                       "gone-out.xml$"):
        golden_pairs(tmp_path)


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="golden directory not found"):
        golden_pairs(tmp_path / "nope")


# assert_valid ---------------------------------------------------------------------------


def test_valid_documents_pass_with_each_schema() -> None:
    doc = blockjob.load(GOLDEN)
    for schema in ("both", "rng", "xsd"):
        assert_valid(doc, schema)
    assert_valid(GOLDEN.read_bytes())


def test_problems_are_listed_with_line_and_path() -> None:
    broken = DATA / "invalid" / "nodename-type-unknown.xml"
    with pytest.raises(AssertionError) as caught:
        assert_valid(blockjob.load(broken))
    first, *problems = str(caught.value).splitlines()
    assert first == f"{broken}: not valid (rng: invalid, xsd: invalid)"
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), start=1)
                if "broken:" in text)
    assert problems and problems[0].startswith(f"  {broken}:{line}: /domstatus/blockjobs/")
    assert problems[0].endswith("[xsd]")


def test_not_well_formed_bytes_are_not_valid() -> None:
    with pytest.raises(AssertionError, match=r"^not valid: <bytes>:2: not well-formed XML"):
        assert_valid(b"<domstatus>\n<oops></domstatus>\n")


def test_an_unknown_schema_is_an_error() -> None:
    with pytest.raises(ValueError, match="schema must be one of both, rng, xsd, not 'dtd'"):
        assert_valid(jobs(), "dtd")


def test_bytes_are_named_as_such() -> None:
    with pytest.raises(AssertionError, match=r"^<bytes>: not valid \(rng: invalid, xsd: invalid\)"):
        assert_valid(b"<domstatus><blockjobs active='maybe'/></domstatus>")
