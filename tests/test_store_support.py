"""Helpers shared by the status-store tests (no tests here)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from blockjob.store.atomic import scratch_key
from blockjob.store.lock import lock_file_of

_PR_CAPBSET_DROP = 24
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_IMMUTABLE_FL = 0x10
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


@dataclass(frozen=True)
class RawDocument:
    """A savable document whose bytes the test fixes exactly."""

    domain_name: str | None
    data: bytes

    def dumps(self) -> bytes:
        return self.data


def status_bytes(name: str, note: str = "") -> bytes:
    """A minimal status file of domain `name` that the codec loads; `note` makes versions differ."""
    return (
        f"<domstatus state='running' reason='booted' pid='4242'>\n"
        f"  <blockjobs active='no'/>\n"
        f"  <domain type='qemu'>\n"
        f"    <name>{name}</name>\n"
        f"    <description>{note}</description>\n"
        f"  </domain>\n"
        f"</domstatus>\n"
    ).encode()


def version(name: str, note: str, size: int = 64 * 1024) -> RawDocument:
    """A document of about `size` bytes, so that a write takes long enough to be interrupted."""
    return RawDocument(name, status_bytes(name, note * (size // max(len(note), 1))))


def scratch_files(directory: os.PathLike[str] | str) -> list[str]:
    return sorted(name for name in os.listdir(directory) if scratch_key(name) is not None)


def lock_name(domain: str) -> str:
    """The name of domain `domain`'s lock file."""
    return lock_file_of(Path(f"{domain}.xml")).name


def without_dac_override() -> None:
    """preexec_fn: make a root child obey file permissions, as an unprivileged daemon would."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def scratch_name(domain: str, token: str = "fedcba9876543210") -> str:
    """The name of a scratch file a save of domain `domain` writes (or a crash leaves)."""
    return f".blockjob-{lock_name(domain)[len('.blockjob-'):-len('.lock')]}.{token}.tmp"


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`chattr +i path` for the block (no one may unlink it), or skip the test where the
    file system or the privileges do not allow it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        flags = bytearray(8)
        try:
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
            old = int.from_bytes(flags, "little")
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, (old | _FS_IMMUTABLE_FL).to_bytes(8, "little"))
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
                pytest.skip(f"cannot make a file immutable here: {exc.strerror}")
            raise
        try:
            yield
        finally:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, old.to_bytes(8, "little"))
    finally:
        os.close(fd)


@contextlib.contextmanager
def child_process(body: Callable[[], object]) -> Iterator[int]:
    """Fork a child running `body` (exit 0, or 1 if it raised); killed if the test leaves early.

    The child never returns into pytest, and a failing test cannot leave it running (it
    would hold pytest's output pipe open).
    """
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        finally:
            os._exit(code)
    try:
        yield pid
    finally:
        with contextlib.suppress(ChildProcessError):  # already reaped by the test
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def exit_code(pid: int, timeout: float = 60) -> int:
    """The child's exit code; a child still running after a generous `timeout` fails the test."""
    deadline = time.monotonic() + timeout
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        assert time.monotonic() < deadline, f"child {pid} hangs (deadlocked?)"
        time.sleep(0.005)
    return os.waitstatus_to_exitcode(done[1])
