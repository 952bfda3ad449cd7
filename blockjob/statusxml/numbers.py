"""Unsigned numbers as libvirt reads them: C's `strtoul` through `virStrToLong_ui(p)`.

The syntax is `strtoul`'s (leading white space, a sign, `0x` in base 16), the whole value
must be used, and the result must fit an unsigned int. `-N` is refused, except where
libvirt uses `virStrToLong_ui`, which lets it wrap around (`-1` is `0xffffffff`).
"""

from __future__ import annotations

_C_SPACE = " \t\n\v\f\r"
_DIGITS = {10: frozenset("0123456789"), 16: frozenset("0123456789abcdefABCDEF")}
UINT_MAX = 0xFFFF_FFFF
_SHORT = len(str(UINT_MAX))  # fewer decimal digits than this always fit


def c_unsigned(text: str, base: int, *, maximum: int = UINT_MAX,
               negative: bool = False) -> int | None:
    """`text` as libvirt reads an unsigned number in `base` (10 or 16) up to `maximum`;
    None where libvirt fails. `negative`: `-N` wraps around to `UINT_MAX + 1 - N`."""
    if base == 10 and len(text) < _SHORT and text.isascii() and text.isdigit():
        value = int(text)  # the usual case (an index, a port): nothing to strip, no overflow
        return value if value <= maximum else None
    digits = text.lstrip(_C_SPACE)
    sign = digits[:1]
    if sign in ("-", "+"):
        digits = digits[1:]
    if sign == "-" and not negative:
        return None
    if base == 16 and digits.startswith(("0x", "0X")):
        digits = digits[2:]
    if not digits or not _DIGITS[base].issuperset(digits):
        return None
    value = int(digits, base)
    if value > maximum:
        return None
    return -value & UINT_MAX if sign == "-" else value
