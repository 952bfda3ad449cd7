"""Job storage sources built on first use, from the bytes they were loaded from.

Loading checks every image a job names (its validity depends on them), but building
one costs more than reading the rest of its job, and a daemon restart looks into few.
So a loaded job keeps where its images are instead: the document's bytes, which
`<blockjob>` and which child. The first image asked for re-reads `<blockjobs>`.

A dump need not build them either: an image whose shape was seen written back as read
is written as read (`job_image_node`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from lxml import etree

from blockjob.element import Node
from blockjob.model import StorageSource
from blockjob.statusxml.node import TRUSTED_PARSER, first_at, verbatim, write_node
from blockjob.statusxml.rendered import escaped_alike, plain, pretty, start_and_rest
from blockjob.statusxml.sources import build_job_source, check_job_source, job_source_node
from blockjob.statusxml.spans import SourceLines, child_of_root, element_span

_BLOCKJOBS = child_of_root("blockjobs")  # the one the document reads
# Where a job image sits below its `<blockjob>`: `("src",)`, `("chains", "disk")`, ...
Path = tuple[str, ...]


class LoadedBlockjobs:
    """The `<blockjobs>` element of a loaded document, re-read when a job image is needed.

    `data` is the document as loaded (so already checked by the secure parser) and
    `line` the line `<blockjobs>` starts on.
    """

    def __init__(self, data: bytes, line: int) -> None:
        self._data = data
        self._line = line
        self._jobs: list[etree._Element] | None = None
        self._span: tuple[int, int] | None = None

    @property
    def data(self) -> bytes:
        return self._data

    def __reduce__(self) -> tuple[type[LoadedBlockjobs], tuple[bytes, int]]:
        return LoadedBlockjobs, (self._data, self._line)  # the parsed cache stays behind

    @functools.cached_property
    def lines(self) -> SourceLines:
        """The lines of the loaded tree's elements (made on first need: a problem, a disk
        read on its own)."""
        return SourceLines(self._data)

    def span(self) -> tuple[int, int]:
        """Where `<blockjobs>` is in the bytes (`element_span`), looked for once: the
        document's first dump needs it too."""
        if self._span is None:
            self._span = element_span(self._data, b"blockjobs", self._line, _BLOCKJOBS)
        return self._span

    def defer(
        self, element: etree._Element, where: tuple[int, str, Path], *, chain: bool
    ) -> StorageSource:
        """Check a job image now; build it from the bytes when first asked for.

        `where` is the job's position among the `<blockjob>` elements, its name, and
        the image's path below it.
        """
        check_job_source(element, chain=chain)
        image = _new(DeferredImage)  # without `__init__`: this runs per job image loaded
        image.__dict__["_build"] = _new_tuple(_Pending, (self, where, chain))
        return image

    def element(self, where: tuple[int, str, Path]) -> etree._Element:
        """The job image at `where` (see `defer`), in `<blockjobs>` parsed again once."""
        index, name, path = where
        jobs = self._jobs
        if jobs is None or not _holds(jobs, index, name):
            jobs = self._from_span()
            if not _holds(jobs, index, name):
                jobs = self._from_document()
            self._jobs = jobs
        element = first_at(jobs[index], path)  # where the reader found it
        assert element is not None
        return element

    def _from_span(self) -> list[etree._Element]:
        """The jobs, parsing just the bytes of `<blockjobs>` (a few KB of the file)."""
        try:
            start, end = self.span()
            root = etree.fromstring(self._data[start:end], TRUSTED_PARSER)
        except (ValueError, etree.XMLSyntaxError):
            return []  # fooled by a comment, or a namespace declared further up
        return list(root.iterchildren("blockjob")) if root.tag == "blockjobs" else []

    def _from_document(self) -> list[etree._Element]:
        """Every `<blockjob>`, of each `<blockjobs>` (the reader counts them so)."""
        root = etree.fromstring(self._data, TRUSTED_PARSER)
        return list(root.iterfind("blockjobs/blockjob"))


def _holds(jobs: list[etree._Element], index: int, name: str) -> bool:
    return index < len(jobs) and jobs[index].get("name") == name


_new = object.__new__
_new_tuple = tuple.__new__  # NamedTuple's own constructor costs more, per image loaded


class _Pending(NamedTuple):
    """How a loaded image not built yet is built: where it is, and whether its
    `<backingStore>` chain is read."""

    origin: LoadedBlockjobs
    where: tuple[int, str, Path]
    chain: bool

    def __call__(self) -> StorageSource:
        return build_job_source(self.origin.element(self.where), chain=self.chain)


# What writing a loaded job image depends on beyond the values it keeps (`_shape`).
_Shape = tuple[str, bool, str]
# Shapes of loaded job images that `job_source_node` wrote as read: a file libvirt wrote
# holds a few, repeated in every image and file. Emptied when full.
_AS_READ: set[_Shape] = set()
_AS_READ_MAX = 256
# The values writing keeps: all but those reading makes something of (a storage type picks
# the order of a `<source>`'s attributes; protocol, port and transport make its hosts').
# Patterns that begin with `=` are searched for many times faster.
_KEPT_VALUE = re.compile(r'=(?<! type=)(?<! protocol=)(?<! port=)(?<! transport=)"[^"]*"')
# Values not written as read: an empty one (read as absent), an `index` other than the
# decimal number libvirt writes (0 is not written, leading zeros go).
_REWRITTEN = re.compile(r'="(?:"|(?<= index=")(?![1-9][0-9]*"))')


def job_image_node(tag: str, image: StorageSource) -> Node:
    """`job_source_node(tag, image)`. A loaded image not built yet whose shape was seen
    written as read is written as read, and stays unbuilt: the first dump of a file libvirt
    wrote builds none of its images (docs/performance.md)."""
    pending = image.__dict__.get("_build") if type(image) is DeferredImage else None
    if type(pending) is not _Pending:
        return job_source_node(tag, image)
    element = pending.origin.element(pending.where)
    xml = pretty(element)
    shape = _shape(tag, pending.chain, element, xml)
    if shape is None:
        return job_source_node(tag, image)
    if shape not in _AS_READ:
        as_read = plain(element)  # asked first: building puts the element in libvirt's order
        node = job_source_node(tag, image)
        if not as_read or _written(node) != xml.replace('"', "'"):
            return node
        if len(_AS_READ) >= _AS_READ_MAX:
            _AS_READ.clear()
        _AS_READ.add(shape)
    return verbatim(tag, *start_and_rest(xml))


def _shape(tag: str, chain: bool, element: etree._Element, xml: str) -> _Shape | None:
    """The `pretty` text `xml` of image `element` without the values writing keeps, or None
    where lxml's text is not libvirt's but for quotes, or a value is written otherwise.

    In the text of a `plain` image every `"` delimits a value, so what is cut is values
    only, each leaving a `"` inside a tag. An image with a `"` in a text never has the
    shape of a plain one: up to its first such `"`, cut or not, both read alike, so its
    shape has a `"` after a tag's end there. (Cutting to a bare `=` made a text `a="b"`
    the shape of a text `a=`.)"""
    if element.tag != tag or not escaped_alike(xml) or _REWRITTEN.search(xml):
        return None
    return tag, chain, _KEPT_VALUE.sub('="', xml)


def _written(node: Node) -> str:
    out: list[str] = []
    write_node(out, node, "")
    return "".join(out)


class DeferredImage(StorageSource):
    """A StorageSource whose fields are built by `build` when one is first read.

    To the model it is a StorageSource like any other (equality, hashing, `replace`):
    `dataclasses.replace` passes the fields as keywords, which build a plain one.
    Once built, the fields sit in the instance's `__dict__`, read as directly as a
    plain StorageSource's: the field descriptors below only serve the first read.
    """

    def __init__(self, build: Callable[[], StorageSource] | None = None, **fields: Any) -> None:
        if build is None:
            build = functools.partial(StorageSource, **fields)
        object.__setattr__(self, "_build", build)


class _BuiltOnFirstRead:
    """A field of DeferredImage: builds the image, then steps aside (a non-data descriptor)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type) -> Any:
        if instance is None:
            return self
        fields = instance.__dict__
        built: StorageSource = fields.pop("_build")()
        fields.update(vars(built))
        return fields[self.name]


for _field in dataclasses.fields(StorageSource):
    setattr(DeferredImage, _field.name, _BuiltOnFirstRead(_field.name))
