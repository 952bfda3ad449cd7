"""An immutable XML element as plain data, so the model can hold what it does not interpret.

The codec (`blockjob.statusxml`) builds these from parsed XML and writes them back;
this module knows nothing of parsing.
"""

from __future__ import annotations

from typing import NamedTuple


class Node(NamedTuple):
    """An element: a tuple, because thousands are built per load and tuples are cheap."""

    tag: str
    attrs: tuple[tuple[str, str], ...] = ()
    children: tuple[Node, ...] = ()
    text: str | None = None

    def attr(self, name: str) -> str | None:
        for key, value in self.attrs:
            if key == name:
                return value
        return None

    def child(self, tag: str) -> Node | None:
        for node in self.children:
            if node.tag == tag:
                return node
        return None

    def with_attrs(self, attrs: tuple[tuple[str, str], ...]) -> Node:
        # Not _replace(): that goes through a map and a dict of keywords, per call.
        return _new(Node, (self.tag, attrs, self.children, self.text))


_new = tuple.__new__
