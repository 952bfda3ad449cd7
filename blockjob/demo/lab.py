"""A real QEMU with a libvirt-style disk graph and its status file, for tests and the demo."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from blockjob.demo.images import ImageSpec, MiB, build_chain
from blockjob.demo.qemu import AttachedImage, QemuProcess, add_device, attach_chain
from blockjob.demo.statusfile import DiskChain, domstatus_xml
from blockjob.qemu.monitor import Monitor
from blockjob.statusxml.document import loads
from blockjob.store.status_store import StatusStore

__all__ = ["AttachedImage", "ChainBuilder", "DiskSpec", "Lab"]

# Makes a disk's images (top first) in a directory, at a size; returns their paths, top first.
ChainBuilder = Callable[[Path, Sequence[ImageSpec], int], list[Path]]


@dataclass(frozen=True)
class DiskSpec:
    target: str
    images: tuple[ImageSpec, ...]  # top first


class Lab:
    """Images in `directory`, one QEMU using them, and `<name>.xml` describing it.

    Node indexes are numbered from 1 down each disk's chain, continuing across disks.
    Use as a context manager so QEMU is reaped however the caller ends.
    """

    def __init__(
        self, directory: Path, disks: Sequence[DiskSpec], *, name: str = "lab1",
        size: int = 16 * MiB, devices: bool = False, build: ChainBuilder = build_chain,
    ) -> None:
        self.directory = directory
        self.name = name
        self.status_path = directory / f"{name}.xml"
        self.devices = devices  # a virtio device per disk (`query-block` shows its root)
        self.qemu = QemuProcess(directory / f"{name}-qemu.log", devices=devices)
        self._specs = tuple(disks)
        self._size = size
        self._build = build
        self.disks: tuple[DiskChain, ...] = ()

    @property
    def monitor_path(self) -> str:
        return self.qemu.monitor_path

    def start(self) -> None:
        chains: list[DiskChain] = []
        index = 1
        for spec in self._specs:
            disk_dir = self.directory / spec.target
            disk_dir.mkdir(parents=True, exist_ok=True)
            paths = self._build(disk_dir, spec.images, self._size)
            images = tuple(AttachedImage(path, index + i) for i, path in enumerate(paths))
            index += len(images)
            chains.append(DiskChain(spec.target, images))
        self.disks = tuple(chains)
        self.launch()
        pid = self.qemu.pid or 0
        # Saved as every status file is: through the store, under the domain's lock.
        doc = loads(domstatus_xml(self.name, self.monitor_path, pid, chains), str(self.status_path))
        StatusStore(self.directory).save(doc)

    def launch(self) -> None:
        """Start `self.qemu` and attach every disk's chain to it."""
        self.qemu.start()
        with self.connect() as monitor:
            for spec, disk in zip(self._specs, self.disks, strict=True):
                attach_chain(monitor, disk.images, spec.images)
                if self.devices:
                    add_device(monitor, disk.target, disk.images[0])

    def connect(self) -> Monitor:
        return self.qemu.connect()

    def stop(self) -> None:
        self.qemu.stop()

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
