"""assert_same_status: what counts as meaning, what does not, and what a failure shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

import blockjob
from blockjob.errors import StatusXMLError, UnsafeXMLError
from blockjob.testing import assert_same_status
from tests.support.corpus import REAL, expected_roundtrip

JOB_A = "<blockjob name='a' type='pull' state='running'><disk dst='vda'/></blockjob>"
JOB_B = "<blockjob name='b' type='copy' state='ready'><disk dst='vdb'/></blockjob>"


def doc(blockjobs: str, domain: str = "<name>x</name>") -> bytes:
    return (f"<domstatus state='running'>\n  <blockjobs active='yes'>{blockjobs}</blockjobs>\n"
            f"  <domain type='qemu'>{domain}</domain>\n</domstatus>\n").encode()


def differs(a: bytes, b: bytes) -> str:
    with pytest.raises(AssertionError) as caught:
        assert_same_status(a, b)
    return str(caught.value)


@pytest.mark.parametrize("other", [
    # Quotes, attribute order, escaping, declaration, indentation, job order.
    doc(JOB_A.replace("'", '"') + JOB_B),
    doc("<blockjob state='running' type='pull' name='a'><disk dst='vda'/></blockjob>" + JOB_B),
    doc(JOB_A.replace("dst='vda'", "dst='&#118;da'") + JOB_B),
    b"<?xml version='1.0' encoding='UTF-8'?>\n" + doc(JOB_A + JOB_B),
    doc("\n    " + JOB_A.replace("><", ">\n      <") + "\n    " + JOB_B + "\n  "),
    doc(JOB_B + JOB_A),
    doc(JOB_A + JOB_B, "\n    <name>x</name>\n  ").replace(b"\n  <domain", b"<domain"),
], ids=["quotes", "attribute-order", "char-ref", "declaration", "indentation", "job-order",
        "domain-indentation"])
def test_what_does_not_count(other: bytes) -> None:
    assert_same_status(doc(JOB_A + JOB_B), other)


@pytest.mark.parametrize(("ours", "theirs"), [
    # Text of a leaf element counts, whitespace included.
    ("<name>x</name>", "<name> x</name>"),
    ("<name>x</name>", "<name>x\n</name>"),
    ("<description/>", "<description> </description>"),
    # Mixed content: every piece counts, even one that is only whitespace.
    ("<metadata><p>a <b>b</b> <i>c</i></p></metadata>",
     "<metadata><p>a <b>b</b><i>c</i></p></metadata>"),
    ("<metadata><p><b>b</b> <i>c</i> tail</p></metadata>",
     "<metadata><p><b>b</b><i>c</i> tail</p></metadata>"),
    # Under xml:space='preserve' indentation counts too.
    ("<metadata xml:space='preserve'><a/><b/></metadata>",
     "<metadata xml:space='preserve'>\n      <a/>\n      <b/>\n    </metadata>"),
    # Order of other children, comments, processing instructions, namespace prefixes.
    ("<name>x</name><uuid>u</uuid>", "<uuid>u</uuid><name>x</name>"),
    ("<name>x</name>", "<name>x</name><!-- note -->"),
    ("<name>x</name>", "<?pi data?><name>x</name>"),
    ("<m:a xmlns:m='urn:m'/>", "<n:a xmlns:n='urn:m'/>"),
], ids=["leaf-leading", "leaf-trailing", "leaf-blank", "mixed-middle", "mixed-no-leading-text",
        "preserve", "child-order", "comment", "pi", "prefix"])
def test_what_counts(ours: str, theirs: str) -> None:
    message = differs(doc(JOB_A, ours), doc(JOB_A, theirs))
    assert "outside the block jobs:" in message and "block job '" not in message


def test_xml_space_default_turns_preserve_off_below() -> None:
    ours = "<metadata xml:space='preserve'><m xml:space='default'><a/><b/></m></metadata>"
    assert_same_status(doc(JOB_A, ours), doc(JOB_A, ours.replace("<b/>", "\n  <b/>\n")))


def test_a_changed_job_is_shown_as_a_diff_of_that_job() -> None:
    changed = JOB_B.replace("state='ready'", "state='running'")
    message = differs(doc(JOB_A + JOB_B), doc(JOB_A + changed))
    assert message.splitlines() == [
        "<first> and <second> differ in meaning:",
        "block job 'b' differs:",
        "--- <first> (job 'b')",
        "+++ <second> (job 'b')",
        "@@ -1,3 +1,3 @@",
        '-<blockjob name="b" state="ready" type="copy">',
        '+<blockjob name="b" state="running" type="copy">',
        '   <disk dst="vdb"/>',
        " </blockjob>",
    ]


def test_missing_and_extra_jobs_are_named() -> None:
    message = differs(doc(JOB_A), doc(JOB_B))
    assert "block job 'a' differs:" in message and "block job 'b' differs:" in message
    assert '-<blockjob name="a" state="running" type="pull">' in message
    assert '+<blockjob name="b" state="ready" type="copy">' in message


def test_jobs_with_one_name_are_compared_as_a_group() -> None:
    twin = JOB_A.replace("vda", "vdc")
    assert_same_status(doc(JOB_A + twin), doc(twin + JOB_A))
    assert "block job 'a' differs" in differs(doc(JOB_A + twin), doc(JOB_A + JOB_A))


def test_documents_and_paths_are_named_by_their_file(tmp_path: Path) -> None:
    path = tmp_path / "theirs.xml"
    path.write_bytes(doc(JOB_A))
    loaded = blockjob.loads(doc(JOB_B), "ours.xml")
    message = differs(loaded, path)  # type: ignore[arg-type]
    assert message.startswith(f"ours.xml and {path} differ in meaning:")
    assert_same_status(str(path), path)


def test_bad_input_is_refused_with_its_place(tmp_path: Path) -> None:
    with pytest.raises(StatusXMLError, match=r"^<second>:2: not well-formed XML"):
        assert_same_status(doc(JOB_A), b"<domstatus>\n<x></domstatus>")
    with pytest.raises(UnsafeXMLError):
        assert_same_status(doc(JOB_A), b"<!DOCTYPE d [<!ENTITY e 'x'>]><domstatus/>")
    with pytest.raises(FileNotFoundError):
        assert_same_status(doc(JOB_A), tmp_path / "nope.xml")
    with pytest.raises(TypeError, match="got int"):
        assert_same_status(doc(JOB_A), 3)  # type: ignore[arg-type]


def _real_files() -> list[Path]:
    if not REAL.is_dir():
        pytest.skip(f"libvirt status files not found under {REAL}")
    return sorted(REAL.glob("*.xml"))


def test_every_real_file_equals_its_lxml_reformatting() -> None:
    for path in _real_files():
        root = etree.fromstring(path.read_bytes(), etree.XMLParser(remove_blank_text=True))
        assert_same_status(path, etree.tostring(root.getroottree(), pretty_print=True))
        # What libvirt writes back: its invalid jobs lose what it could not read.
        assert_same_status(expected_roundtrip(path), blockjob.load(path))
