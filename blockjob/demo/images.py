"""qcow2 chains with checkpoint bitmaps, built offline with qemu-img and qemu-io.

Steps run in order on each image, so a write lands in exactly the bitmaps that
were recording at that moment, the way a guest write would.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blockjob.demo.signals import deferred
from blockjob.errors import BlockJobError

MiB = 1 << 20
# Small images take well under a second; this only stops a stuck NBD read from hanging.
TOOL_TIMEOUT = 120


class ImageToolError(BlockJobError):
    """qemu-img or qemu-io failed; the message carries its stderr."""


@dataclass(frozen=True)
class Write:
    offset: int
    length: int
    pattern: int = 0xAA


@dataclass(frozen=True)
class AddBitmap:
    name: str
    disabled: bool = False


Step = Write | AddBitmap


@dataclass(frozen=True)
class ImageSpec:
    """One image of a chain. `fail_reads_at` is a guest offset whose data reads
    fail with EIO once QEMU runs (a blkdebug layer), to make a job fail."""

    name: str
    steps: tuple[Step, ...] = ()
    fail_reads_at: int | None = None


def run_tool(argv: Sequence[str]) -> str:
    """Run a QEMU tool; its stdout, or a typed error naming the command."""
    try:
        # Deferred (at most TOOL_TIMEOUT, usually milliseconds): a stop raised inside the
        # Popen's waitpid lock would keep it, and `run` then waits on it forever.
        with deferred():
            done = subprocess.run(
                list(argv), capture_output=True, text=True, check=False, timeout=TOOL_TIMEOUT
            )
    except FileNotFoundError:
        raise ImageToolError(f"{argv[0]}: not installed") from None
    except subprocess.TimeoutExpired:
        raise ImageToolError(f"{' '.join(argv)}: no answer in {TOOL_TIMEOUT} s") from None
    # qemu-io reports failed requests on stdout but still exits 0.
    if done.returncode != 0 or "failed:" in done.stdout:
        detail = (done.stderr or done.stdout).strip()
        raise ImageToolError(f"{' '.join(argv)}: {detail}")
    return done.stdout


def _apply(path: Path, step: Step) -> None:
    if isinstance(step, Write):
        command = f"write -P {step.pattern} {step.offset} {step.length}"
        run_tool(["qemu-io", "-f", "qcow2", "-c", command, str(path)])
    else:
        flags = ["--disable"] if step.disabled else []
        run_tool(["qemu-img", "bitmap", "--add", *flags, str(path), step.name])


def build_chain(directory: Path, images: Sequence[ImageSpec], size: int) -> list[Path]:
    """Create `images` (top first) bottom-up in `directory`; return their paths, top first."""
    paths = [directory / f"{spec.name}.qcow2" for spec in images]
    backing: Path | None = None
    for spec, path in reversed(list(zip(images, paths, strict=True))):
        argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
        if backing is not None:
            argv += ["-b", backing.name, "-F", "qcow2"]
        run_tool([*argv, str(path), str(size)])
        for step in spec.steps:
            _apply(path, step)
        backing = path
    return paths


def host_offset(path: Path, guest_offset: int) -> int:
    """Where in the file the cluster holding `guest_offset` of this image is stored."""
    for extent in json.loads(run_tool(["qemu-img", "map", "-U", "--output=json", str(path)])):
        start, length = int(extent["start"]), int(extent["length"])
        if start <= guest_offset < start + length and extent["depth"] == 0 and "offset" in extent:
            return int(extent["offset"]) + guest_offset - start
    raise ImageToolError(f"{path}: offset {guest_offset} is not allocated in this image")
