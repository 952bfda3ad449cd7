"""Byte spans of elements in the original document.

lxml knows on which line an element's start tag ends but not where its bytes are. To
rewrite one element and keep every other byte, we find the start tag that ends on
that line and scan tags from there to the matching end tag. Rarely, another element of
the same name ends on that line too (nested in a sibling, say); then the document is
parsed again to tell which one is meant. libxml2 keeps line numbers in 16 bits: past line
65535 every element says 65535, and the element meant is counted among all its namesakes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from itertools import islice

from lxml import etree

from blockjob.statusxml.node import TRUSTED_PARSER

_TOKEN = re.compile(
    rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>"
    rb"|<(/?)[^\s/>!?]+(?:[^>\"']|\"[^\"]*\"|'[^']*')*?(/?)>",
    re.DOTALL,
)


_MARKUP = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
# What may follow an element name in a start tag: a `find` plus this check is several times
# faster than a regex search.
_AFTER_NAME = frozenset(bytes([c]) for c in b" \t\r\n/>")


@functools.cache
def _start_pattern(tag: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"<" + re.escape(tag) + rb"[\s/>]")


# Given a document's root element, the element meant.
Locate = Callable[[etree._Element], etree._Element]
# lxml's `sourceline` of every element whose start tag ends on this line or later.
LAST_LINE = 65535


class AmbiguousSpanError(ValueError):
    """More than one start tag of the name ends on the line, and nothing tells which."""


def element_span(
    data: bytes, tag: bytes, line: int, locate: Locate | None = None
) -> tuple[int, int]:
    """(start, end) of the element named `tag` whose start tag ends on `line`.

    `line` is lxml's `sourceline`: the line of the start tag's closing `>`, which is not the
    line of its `<` when a newline sits inside the tag (between attributes or in a value).
    `end` is just past the end tag (or the `/>` of an empty element). `data` must be
    well-formed XML (it was parsed before). When several start tags of that name end on
    `line`, `locate` picks the element meant in `data` parsed again (so `data` must then
    be a whole document); without it, that is AmbiguousSpanError. So it is from `LAST_LINE`
    on, where `line` no longer tells.
    """
    if line >= LAST_LINE:
        start = _start_counted(data, tag, locate)
        head = _TOKEN.match(data, start)
    else:
        start = _start_tag(data, tag, line, 0)
        head = _TOKEN.match(data, start)
        assert head is not None  # _start_tag only returns offsets of start tags
        if _another_on_line(data, tag, head.end()):
            if locate is None:
                raise AmbiguousSpanError(f"more than one <{tag.decode()}> ends on line {line}")
            start = _start_tag(data, tag, line, _nth_on_line(data, tag, line, locate))
            head = _TOKEN.match(data, start)
    assert head is not None
    if head.group(2):
        return start, head.end()
    return start, _end_of(data, tag, start, head.end())


def start_tag_end(data: bytes, start: int) -> int:
    """Just past the start tag whose `<` is at `start` (an `element_span` start)."""
    head = _TOKEN.match(data, start)
    if head is None:
        raise ValueError(f"no tag at byte {start}")
    return head.end()


def child_of_root(tag: str) -> Locate:
    """A `Locate` of the first child of the root named `tag`."""
    return lambda root: next(root.iterchildren(tag))


def _another_on_line(data: bytes, tag: bytes, after: int) -> bool:
    """Whether a start tag named `tag` may begin after offset `after`, on its line: the
    only place a second one ending on that line can start. One inside a comment counts
    too; telling would cost more than the rare look at the tree it leads to."""
    end = data.find(b"\n", after)
    if end < 0:
        end = len(data)
    opener = b"<" + tag
    at = data.find(opener, after, end)
    while at >= 0:
        if data[at + len(opener) : at + len(opener) + 1] in _AFTER_NAME:
            return True
        at = data.find(opener, at + 1, end)
    return False


def _nth_on_line(data: bytes, tag: bytes, line: int, locate: Locate) -> int:
    """Which of the elements named `tag` whose start tags end on `line` `locate` means,
    counted in document order (as the start tags are)."""
    root = etree.fromstring(data, TRUSTED_PARSER)  # bytes of a document parsed before
    meant = locate(root)
    return [e for e in _spelled(root, tag) if e.sourceline == line].index(meant)


def _start_counted(data: bytes, tag: bytes, locate: Locate | None) -> int:
    """Offset of the `<` of the element `locate` means, counted among every start tag named
    `tag` (slower than by line: the whole document is tokenized)."""
    if locate is None:
        raise AmbiguousSpanError(f"<{tag.decode()}> ends past line {LAST_LINE}, where "
                                 "lxml's line numbers stop")
    root = etree.fromstring(data, TRUSTED_PARSER)
    nth = list(_spelled(root, tag)).index(locate(root))
    return next(islice(_exact_heads(data, tag), nth, None))[0]


_LONE_CR = re.compile(rb"\r(?!\n)")


class SourceLines:
    """Elements' lines as lxml's `sourceline` gives them (the line of the start tag's `>`),
    without its 16-bit limit, and with lone-CR line ends counted (lxml counts LF only: it
    puts every element of a file with CR line ends on line 1). Where lxml's line does not
    tell (from LAST_LINE on, or in a file with a lone CR), an element's start tag is
    counted among its namesakes' in `data`, the bytes its document was parsed from. That
    tokenizes the whole document (once per tag), so it is done on those rare paths only."""

    def __init__(self, data: bytes) -> None:
        # A lone CR ends a line too: an LF in its place keeps every offset. (`in` first: it
        # is a memchr, and files with a CR are rare.)
        self._cr_lines = b"\r" in data and _LONE_CR.search(data) is not None
        self._data = _LONE_CR.sub(b"\n", data) if self._cr_lines else data
        self._counted: dict[str, dict[etree._Element, int]] = {}

    def exact(self, line: int) -> bool:
        """Whether lxml's `line` is the element's line already."""
        return line < LAST_LINE and not self._cr_lines

    def __call__(self, element: etree._Element) -> int:
        line = element.sourceline or 0
        if self.exact(line) or element.prefix is not None:
            return line  # (prefixed names are not counted: libvirt writes none)
        tag = etree.QName(element).localname
        counted = self._counted.get(tag)
        if counted is None:
            root = element.getroottree().getroot()
            heads = _exact_heads(self._data, tag.encode())
            counted = self._counted[tag] = {
                found: head_line for found, (_, head_line)
                in zip(_spelled(root, tag.encode()), heads, strict=False)}
        return counted.get(element, line)


def _spelled(root: etree._Element, tag: bytes) -> Iterator[etree._Element]:
    """The elements whose start tags read `<tag`: unprefixed, in any namespace or none (a
    namesake declaring `xmlns='...'` is another element to lxml, the same bytes to a scan)."""
    return (e for e in root.iter("{*}" + tag.decode()) if e.prefix is None)


def _start_tag(data: bytes, tag: bytes, line: int, nth: int) -> int:
    """Offset of the `<` of the element `element_span` describes."""
    try:
        found = _nth_ending_on(_quick_heads(data, tag, line), line, nth)
    except _FooledError:
        found = _nth_ending_on(_exact_heads(data, tag), line, nth)
    if found is None:
        raise ValueError(f"no <{tag.decode()}> start tag ending on line {line}")
    return found


class _FooledError(Exception):
    """A quick candidate may sit in a comment, CDATA section or processing instruction."""


Heads = Iterator[tuple[int, int]]  # (offset of a start tag's `<`, line of its `>`)


def _nth_ending_on(heads: Heads, line: int, nth: int) -> int | None:
    seen = 0
    for start, ends_on in heads:
        if ends_on == line:
            if seen == nth:
                return start
            seen += 1
        elif ends_on > line:
            break
    return None


def _quick_heads(data: bytes, tag: bytes, line: int) -> Heads:
    """Start tags named `tag` in document order, found by searching for `<tag`; raises
    _FooledError when one might be inside other markup."""
    opener = b"<" + tag
    offset = at_line = 0
    current = 1  # the line `at_line` is on
    while (found := data.find(opener, offset)) >= 0:
        offset = found + 1
        if data[found + len(opener):found + len(opener) + 1] not in _AFTER_NAME:
            continue  # a longer name that starts the same
        current += data.count(b"\n", at_line, found)
        at_line = found
        if current > line:
            return
        # `<` cannot occur inside a tag: if the next one comes before `line`, so does this
        # tag's end, and the costlier checks below (which scan what lies before) can wait.
        after = data.find(b"<", found + 1)
        if after >= 0 and current + data.count(b"\n", found, after) < line:
            continue
        if _maybe_in_markup(data, at_line):
            raise _FooledError
        head = _TOKEN.match(data, at_line)
        if head is None:
            return
        yield at_line, current + data.count(b"\n", at_line, head.end())


def _exact_heads(data: bytes, tag: bytes) -> Heads:
    """Start tags named `tag` in document order, from every token of the document."""
    pattern = _start_pattern(tag)
    current, at_line = 1, 0
    for token in _TOKEN.finditer(data):
        if token.group(1) != b"" or not pattern.match(data, token.start()):
            continue  # markup, an end tag, or another element
        current += data.count(b"\n", at_line, token.start())
        at_line = token.start()
        yield at_line, current + data.count(b"\n", at_line, token.end())


def _maybe_in_markup(data: bytes, at: int) -> bool:
    """False when `at` is certainly not inside a comment, CDATA section or processing
    instruction: the last opener of each kind before it is closed before it. In well-formed
    XML no opener of a kind can sit inside an unclosed one of the same kind and be closed."""
    for opener, closer in _MARKUP:
        # memchr finds the last `!`/`?` before `at`; an opener's second byte is at or before
        # it (`at` is a `<`, so no opener overlaps it), so the costlier search for the
        # opener starts there: at libvirt's warning comment, not at `at`.
        mark = data.rfind(opener[1:2], 0, at)
        if mark < 0:
            continue
        begun = data.rfind(opener, 0, mark + len(opener) - 1)
        if begun >= 0 and data.find(closer, begun + len(opener), at) < 0:
            return True
    return False


def _end_of(data: bytes, tag: bytes, start: int, head_end: int) -> int:
    """Offset just past the end tag of the element whose start tag spans start:head_end."""
    # Fast path: the first end tag closes it, unless a comment, CDATA section,
    # processing instruction or nested namesake could fool a plain search. Single
    # bytes are looked for because memchr finds them many times faster than `<!`.
    close = data.find(b"</" + tag, head_end)
    if close >= 0:
        inner = data[head_end:close]
        if b"!" not in inner and b"?" not in inner and b"<" + tag not in inner:
            return data.index(b">", close) + 1
    depth = 0
    for token in _TOKEN.finditer(data, start):
        closing, empty = token.group(1), token.group(2)
        if closing is None:  # comment, CDATA or processing instruction
            continue
        if closing:
            depth -= 1
        elif not empty:
            depth += 1
        if depth == 0:
            return token.end()
    raise ValueError(f"<{tag.decode()}> at byte {start} is never closed")


def line_start(data: bytes, at: int) -> int:
    """Where the line holding `at` starts. A line ends in LF, CRLF or a lone CR (XML's
    line ends): the CR is looked for on `at`'s line only, so an LF file pays nothing."""
    first = data.rfind(b"\n", 0, at) + 1
    return data.rfind(b"\r", first, at) + 1 or first


def line_end(data: bytes, at: int) -> int:
    """How many bytes of line end (LF, CRLF, CR) start at `at`: 0 when none does."""
    if data.startswith(b"\r\n", at):
        return 2
    return 1 if data[at:at + 1] in (b"\n", b"\r") else 0


def whole_lines(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Widen a span to whole lines (its line end included) when only blanks share its
    first and last line."""
    first = line_start(data, start)
    if data[first:start].strip():
        first = start
    return first, end + line_end(data, end)


def own_line(data: bytes, start: int, end: int) -> tuple[int, int]:
    """A span to cut out, widened to its whole line (line end included) when nothing else
    is on it: a removed element leaves neither a blank line nor a neighbour on its line that
    lost its indentation or its line end."""
    first = line_start(data, start)
    last = end + line_end(data, end)
    if data[first:start].strip() or (last == end < len(data)):
        return start, end
    return first, last
