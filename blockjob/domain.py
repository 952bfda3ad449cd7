"""What the job reader needs from the embedded `<domain>`: its disks and their chains."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from blockjob.model import StorageSource
from blockjob.sources import read_disk_chain, read_mirror_chain


@dataclass(frozen=True)
class Disk:
    """A `<disk>` of the domain, read-only: its target, image chain and mirror."""

    target: str
    chain: StorageSource | None
    mirror: StorageSource | None
    mirror_job: str | None
    line: int

    def find_image(self, node_name: str) -> StorageSource | None:
        """The image in the disk's chain (then its mirror chain) with this node name."""
        for top in (self.chain, self.mirror):
            if top is None:
                continue
            for image in top.images():
                if image.matches(node_name):
                    return image
        return None


def read_disks(domain: etree._Element | None) -> tuple[dict[str, Disk], frozenset[str]]:
    """Disks by target, and the targets used twice (the first `<disk>` wins, as in libvirt)."""
    disks: dict[str, Disk] = {}
    repeated: set[str] = set()
    if domain is None:
        return disks, frozenset()
    for disk in domain.iterfind("devices/disk"):
        target = disk.find("target")
        dev = target.get("dev") if target is not None else None
        if not dev:
            continue
        if dev in disks:
            repeated.add(dev)
            continue
        mirror = disk.find("mirror")
        disks[dev] = Disk(
            target=dev,
            chain=read_disk_chain(disk),
            mirror=read_mirror_chain(mirror) if mirror is not None else None,
            mirror_job=mirror.get("job") if mirror is not None else None,
            line=disk.sourceline or 0,
        )
    return disks, frozenset(repeated)
