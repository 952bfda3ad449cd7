"""Byte spans of elements in the original document.

lxml knows on which line an element starts but not where its bytes end. To
rewrite one element and keep every other byte, we find its start tag on that
line and scan tags from there to the matching end tag.
"""

from __future__ import annotations

import functools
import re

_TOKEN = re.compile(
    rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>"
    rb"|<(/?)[^\s/>!?]+(?:[^>\"']|\"[^\"]*\"|'[^']*')*?(/?)>",
    re.DOTALL,
)


@functools.cache
def _start_pattern(tag: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"<" + re.escape(tag) + rb"[\s/>]")


def element_span(data: bytes, tag: bytes, line: int, nth: int = 0) -> tuple[int, int]:
    """(start, end) of the `nth` element named `tag` whose start tag is on `line`.

    `end` is just past the end tag (or the `/>` of an empty element).
    """
    pattern = _start_pattern(tag)
    offset = at_line = 0
    current = 1
    seen = 0
    while True:
        found = pattern.search(data, offset)
        if found is not None:
            current += data.count(b"\n", at_line, found.start())
            at_line = found.start()
        if found is None or current > line:
            raise ValueError(f"no <{tag.decode()}> on line {line}")
        if current == line:
            if seen == nth:
                break
            seen += 1
        offset = found.start() + 1
    start = found.start()
    head = _TOKEN.match(data, start)
    if head is None:
        raise ValueError(f"<{tag.decode()}> on line {line} is not a start tag")
    if head.group(2):
        return start, head.end()
    # Fast path: the first end tag closes it, unless a comment, CDATA section,
    # processing instruction or nested namesake could fool a plain search. Single
    # bytes are looked for because memchr finds them many times faster than `<!`.
    close = data.find(b"</" + tag, head.end())
    if close >= 0:
        inner = data[head.end():close]
        if b"!" not in inner and b"?" not in inner and b"<" + tag not in inner:
            return start, data.index(b">", close) + 1
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
            return start, token.end()
    raise ValueError(f"<{tag.decode()}> on line {line} is never closed")


def whole_lines(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Widen a span to whole lines when only blanks share its first and last line."""
    first = data.rfind(b"\n", 0, start) + 1
    if data[first:start].strip():
        first = start
    last = end
    if data[end:end + 1] == b"\n":
        last = end + 1
    return first, last
