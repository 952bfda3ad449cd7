"""A throw-away QEMU (`-machine none`, TCG) with disks attached the way libvirt does."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blockjob.demo.images import ImageSpec, host_offset
from blockjob.demo.signals import deferred
from blockjob.errors import BlockJobError
from blockjob.qemu.monitor import Monitor

QEMU = "qemu-system-x86_64"


class QemuStartError(BlockJobError):
    """QEMU could not be started or exited before its monitor answered."""


@dataclass(frozen=True)
class AttachedImage:
    """One image in QEMU's graph: libvirt's index and node names for it."""

    path: Path
    index: int

    @property
    def storage_node(self) -> str:
        return f"libvirt-{self.index}-storage"

    @property
    def format_node(self) -> str:
        return f"libvirt-{self.index}-format"


class QemuProcess:
    """Spawn and reap one QEMU. The monitor socket lives in a short private
    directory because unix socket paths are limited to ~107 bytes."""

    def __init__(self, log: Path, *, devices: bool = False) -> None:
        # Devices need a machine with a PCI bus; -S keeps its vCPU stopped (no CPU cost).
        self._machine = ["pc", "-S"] if devices else ["none"]
        self._rundir: Path | None = None  # made by `start`, removed by `stop`
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def monitor_path(self) -> str:
        return str(self._run_path("qmp.sock"))

    @property
    def nbd_path(self) -> str:
        return str(self._run_path("nbd.sock"))

    def _run_path(self, name: str) -> Path:
        if self._rundir is None:
            raise QemuStartError(f"{QEMU} has not been started")
        return self._rundir / name

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        if shutil.which(QEMU) is None:
            raise QemuStartError(f"{QEMU}: not installed")
        # A stop signal between making the directory or the process and recording it
        # would leave them behind: `stop` only removes what is recorded.
        with deferred(), self._log.open("ab") as log:
            self._rundir = Path(tempfile.mkdtemp(prefix="bjq-"))
            argv = [
                QEMU, "-machine", *self._machine, "-nodefaults", "-display", "none",
                "-accel", "tcg", "-qmp", f"unix:{self.monitor_path},server=on,wait=off",
            ]
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    # Every call into the Popen runs `deferred`: a stop raised between its taking its
    # waitpid lock and the `try` that releases it kept the lock, and the clean-up's
    # `wait()` then blocked forever on it, QEMU a zombie.

    def connect(self) -> Monitor:
        with deferred():
            running = self._proc is not None and self._proc.poll() is None
        if not running:
            raise QemuStartError(f"{QEMU} is not running; see {self._log}")
        return Monitor.connect(self.monitor_path, connect_timeout=10.0)

    def kill(self) -> None:
        """SIGKILL QEMU, as a crash would."""
        with deferred():
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGKILL)
                self._proc.wait()

    def stop(self) -> None:
        with deferred():
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill()
            self._proc = None
            if self._rundir is not None:
                shutil.rmtree(self._rundir, ignore_errors=True)
                self._rundir = None


def _storage_options(image: AttachedImage, spec: ImageSpec) -> dict[str, object]:
    file_node: dict[str, object] = {
        "driver": "file", "filename": str(image.path), "auto-read-only": True, "discard": "unmap",
    }
    if spec.fail_reads_at is None:
        return {**file_node, "node-name": image.storage_node}
    sector = host_offset(image.path, spec.fail_reads_at) // 512
    return {
        "driver": "blkdebug", "node-name": image.storage_node, "image": file_node,
        "inject-error": [{"event": "read_aio", "errno": 5, "sector": sector, "once": False}],
    }


def add_device(monitor: Monitor, target: str, root: AttachedImage) -> None:
    """A virtio disk on `root`, so `query-block` shows the node the disk runs on."""
    monitor.execute("device_add", {"driver": "virtio-blk-pci", "drive": root.format_node,
                                   "id": target})


def attach_chain(
    monitor: Monitor, images: Sequence[AttachedImage], specs: Sequence[ImageSpec]
) -> None:
    """blockdev-add a chain (top first) bottom-up, exactly like libvirt 9.0:
    a storage and a format node per image, backing images read-only."""
    backing: str | None = None
    for position in reversed(range(len(images))):
        image = images[position]
        monitor.execute("blockdev-add", _storage_options(image, specs[position]))
        monitor.execute("blockdev-add", {
            "node-name": image.format_node, "read-only": position != 0, "driver": "qcow2",
            "file": image.storage_node, "backing": backing,
        })
        backing = image.format_node
