"""A directory of status files, one `<domain name>.xml` per domain, safe against crashes.

`save` replaces a file atomically (see `blockjob.store.atomic`), so a daemon killed mid-write leaves
the previous version or the new one. `load_all`, run at daemon start, isolates bad files: each
one is reported and moved to `quarantine/`, never deleted, and the other domains still load.

Besides `*.xml`, the directory holds `.lock` and, per domain, a hidden scratch file
`.blockjob-<hash>.tmp` with the previous version, which the next save overwrites.

Writers and `load_all` serialize on an advisory `flock` of `<directory>/.lock`. The lock is
per directory, not per domain, because `load_all` must also exclude writers while it removes
their scratch files and moves files into quarantine; a save costs one fsync pair, so
serializing saves of different domains is cheap.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from blockjob.errors import BlockJobError, StatusXMLError
from blockjob.statusxml.document import StatusDocument, loads
from blockjob.store.atomic import fsync_directory, remove_scratch_files, replace_file
from blockjob.store.lock import FileLock

SUFFIX = ".xml"
QUARANTINE = "quarantine"
LOCK = ".lock"
# Real status files are tens of kilobytes; refuse to read a hostile multi-gigabyte one.
MAX_FILE_BYTES = 64 * 1024 * 1024

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


def read_status_bytes(path: Path) -> bytes:
    """The bytes of a regular file, without following a symlink or blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreError(path, f"cannot open: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(path, "not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise StoreError(path, f"{info.st_size} bytes, larger than {MAX_FILE_BYTES}")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise StoreError(path, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)


class StatusStore:
    """Status files of a directory. `loader` turns bytes and a file name into a document."""

    def __init__(self, directory: str | os.PathLike[str], loader: Loader = loads) -> None:
        self.directory = Path(directory)
        self._loader = loader
        self._lock = FileLock(self.directory / LOCK)
        self._directory_made = False

    def path_for(self, name: str) -> Path:
        return self.directory / f"{checked_name(name, self.directory)}{SUFFIX}"

    def save(self, doc: SavableDocument) -> Path:
        """Write `doc` to `<directory>/<domain name>.xml`; on StoreError the old file is intact."""
        path = self.path_for(checked_name(doc.domain_name, self.directory))
        data = doc.dumps()
        try:
            if not self._directory_made:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._directory_made = True
            with self._lock.held():
                replace_file(path, data)
        except OSError as exc:
            raise StoreError(path, f"cannot save: {exc.strerror or exc}") from None
        return path

    def load(self, name: str) -> StatusDocument:
        """The document of domain `name`; StoreError or StatusXMLError when it cannot be loaded."""
        return self._load_file(self.path_for(name), name)

    def _load_file(self, path: Path, name: str) -> StatusDocument:
        doc = self._loader(read_status_bytes(path), str(path))
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
