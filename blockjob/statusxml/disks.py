"""What the job reader needs from the embedded `<domain>`: its disks and their chains."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lxml import etree

from blockjob.model import StorageSource
from blockjob.statusxml.node import TRUSTED_PARSER, compiled_xpath
from blockjob.statusxml.sources import read_disk_chain, read_mirror_chain
from blockjob.statusxml.spans import SourceLines, element_span


@dataclass(frozen=True)
class Disk:
    """A `<disk>` of the domain, read-only: its target, image chain and mirror."""

    target: str
    chain: StorageSource | None
    mirror: StorageSource | None
    mirror_job: str | None
    line: int
    mirror_ready: bool = False  # `<mirror ready='yes'>`
    mirror_line: int = 0  # the `<mirror>` element's line; 0 without a mirror
    # `<driver discard>`, which libvirt gives every image of the chain: a reopen repeats it.
    discard: str | None = None


def read_disks(domain: etree._Element | None, data: bytes | None = None) -> dict[str, Disk]:
    """Disks by target; the first `<disk>` of a repeated target wins, as in libvirt.

    `data`: the bytes parsed, which tell the lines from LAST_LINE on (`SourceLines`).
    """
    line = SourceLines(data) if data is not None else _sourceline
    return {dev: _disk(dev, disk, 0, line)
            for dev, disk in DiskRefs(domain).elements.items()}


def _sourceline(element: etree._Element) -> int:
    return element.sourceline or 0


def read_disk_at(data: bytes, target: str, line: int) -> Disk | None:
    """Disk `target` read from its own bytes: the `<disk>` whose start tag ends on `line`
    of `data`, the bytes of a loaded document.

    What `read_disks` gives for that target, without parsing the whole document (a
    restart plans every job of every file, and a job needs only its own disk). None when
    the element's bytes alone cannot tell: no such start tag, another disk on the same
    line, or markup that needs its ancestors (a namespace prefix declared above it); the
    caller then reads the whole document. `tests/test_disks.py` holds the two paths equal.
    """
    element = _disk_element_at(data, target, line)
    if element is None:
        return None
    return _disk(target, element, line - (element.sourceline or 1))


def _disk_element_at(data: bytes, target: str, line: int) -> etree._Element | None:
    """The `<disk>` of `read_disk_at`, parsed on its own, or None when its bytes cannot tell."""
    try:
        start, end = element_span(data, b"disk", line)
        # Bytes of a document the secure parser accepted: no declaration can hide in them.
        element = etree.fromstring(data[start:end], TRUSTED_PARSER)
    except (ValueError, etree.XMLSyntaxError):
        return None
    first = next(element.iterchildren("target"), None)
    return element if first is not None and first.get("dev") == target else None


def _disk(target: str, disk: etree._Element, lines_above: int,
          line: Callable[[etree._Element], int] = _sourceline) -> Disk:
    """`lines_above`: lines of the file before the bytes `disk` was parsed from."""
    mirror = next(disk.iterchildren("mirror"), None)
    driver = next(disk.iterchildren("driver"), None)
    return Disk(
        target=target,
        chain=read_disk_chain(disk),
        mirror=read_mirror_chain(mirror) if mirror is not None else None,
        mirror_job=mirror.get("job") if mirror is not None else None,
        line=line(disk) + lines_above,
        mirror_ready=mirror is not None and mirror.get("ready") == "yes",
        mirror_line=line(mirror) + lines_above if mirror is not None else 0,
        discard=driver.get("discard") if driver is not None else None,
    )


_NODE_KINDS = frozenset({"storage", "format"})
# In document order, as `iter("nodename")` of each child finds them, with the walk in C:
# per child, a tag-filtered lxml iterator costs more to set up than this whole query.
_NODENAMES = compiled_xpath("(source|backingStore)/descendant-or-self::nodename")
_NODENAMES_AND_MIRROR = compiled_xpath("(source|backingStore|mirror)/descendant-or-self::nodename")
# Compiled once; one XPath call walks the disks in C, where a loop makes a proxy per child.
_FIRST_TARGETS = compiled_xpath("devices/disk/target[1]")
_FIRST_MIRRORS = compiled_xpath("devices/disk/mirror[1]")  # few: most disks have none


def known_names(chains: Iterable[etree._Element], wanted: set[str], *,
                mirror: bool = False) -> set[str]:
    """Those of `wanted` that are storage or format node names of the images below each of
    `chains` (a `<disk>` of the domain, or an orphan job's own chain): anywhere in its
    `<source>` and `<backingStore>` children and, with `mirror`, `<mirror>`."""
    found: set[str] = set()
    if not wanted:
        return found
    nodenames = _NODENAMES_AND_MIRROR if mirror else _NODENAMES
    for chain in chains:
        for nodename in nodenames(chain):
            name = nodename.get("name")
            if name in wanted and nodename.get("type") in _NODE_KINDS:
                found.add(name)
                if len(found) == len(wanted):
                    return found
    return found


class DiskRefs:
    """The load-time view of the domain's disks: just what resolving node names needs.

    Building whole chains for every disk would cost more than parsing the file,
    so a job's node names are looked up in the disk it names, and nothing else.
    """

    def __init__(self, domain: etree._Element | None) -> None:
        self.elements: dict[str, etree._Element] = {}
        repeated: set[str] = set()
        for target in _FIRST_TARGETS(domain) if domain is not None else ():
            dev = target.get("dev")
            if not dev:
                continue
            if dev in self.elements:
                repeated.add(dev)
            else:
                self.elements[dev] = target.getparent()
        self.repeated = frozenset(repeated)
        # A legacy (pre-blockdev) block copy shows only as its `<mirror>`.
        self.copy_mirror = False
        self._mirrors: dict[str, etree._Element] = {}
        # The targets whose `Disk.mirror` is an image (the mirror has a `<source>`): known
        # now, planning asks without reading the disk again (`disk_has_mirror`).
        self.mirror_images: tuple[str, ...] = ()
        mirrors = _FIRST_MIRRORS(domain) if domain is not None else None
        if mirrors:
            self._read_mirrors(mirrors)

    def _read_mirrors(self, mirrors: list[etree._Element]) -> None:
        # libvirt reads a `<mirror>` without `job` as a copy (its default mirror job).
        self.copy_mirror = any(mirror.get("job", "copy") == "copy" for mirror in mirrors)
        # By target: a mirror of a disk `elements` does not hold (a later disk of a repeated
        # target, or one without a target) is nobody's.
        owners: dict[etree._Element | None, str] = {
            disk: dev for dev, disk in self.elements.items()}
        imaged: list[str] = []
        for mirror in mirrors:
            dev = owners.get(mirror.getparent())
            if dev is not None:
                self._mirrors[dev] = mirror
                if next(mirror.iterchildren("source"), None) is not None:
                    imaged.append(dev)
        self.mirror_images = tuple(imaged)

    def has_mirror(self, target: str) -> bool:
        return target in self._mirrors

    def known_names(self, target: str, wanted: set[str], *, mirror: bool) -> set[str]:
        """Those of `wanted` that name an image of the disk's chain, or of its mirror's."""
        return known_names((self.elements[target],), wanted, mirror=mirror)
