"""Unsigned numbers as libvirt's `strtoul` reads them, on both sides of the short path
(digits only, fewer than ten) and the full syntax."""

from __future__ import annotations

import pytest

from blockjob.statusxml.numbers import UINT_MAX, c_unsigned


@pytest.mark.parametrize(("text", "maximum", "expected"), [
    ("1337", UINT_MAX, 1337),
    ("0123", UINT_MAX, 123),  # base 10: a leading zero is no octal
    ("999999999", UINT_MAX, 999_999_999),
    ("4294967295", UINT_MAX, UINT_MAX),
    ("4294967296", UINT_MAX, None),
    ("0004294967295", UINT_MAX, UINT_MAX),
    ("65535", 0xFFFF, 0xFFFF),
    ("65536", 0xFFFF, None),
    (" +42", UINT_MAX, 42),
    ("-1", UINT_MAX, None),
    ("", UINT_MAX, None),
    ("\u0663", UINT_MAX, None),  # a digit to `str.isdigit`, not to strtoul
    ("\u00b2", UINT_MAX, None),
    ("12a", UINT_MAX, None),
])
def test_decimal(text: str, maximum: int, expected: int | None) -> None:
    assert c_unsigned(text, 10, maximum=maximum) == expected


def test_hexadecimal_is_not_read_as_decimal() -> None:
    assert c_unsigned("10", 16) == 16
    assert c_unsigned("0x10", 16) == 16
    assert c_unsigned("-1", 16, negative=True) == UINT_MAX
