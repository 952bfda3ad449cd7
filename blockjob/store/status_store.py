"""A directory of status files, one `<domain name>.xml` per domain, safe against crashes.

`save` replaces a file atomically (see `blockjob.store.atomic`): a daemon killed mid-write
leaves the previous version or the new one, and a reader without any lock reads one whole
version. `scan` and `load_all`, run at daemon start, apply the directory rules of the README
(section "Status store"): each bad file is reported and moved to `quarantine/`, never
deleted, and the other domains still load.

Besides `*.xml` and `quarantine/`, the directory holds per status file a lock file
`.blockjob-<key>.lock` and, only while a save runs (or after a crash), scratch files
`.blockjob-<key>.<token>[.old].tmp`; `<key>` is a hash of the file name.

`owned(name)` is the per-domain owner lock (`blockjob.store.lock`), held from before a read
until after the last save of a read-modify-write, so two processes changing one domain never
lose an update. Every write of a status file, and every quarantine, happens under it.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from blockjob.errors import InputError, StatusXMLError
from blockjob.inputs import MAX_INPUT_BYTES, read_file_and_stat
from blockjob.statusxml.document import StatusDocument, loads
from blockjob.store.atomic import (
    FileChangedError,
    Version,
    fsync_directory,
    key_of,
    make_directories,
    replace_file,
    version_of,
)
from blockjob.store.directory import (
    QUARANTINE,
    LoadFailure,
    quarantine,
    remove_leftovers,
    remove_own_leftovers,
)
from blockjob.store.errors import (
    EXHAUSTED,
    DomainBusyError,
    DomainNameError,
    StoreConflictError,
    StoreError,
    StoreExhaustedError,
)
from blockjob.store.lock import held, lock_file_of

__all__ = [
    "QUARANTINE", "SUFFIX", "DomainBusyError", "DomainNameError", "DomainOwner", "LoadFailure",
    "LoadReport", "ScanReport", "StatusStore", "StoreConflictError", "StoreError",
    "StoreExhaustedError", "read_status_bytes",
]

SUFFIX = ".xml"
# Saved status files are readable and writable by their owner only, like libvirt's.
FILE_MODE = 0o600
# How long `owned` waits for another owner by default: long enough to ride out a save or a
# short recovery, short enough that a stuck owner is reported rather than waited on forever.
OWNER_TIMEOUT = 10.0

_KNOWN_FILES = 4096  # names whose paths a store remembers

Loader = Callable[[bytes, str], StatusDocument]


class SavableDocument(Protocol):
    """What a save needs: the domain name (file name) and the bytes to write."""

    @property
    def domain_name(self) -> str | None: ...

    def dumps(self) -> bytes: ...


@dataclass
class ScanReport:
    """The domains of a directory whose files load, and the files that do not."""

    domains: list[str] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)
    removed_scratch_files: list[Path] = field(default_factory=list)


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
    if not name.isascii():  # (an O(1) check: saves pass here)
        try:
            os.fsencode(name)
        except UnicodeEncodeError:  # e.g. a lone surrogate: no file name stands for it
            raise DomainNameError(where, f"domain name {name!r} cannot be encoded as a file "
                                         f"name") from None
    return name


def read_status_bytes(path: str | os.PathLike[str], max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file under the input policy (`blockjob.inputs`), without
    following a symlink: a status file is never a link to somewhere else."""
    return read_status_file(path, max_bytes)[0]


def read_status_file(path: str | os.PathLike[str],
                     max_bytes: int = MAX_INPUT_BYTES) -> tuple[bytes, Version]:
    """`read_status_bytes`, with the version read (`blockjob.store.atomic.version_of`)."""
    try:
        data, info = read_file_and_stat(path, max_bytes=max_bytes, follow_symlinks=False)
    except InputError as exc:
        error = StoreExhaustedError if exc.errno in EXHAUSTED else StoreError
        raise error(path, exc.message) from None
    return data, version_of(info)


class StatusStore:
    """Status files of a directory. `loader` turns bytes and a file name into a document;
    files over `max_bytes` are refused (the input policy, `blockjob.inputs`)."""

    def __init__(self, directory: str | os.PathLike[str], loader: Loader = loads, *,
                 max_bytes: int = MAX_INPUT_BYTES) -> None:
        self.directory = Path(directory)
        self._loader = loader
        self.max_bytes = max_bytes
        self._directory_made = False
        # name -> (status file, lock file): building them costs a third of `owned`. The lock
        # as a string: the lock's syscalls would convert a Path each time.
        self._files: dict[str, tuple[Path, str]] = {}

    def path_for(self, name: str) -> Path:
        return self._files_of(name)[0]

    def _files_of(self, name: str) -> tuple[Path, str]:
        files = self._files.get(name)
        if files is None:
            path = self.directory / f"{checked_name(name, self.directory)}{SUFFIX}"
            if len(self._files) >= _KNOWN_FILES:
                self._files.clear()
            files = self._files[name] = (path, os.fspath(lock_file_of(path)))
        return files

    @contextlib.contextmanager
    def owned(self, name: str, *, timeout: float = OWNER_TIMEOUT) -> Iterator[DomainOwner]:
        """Own domain `name` for a read-modify-write: load under its lock, save through it.

        Waits at most `timeout` seconds for another owner (thread or process), then raises
        DomainBusyError. The lock is released when the block ends, however it ends; the
        owner refuses to load or save after that, and in a forked child.
        """
        if not timeout >= 0:  # NaN too: it would never reach a deadline
            raise ValueError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
        path, lock = self._files_of(name)
        self._make_directory()
        with held(lock, timeout, f"domain {name!r}"):
            owner = DomainOwner(self, name, path)
            owner._held = True
            try:
                yield owner
            finally:
                owner._held, owner._released = False, True

    def save(self, doc: SavableDocument) -> Path:
        """Write `doc` as its domain's file, owning the domain for just this write.

        A caller that read the file first must use `owned` instead, or it can lose an update.
        """
        name = checked_name(doc.domain_name, self.directory)
        path, lock = self._files_of(name)
        data = self._bytes_of(doc, path)
        self._make_directory()
        # The lock alone, not an owner: nothing is read, and nothing outlives the write.
        with held(lock, OWNER_TIMEOUT, f"domain {name!r}"):
            self._write(path, data, owned=False)
        return path

    def load(self, name: str) -> StatusDocument:
        """The document of domain `name`; StoreError or StatusXMLError when it cannot be loaded.

        No lock is needed to read a whole version; a read-modify-write must use `owned`.
        """
        return self._load_file(self.path_for(name), name)[0]

    def scan(self, *, change: bool = True) -> ScanReport:
        """The domains whose files load, after applying the directory rules (README).

        With `change=False` (a dry run) the rules are only reported: nothing is quarantined
        and no leftover scratch file is removed.
        """
        report = ScanReport()
        report.failures, report.removed_scratch_files = self._sweep(
            lambda name, doc: report.domains.append(name), change=change)
        return report

    def load_all(self) -> LoadReport:
        """`scan`, keeping the documents that loaded."""
        report = LoadReport()
        report.failures, report.removed_scratch_files = self._sweep(report.documents.__setitem__)
        return report

    def _make_directory(self) -> None:
        if self._directory_made:
            return
        try:
            make_directories(self.directory, 0o700)
        except OSError as exc:
            raise StoreError(self.directory, f"cannot create: {exc.strerror or exc}") from None
        self._directory_made = True

    def _bytes_of(self, doc: SavableDocument, path: Path) -> bytes:
        """What saving `doc` as `path` writes; StoreError if a load would refuse it."""
        data = doc.dumps()
        if len(data) > self.max_bytes:
            raise StoreError(path, f"cannot save: {len(data)} bytes, larger than "
                                   f"{self.max_bytes}, the size limit")
        return data

    def _write(self, path: Path, data: bytes, *, owned: bool,
               expected: Version | None = None) -> Version | None:
        """The one place that writes a status file; the caller owns its domain. `owned`: an
        owner's save (`replace_file`), `expected` the version it read or saved last."""
        try:
            return replace_file(path, data, FILE_MODE, owned=owned, expected=expected)
        except FileChangedError as exc:
            raise StoreConflictError(
                path, f"not saved: the file was {exc.how} since this owner read or saved it, "
                      f"by a writer that does not take the store's lock (libvirt?); load it "
                      f"again") from None
        except OSError as exc:
            raise StoreError(path, f"cannot save: {exc.strerror or exc}") from None

    def _load_file(self, path: str | Path, name: str) -> tuple[StatusDocument, Version]:
        data, version = read_status_file(path, self.max_bytes)
        doc = self._loader(data, os.fspath(path))
        # The file name is the key the daemon finds the domain by; a file claiming another
        # domain would shadow or duplicate that domain's real file.
        if checked_name(doc.domain_name, path) != name:
            raise DomainNameError(
                path, f"file is named for domain {name!r} but holds domain {doc.domain_name!r}"
            )
        return doc, version

    def _sweep(
        self, loaded: Callable[[str, StatusDocument], object], *, change: bool = True
    ) -> tuple[list[LoadFailure], list[Path]]:
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return [], []  # no domain saved yet
        except OSError as exc:
            raise StoreError(self.directory,
                             f"cannot list directory: {exc.strerror or exc}") from None
        removed, failures = remove_leftovers(self.directory, names) if change else ([], [])
        # Each file's name as `self.directory / file_name` spells it ("x.xml" in "."), made
        # by concatenation: a Path per file costs about 1% of its load.
        prefix = str(self.directory / "_")[:-1]
        for file_name in names:
            if not file_name.endswith(SUFFIX):
                continue
            name = file_name[: -len(SUFFIX)]
            try:
                # Without a lock: saves never expose a partial file. Only a file that
                # fails is checked again under its lock before it is moved.
                loaded(name, self._load_file(prefix + file_name, name)[0])
            except (StatusXMLError, StoreError) as exc:
                path = self.directory / file_name
                if not change:
                    line = exc.line if isinstance(exc, StatusXMLError) else None
                    failures.append(LoadFailure(path, exc.message, line, exhausted=isinstance(
                        exc, StoreExhaustedError)))
                    continue
                failure = self._settle(path, name, loaded)
                if failure is not None:
                    failures.append(failure)
        if any(failure.quarantined for failure in failures):
            try:
                fsync_directory(self.directory / QUARANTINE)
                fsync_directory(self.directory)
            except OSError as exc:
                raise StoreError(self.directory, f"cannot load: {exc.strerror or exc}") from None
        return failures, removed

    def _settle(
        self, path: Path, name: str, loaded: Callable[[str, StatusDocument], object]
    ) -> LoadFailure | None:
        """Under the file's lock: load it once more, and quarantine it if it still fails."""
        try:
            with held(lock_file_of(path), OWNER_TIMEOUT, f"status file {path.name!r}"):
                try:
                    loaded(name, self._load_file(path, name)[0])
                    return None  # an owner saved a good version meanwhile
                except StatusXMLError as exc:
                    reason, line = exc.message, exc.line
                except StoreExhaustedError as exc:  # the file may be fine: a later scan
                    return LoadFailure(path, f"left in place: {exc.message}", exhausted=True)
                except StoreError as exc:
                    if not os.path.lexists(path):
                        return None  # removed meanwhile: nothing to load or to move
                    reason, line = exc.message, None
                try:
                    return LoadFailure(path, reason, line, quarantine(path))
                except OSError as exc:
                    return LoadFailure(path, f"{reason} (left in place: cannot quarantine: "
                                             f"{exc.strerror or exc})", line)
        except DomainBusyError as exc:
            return LoadFailure(path, f"left in place: {exc.message}")
        except StoreError as exc:  # the lock cannot be opened or taken: the error names it
            return LoadFailure(path, f"left in place: {exc}")


class DomainOwner:
    """What `StatusStore.owned` yields: the domain's file, read and saved under its lock.

    One built directly (not by `owned`) can only read: a save needs the lock. `on_save`, if
    set, is called with each document after it is saved (tests record the order).
    """

    def __init__(self, store: StatusStore, name: str, path: Path) -> None:
        self.store = store
        self.name = name
        self.path = path
        self.on_save: Callable[[SavableDocument], object] | None = None
        self._pid = os.getpid()
        self._held = False  # set by `owned` while its block runs
        self._released = False
        self._version: Version | None = None  # of the file as last loaded or saved here
        # Documents read or saved through this owner: only those may be changed and saved
        # by a flow that must own the domain from before it reads (`holds`).
        self._documents: weakref.WeakSet[object] = weakref.WeakSet()

    def exists(self) -> bool:
        self._check()
        return os.path.lexists(self.path)

    def load(self) -> StatusDocument:
        """The document as saved now (StoreError or StatusXMLError when it cannot be loaded)."""
        self._check()
        doc, self._version = self.store._load_file(self.path, self.name)
        self._documents.add(doc)
        return doc

    def save(self, doc: SavableDocument) -> Path:
        """Write `doc`; it must be this domain's document. On StoreError the old file is intact.

        Once this owner has loaded or saved the file, a file that another writer (libvirt,
        which does not take the lock) replaced or removed since is not overwritten:
        StoreConflictError, until `load` reads it again.
        """
        self._check()
        if not self._held:
            raise StoreError(self.path, "not owned: save through StatusStore.owned(name)")
        if checked_name(doc.domain_name, self.path) != self.name:
            raise DomainNameError(
                self.path, f"document of domain {doc.domain_name!r} saved as {self.name!r}")
        self._version = self.store._write(self.path, self.store._bytes_of(doc, self.path),
                                          owned=True, expected=self._version)
        self._documents.add(doc)
        if self.on_save is not None:
            self.on_save(doc)
        return self.path

    def remove_leftovers(
        self, names: Iterable[str] | None = None
    ) -> tuple[list[Path], list[LoadFailure]]:
        """Delete the scratch files a crashed save of this domain left, as a directory scan
        does (README "Directory rules"), under the lock this owner holds: those removed, and
        a failure for each one left in place. `names`: the directory's entries, listed at
        any time before (`recover` lists a directory once for all the files it names);
        None: listed now."""
        self._check()
        if not self._held:
            raise StoreError(self.path, "not owned: its scratch files may be a live save's")
        if names is None:
            try:
                names = os.listdir(self.path.parent)
            except OSError as exc:
                return [], [LoadFailure(self.path.parent, f"scratch files not looked for: "
                                                          f"cannot list the directory: "
                                                          f"{exc.strerror or exc}")]
        return remove_own_leftovers(self.path.parent, key_of(self.path.name), names)

    def holds(self, doc: object) -> bool:
        """Whether `doc` was loaded or saved through this owner (so it is the file as owned)."""
        return doc in self._documents

    def _check(self) -> None:
        if self._released:
            raise StoreError(self.path, "the owner's block has ended: own the domain again")
        if os.getpid() != self._pid:
            raise StoreError(self.path, "owned by the parent process, not by this forked child")
