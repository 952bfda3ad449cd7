"""A directory of status files, one `<domain name>.xml` per domain, safe against crashes.

`save` replaces a file atomically (see `blockjob.store.atomic`), so a daemon killed mid-write leaves
the previous version or the new one. `load_all`, run at daemon start, isolates bad files: each
one is reported and moved to `quarantine/`, never deleted, and the other domains still load.

Besides `*.xml`, the directory holds `.lock` and, per domain, a hidden scratch file
`.blockjob-<hash>.tmp` with the previous version, which the next save overwrites.

Two locks, always taken in this order:
- `owned(name)`: the per-domain owner lock, a `flock` of `<directory>/.<name>.lock` held
  from before a read until after the last save of a read-modify-write, so two processes
  changing one domain never lose an update. Waiting for it is bounded by a timeout.
- the directory lock, `<directory>/.lock`, held only for the instant of a write and by
  `load_all`, which must exclude writers while it removes scratch files and quarantines.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from blockjob.errors import BlockJobError, InputError, StatusXMLError
from blockjob.inputs import MAX_INPUT_BYTES, read_file
from blockjob.statusxml.document import StatusDocument, loads
from blockjob.store.atomic import fsync_directory, remove_scratch_files, replace_file
from blockjob.store.lock import FileLock

SUFFIX = ".xml"
QUARANTINE = "quarantine"
LOCK = ".lock"
# How long `owned` waits for another owner by default: long enough to ride out a save or a
# short recovery, short enough that a stuck owner is reported rather than waited on forever.
OWNER_TIMEOUT = 10.0
_OWNER_POLL = 0.01

Loader = Callable[[bytes, str], StatusDocument]


class SavableDocument(Protocol):
    """What `save` needs: the domain name (file name) and the bytes to write."""

    @property
    def domain_name(self) -> str | None: ...

    def dumps(self) -> bytes: ...


class StoreError(BlockJobError):
    """A status file could not be written or read (I/O), or the store was misused."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        super().__init__(f"{os.fspath(path)}: {message}")
        self.path = os.fspath(path)
        self.message = message


class DomainNameError(StoreError):
    """The domain name is missing, or cannot be a file name in the store."""


class DomainBusyError(StoreError):
    """Another owner held the domain for longer than the caller was willing to wait."""


@dataclass(frozen=True)
class LoadFailure:
    """A status file `load_all` could not load, and where it was moved to."""

    path: Path
    reason: str
    line: int | None = None
    quarantined: Path | None = None  # None if it could not be moved (it is then left in place)

    def __str__(self) -> str:
        return f"{self.path}:{self.line or 0}: {self.reason}"


@dataclass
class LoadReport:
    documents: dict[str, StatusDocument] = field(default_factory=dict)
    failures: list[LoadFailure] = field(default_factory=list)
    removed_scratch_files: list[Path] = field(default_factory=list)


def checked_name(name: str | None, where: str | os.PathLike[str]) -> str:
    """`name` if it can be a status file name, else DomainNameError."""
    if name is None:
        raise DomainNameError(where, "document has no <domain><name>, it cannot be stored")
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise DomainNameError(where, f"domain name {name!r} cannot be used as a file name")
    return name


def read_status_bytes(path: Path, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file under the input policy (`blockjob.inputs`), without
    following a symlink: a status file is never a link to somewhere else."""
    try:
        return read_file(path, max_bytes=max_bytes, follow_symlinks=False)
    except InputError as exc:
        raise StoreError(path, exc.message) from None


class StatusStore:
    """Status files of a directory. `loader` turns bytes and a file name into a document;
    files over `max_bytes` are refused (the input policy, `blockjob.inputs`)."""

    def __init__(self, directory: str | os.PathLike[str], loader: Loader = loads, *,
                 max_bytes: int = MAX_INPUT_BYTES) -> None:
        self.directory = Path(directory)
        self._loader = loader
        self.max_bytes = max_bytes
        self._lock = FileLock(self.directory / LOCK)
        self._directory_made = False

    def path_for(self, name: str) -> Path:
        return self.directory / f"{checked_name(name, self.directory)}{SUFFIX}"

    @contextlib.contextmanager
    def owned(self, name: str, *, timeout: float = OWNER_TIMEOUT) -> Iterator[DomainOwner]:
        """Own domain `name` for a read-modify-write: load under its lock, save through it.

        Waits at most `timeout` seconds for another owner (thread or process), then raises
        DomainBusyError. The lock is released when the block ends, however it ends.
        """
        path = self.path_for(name)
        self._make_directory()
        lock_path = self.directory / f".{name}{LOCK}"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(lock_path, f"cannot open lock: {exc.strerror or exc}") from None
        try:
            _flock_within(fd, timeout, lock_path, name)
            yield DomainOwner(self, name, path)
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def save(self, doc: SavableDocument) -> Path:
        """Write `doc` as its domain's file, owning the domain for just this write.

        A caller that read the file first must use `owned` instead, or it can lose an update.
        """
        name = checked_name(doc.domain_name, self.directory)
        with self.owned(name) as owner:
            return owner.save(doc)

    def _make_directory(self) -> None:
        if self._directory_made:
            return
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(self.directory, f"cannot create: {exc.strerror or exc}") from None
        self._directory_made = True

    def _write(self, path: Path, data: bytes) -> None:
        """The one place that writes a status file."""
        try:
            with self._lock.held():
                replace_file(path, data)
        except OSError as exc:
            raise StoreError(path, f"cannot save: {exc.strerror or exc}") from None

    def load(self, name: str) -> StatusDocument:
        """The document of domain `name`; StoreError or StatusXMLError when it cannot be loaded."""
        return self._load_file(self.path_for(name), name)

    def _load_file(self, path: Path, name: str) -> StatusDocument:
        doc = self._loader(read_status_bytes(path, self.max_bytes), str(path))
        # The file name is the key the daemon finds the domain by; a file claiming another
        # domain would shadow or duplicate that domain's real file.
        if checked_name(doc.domain_name, path) != name:
            raise DomainNameError(
                path, f"file is named for domain {name!r} but holds domain {doc.domain_name!r}"
            )
        return doc

    def load_all(self) -> LoadReport:
        """Load every `*.xml`; quarantine each file that fails instead of stopping or deleting."""
        report = LoadReport()
        if not self.directory.is_dir():
            return report
        try:
            with self._lock.held():
                report.removed_scratch_files = remove_scratch_files(self.directory)
                for path in self._status_files():
                    self._load_one(path, report)
                if any(failure.quarantined for failure in report.failures):
                    fsync_directory(self.directory / QUARANTINE)
                    fsync_directory(self.directory)
        except OSError as exc:
            raise StoreError(self.directory, f"cannot load: {exc.strerror or exc}") from None
        return report

    def _status_files(self) -> list[Path]:
        with os.scandir(self.directory) as entries:
            return sorted(Path(e.path) for e in entries if e.name.endswith(SUFFIX))

    def _load_one(self, path: Path, report: LoadReport) -> None:
        name = path.name[: -len(SUFFIX)]
        try:
            report.documents[name] = self._load_file(path, name)
        except StatusXMLError as exc:
            report.failures.append(self._quarantine(path, exc.message, exc.line))
        except StoreError as exc:
            report.failures.append(self._quarantine(path, exc.message, None))

    def _quarantine(self, path: Path, reason: str, line: int | None) -> LoadFailure:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        try:
            folder = self.directory / QUARANTINE
            folder.mkdir(mode=0o700, exist_ok=True)
            target = folder / f"{path.name}.{stamp}"
            serial = 0
            while os.path.lexists(target):  # same microsecond; we hold the lock
                serial += 1
                target = folder / f"{path.name}.{stamp}.{serial}"
            os.rename(path, target)
        except OSError as exc:
            return LoadFailure(path, f"{reason} (left in place: cannot quarantine: "
                                     f"{exc.strerror or exc})", line)
        return LoadFailure(path, reason, line, target)


def _flock_within(fd: int, timeout: float, lock_path: Path, name: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise DomainBusyError(
                    lock_path, f"domain {name!r} is owned by another process or thread "
                               f"(waited {timeout:g} s)") from None
            time.sleep(_OWNER_POLL)
        except OSError as exc:
            raise StoreError(lock_path, f"cannot lock: {exc.strerror or exc}") from None


class DomainOwner:
    """What `StatusStore.owned` yields: the domain's file, read and saved under its lock."""

    def __init__(self, store: StatusStore, name: str, path: Path) -> None:
        self.store = store
        self.name = name
        self.path = path

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def load(self) -> StatusDocument:
        """The document as saved now (StoreError or StatusXMLError when it cannot be loaded)."""
        return self.store._load_file(self.path, self.name)

    def save(self, doc: SavableDocument) -> Path:
        """Write `doc`; it must be this domain's document. On StoreError the old file is intact."""
        if checked_name(doc.domain_name, self.path) != self.name:
            raise DomainNameError(
                self.path, f"document of domain {doc.domain_name!r} saved as {self.name!r}")
        self.store._write(self.path, doc.dumps())
        return self.path
