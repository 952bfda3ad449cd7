"""The one place this package turns bytes into an XML tree, refusing hostile input.

Status files are parsed by a root daemon. No DTD is loaded or honoured, no entity
is expanded, nothing is fetched, and huge-tree mode stays off. A document that
declares a DOCTYPE is refused outright rather than parsed "safely".
"""

from __future__ import annotations

import re

from lxml import etree

from blockjob.errors import StatusXMLError, UnsafeXMLError


def _parser(remove_blank_text: bool) -> etree.XMLParser:
    # The input is always read as UTF-8 (all libvirt writes), whatever an XML declaration or
    # BOM claims: a UTF-16 or UTF-7 document could otherwise spell `<!DOCTYPE` in bytes the
    # scan below cannot see. Non-UTF-8 input is then simply not well-formed.
    return etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=remove_blank_text,
        collect_ids=False,
    )


# Indentation text nodes carry nothing libvirt reads; dropping them makes the tree smaller
# and faster to build and to walk. libxml2 guesses which blanks are indentation, so a caller
# that must decide that itself (comparison by meaning, blockjob.testing) keeps them all.
_PARSER = _parser(remove_blank_text=True)
_PARSER_KEEPING_BLANKS = _parser(remove_blank_text=False)
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
# `!` is rare in status XML (a comment or two) and memchr finds it far faster than the
# regex scans: look at a few, then leave a document full of them to the regex.
_QUICK_LOOKS = 16


def _declaration(data: bytes) -> int | None:
    """Offset of the first `<!DOCTYPE` or `<!ENTITY` (any case), or None."""
    at = data.find(b"!")
    for _ in range(_QUICK_LOOKS):
        if at < 0:
            return None
        word = data[at + 1 : at + 8].upper()
        if at and data[at - 1] == 0x3C and (word == b"DOCTYPE" or word[:6] == b"ENTITY"):
            return at - 1
        at = data.find(b"!", at + 1)
    if at < 0:
        return None
    found = _DOCTYPE.search(data, at - 1)
    return found.start() if found is not None else None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def parse(data: bytes, filename: str, *, keep_blank_text: bool = False) -> etree._Element:
    """Parse `data` into its root element, or raise a typed error with a line."""
    found = _declaration(data)
    if found is not None:
        raise UnsafeXMLError(
            filename, _line_of(data, found),
            "document type declarations and entities are not allowed in status XML",
        )
    try:
        root = etree.fromstring(data, _PARSER_KEEPING_BLANKS if keep_blank_text else _PARSER)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        # libxml2 ends some messages with a newline, before lxml's ", line L, column C".
        message = exc.msg.replace("\n", "")
        raise StatusXMLError(filename, line, f"not well-formed XML: {message}") from None
    except ValueError as exc:  # e.g. a unicode string with an encoding declaration
        raise StatusXMLError(filename, None, f"not XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    # Defence in depth: with the encoding pinned the scan above already sees every DOCTYPE.
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise UnsafeXMLError(
            filename, 1, "document type declarations and entities are not allowed in status XML"
        )
    return root
