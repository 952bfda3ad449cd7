"""Comparison of two status documents by meaning, for files another program wrote.

What does not count: how attributes are quoted and ordered, how text is escaped (entity,
character reference or CDATA), the XML declaration, whitespace between top-level nodes, the
order of the `<blockjob>` elements of `<blockjobs>` (libvirt sorts them by name only since
6.10), and indentation. Indentation is exactly this: the whitespace-only text of an element
whose content is child nodes only (every text piece between, before and after its children
is whitespace). Text of a leaf element (`<errmsg> </errmsg>`) and every piece of mixed content
(text beside child elements, as user `<metadata>` may hold) counts, whitespace included, and so
does all whitespace under `xml:space='preserve'`. Everything else counts: names with their
namespace prefixes, values, comments, processing instructions and the order of children.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from lxml import etree

from blockjob.statusxml.document import StatusDocument
from blockjob.statusxml.parse import parse
from blockjob.testing.diff import unified

_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"

Status = StatusDocument | bytes | str | os.PathLike[str]


def _read(status: Status, default_label: str) -> tuple[bytes, str]:
    if isinstance(status, StatusDocument):
        return status.dumps(), status.filename
    if isinstance(status, bytes | bytearray | memoryview):
        return bytes(status), default_label
    if isinstance(status, str | os.PathLike):
        return Path(status).read_bytes(), os.fsdecode(status)
    raise TypeError(f"expected a StatusDocument, bytes or a path, got {type(status).__name__}")


def _is_blank(text: str | None) -> bool:
    return text is None or not text.strip(" \t\r\n")


def _normalize(element: etree._Element, preserve: bool) -> None:
    """Drop indentation below `element` and put every element's attributes in name order."""
    space = element.get(_XML_SPACE)
    preserve = space == "preserve" or (preserve and space != "default")
    children = list(element)
    if (children and not preserve and _is_blank(element.text)
            and all(_is_blank(child.tail) for child in children)):
        element.text = None
        for child in children:
            child.tail = None
    elif children and preserve:
        # An empty text node keeps pretty printing from indenting content whose
        # whitespace counts (libxml2 indents wherever an element has no text child).
        element.text = element.text or ""
    attributes = sorted(element.attrib.items())
    element.attrib.clear()
    element.attrib.update(attributes)
    for child in children:
        if isinstance(child.tag, str):
            _normalize(child, preserve)


def _text(node: etree._Element | etree._ElementTree) -> str:
    # Indentation was removed, so pretty printing indents exactly the element-only content
    # and never touches text that counts: equal texts mean equal documents.
    return etree.tostring(node, encoding="unicode", pretty_print=True, with_tail=False)


def _canonical(data: bytes, label: str) -> tuple[str, dict[str, list[str]]]:
    """The document without its jobs, and the jobs by name, as canonical text."""
    root = parse(data, label, keep_blank_text=True)
    _normalize(root, preserve=False)
    jobs: dict[str, list[str]] = defaultdict(list)
    blockjobs = root.find("blockjobs") if root.tag == "domstatus" else None
    if blockjobs is not None:
        for job in blockjobs.findall("blockjob"):
            jobs[job.get("name") or ""].append(_text(job))
            blockjobs.remove(job)
    for texts in jobs.values():
        texts.sort()
    return _text(root.getroottree()), jobs


def assert_same_status(a: Status, b: Status) -> None:
    """`a` and `b` (documents, bytes or paths) must say the same (see the module docstring).

    On a difference the message has a unified diff per differing job, and one of the rest.
    """
    __tracebackhide__ = True
    data_a, label_a = _read(a, "<first>")
    data_b, label_b = _read(b, "<second>")
    rest_a, jobs_a = _canonical(data_a, label_a)
    rest_b, jobs_b = _canonical(data_b, label_b)
    parts: list[str] = []
    for name in sorted(jobs_a.keys() | jobs_b.keys()):
        old, new = "".join(jobs_a.get(name, ())), "".join(jobs_b.get(name, ()))
        if old != new:
            where = f"(job {name!r})"
            parts.append(f"block job {name!r} differs:\n"
                         + unified(old, new, f"{label_a} {where}", f"{label_b} {where}"))
    if rest_a != rest_b:
        where = "(without jobs)"
        parts.append("outside the block jobs:\n"
                     + unified(rest_a, rest_b, f"{label_a} {where}", f"{label_b} {where}"))
    if parts:
        raise AssertionError(
            f"{label_a} and {label_b} differ in meaning:\n" + "".join(parts)
        )
