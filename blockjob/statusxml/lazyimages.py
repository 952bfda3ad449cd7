"""Job storage sources built on first use, from the bytes they were loaded from.

Loading checks every image a job names (its validity depends on them), but building
one costs more than reading the rest of its job, and a daemon restart looks into few.
So a loaded job keeps where its images are instead: the document's bytes, which
`<blockjob>` and which child. The first image asked for re-reads `<blockjobs>`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from lxml import etree

from blockjob.model import StorageSource
from blockjob.statusxml.node import TRUSTED_PARSER, first_at
from blockjob.statusxml.sources import build_job_source, check_job_source
from blockjob.statusxml.spans import child_of_root, element_span

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
        image.__dict__["_build"] = functools.partial(self._build, where, chain)
        return image

    def _build(self, where: tuple[int, str, Path], chain: bool) -> StorageSource:
        index, name, path = where
        jobs = self._jobs
        if jobs is None or not _holds(jobs, index, name):
            jobs = self._from_span()
            if not _holds(jobs, index, name):
                jobs = self._from_document()
            self._jobs = jobs
        element = first_at(jobs[index], path)  # where the reader found it
        assert element is not None
        return build_job_source(element, chain=chain)

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
