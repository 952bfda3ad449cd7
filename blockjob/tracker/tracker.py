"""A running daemon's view of one domain: its file, its lock, its QEMU, its jobs' events.

libvirt handles a `JOB_STATUS_CHANGE` by mapping QEMU's status, saving it as the
job's `newstate`, and then running the job's finishing steps (its
`qemuBlockJobUpdate`); after a restart it does the same from `query-jobs`. Here
both are literally one code path: every followed event, and every job at connect
time, goes through `recovery.reconcile_job`, which observes QEMU now and runs the
plan recovery would run. Events QEMU sent while nobody listened are thus caught up
at connect, and a tracker killed anywhere leaves what the next one (or `recover`)
finishes. README section `Live tracking` has the table of events and requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from blockjob.errors import StatusXMLError
from blockjob.jobs.abort import AbortHook, request_abort
from blockjob.jobs.active_commit import start_active_commit
from blockjob.jobs.commit import CrashHook, no_crash, start_commit
from blockjob.jobs.pivot import PivotHook, request_pivot
from blockjob.jobs.requests import RequestError, save_new_job
from blockjob.model import BlockJob, JobState, JobType, StorageSource
from blockjob.qemu.monitor import (
    Monitor,
    MonitorUnavailableError,
    QMPCommandError,
    check_waits,
    deadline_after,
    unsafe_streams,
)
from blockjob.recovery.execute import Context, StepHook, run_step
from blockjob.recovery.plan import (
    CANCELLABLE,
    failed_sibling,
    is_unresolved_record,
    job_kind,
    merge_step,
)
from blockjob.recovery.report import JobReport
from blockjob.recovery.run import reconcile_job, recover_document
from blockjob.statusxml.document import StatusDocument
from blockjob.statusxml.sources import disk_mirror_node
from blockjob.store.errors import StoreError
from blockjob.store.status_store import (
    OWNER_TIMEOUT,
    DomainOwner,
    LoadFailure,
    SavableDocument,
    StatusStore,
)

# The QEMU statuses libvirt acts on (SPEC: "maps only ready, concluded and pending").
FOLLOWED_STATUSES = frozenset({"ready", "pending", "concluded"})
SaveHook = Callable[[StatusDocument], None]


class JobTracker:
    """Owns domain `name` of `store` (file, lock, QMP connection) while open.

    Use as a context manager. Opening takes the domain's lock (another owner, e.g.
    `blockjob recover`, then waits and reports the domain busy), loads the file,
    connects to its QEMU and catches up every recorded job. Then `follow` handles
    events; `start_commit`, `start_active_commit`, `pivot`, `abort` and `add_job`
    are the daemon's requests. `reports` collects what each reconcile did.
    """

    def __init__(
        self, store: StatusStore, name: str, *, lock_timeout: float = OWNER_TIMEOUT,
        connect_timeout: float = 5.0, timeout: float = 30.0,
        on_step: StepHook | None = None, on_save: SaveHook | None = None,
    ) -> None:
        check_waits(timeout, connect_timeout)
        self.store = store
        self.name = name
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.on_step = on_step
        self.on_save = on_save
        self.reports: list[JobReport] = []
        # Failed end-state checks of the catch-up at open (recovery's verification).
        self.failed_checks: list[str] = []
        # Scratch files a crashed save of the file left, removed at open (as a directory
        # scan removes them), and a failure for each one that could not be.
        self.removed_scratch_files: list[Path] = []
        self.left_in_place: list[LoadFailure] = []
        self._stack = ExitStack()
        self._doc: StatusDocument | None = None
        self._monitor: Monitor | None = None
        self._owner: DomainOwner | None = None

    # -- life ------------------------------------------------------------------

    def __enter__(self) -> JobTracker:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Own the domain and catch up; on any failure the domain is released again, so
        the daemon (or `blockjob recover`) can try again."""
        if self._monitor is not None:
            raise RuntimeError("the tracker is open already")  # and stays so
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        owner = self._stack.enter_context(
            self.store.owned(self.name, timeout=self.lock_timeout))
        if self.on_save is not None:
            owner.on_save = self._saved
        self._owner = owner
        self.removed_scratch_files, self.left_in_place = owner.remove_leftovers()
        self._doc = owner.load()
        if not self._doc.monitor_path:
            raise MonitorUnavailableError(str(owner.path), "the status file names no <monitor>")
        self._monitor = self._stack.enter_context(Monitor.connect(
            self._doc.monitor_path, timeout=self.timeout, connect_timeout=self.connect_timeout))
        self.catch_up()

    def _saved(self, doc: SavableDocument) -> None:
        if self.on_save is not None and isinstance(doc, StatusDocument):
            self.on_save(doc)

    def close(self) -> None:
        """Disconnect and release the domain (the file stays as last saved)."""
        self._stack.close()
        self._monitor = None

    @property
    def doc(self) -> StatusDocument:
        if self._doc is None:
            raise RuntimeError("the tracker is not open")
        return self._doc

    @property
    def monitor(self) -> Monitor:
        if self._monitor is None:
            raise RuntimeError("the tracker is not open")
        return self._monitor

    @property
    def owner(self) -> DomainOwner:
        if self._owner is None:
            raise RuntimeError("the tracker is not open")
        return self._owner

    # -- the state machine -----------------------------------------------------

    def reconcile(self, name: str, *, acknowledge: bool = False) -> JobReport:
        """Observe job `name` and run recovery's plan for it (newstate saved first)."""
        with self._as_the_file():
            report = reconcile_job(self.doc, self.owner, self.monitor, name,
                                   on_step=self.on_step, acknowledge=acknowledge)
        self.reports.append(report)
        return report

    @contextmanager
    def _as_the_file(self) -> Iterator[None]:
        """After a failed save the document is read again: edits no save reached would
        ride on the next save, and after a StoreConflictError (libvirt rewrote the file)
        every later save would be refused until the file is read again. The next request
        or event then works on what the file says, and looks at QEMU again."""
        try:
            yield
        except StoreError:
            self._read_again()
            raise

    def _read_again(self) -> None:
        """The document as the file is now (kept as it is when the file cannot be read)."""
        with suppress(StoreError, StatusXMLError):
            self._doc = self.owner.load()

    def catch_up(self) -> None:
        """What a restart does: `recover_document` (what `blockjob recover` runs, which
        also asks again an abort or an active commit's pivot that was recorded but never
        reached QEMU), then a copy's pivot asked again the same way (`pivot` checks that
        its backing chain is open, which recovery cannot)."""
        reports, self.failed_checks = recover_document(
            self.doc, self.owner, self.monitor, on_step=self.on_step)
        self.reports += reports
        if self.failed_checks or any(report.error for report in reports):
            # A step or the last save may have failed (recovery reports it, and goes on):
            # what no save reached must not ride on the next save, nor show jobs as ended.
            self._read_again()
        jobs = self.monitor.query_jobs()
        for job in self.doc.jobs:
            status = jobs[job.name].status if job.name in jobs else None
            if job.type is JobType.COPY and job.state is JobState.PIVOTING \
                    and status == "ready":
                with self._reported(job.name, f"{job.state} asked again", status):
                    self.pivot(job.name)

    @contextmanager
    def _reported(self, name: str, what: str, status: str | None) -> Iterator[None]:
        """A request of the tracker's own that QEMU refuses, or that finds the job ended
        meanwhile, is a `reports` entry, not raised: the domain stays tracked, the job's
        own events end it, and a lost QEMU is still raised."""
        try:
            yield
        except (RequestError, QMPCommandError) as exc:
            self.reports.append(JobReport(name, what, status, error=str(exc)))

    def handle(self, event: Mapping[str, Any]) -> bool:
        """Act on one QMP event; True if it was a followed status change of a recorded job."""
        if event.get("event") != "JOB_STATUS_CHANGE":
            return False
        data = event.get("data")
        if not isinstance(data, Mapping):
            return False  # not the event QMP documents
        name, status = str(data.get("id", "")), str(data.get("status", ""))
        job = self.doc.job(name)
        if status not in FOLLOWED_STATUSES or job is None:
            return False  # libvirt ignores other statuses and jobs it did not start
        if job.type is JobType.BACKUP and status == "concluded":
            self._cancel_backup_with(name)
        self._finish_concluded_pulls(name)
        self.reconcile(name)
        return True

    def _finish_concluded_pulls(self, name: str) -> None:
        """Finish first the recorded pulls whose stream job concluded, as a restart does
        (`recover_document`): until it is dismissed the node graph cannot be asked (README
        `QEMU care`), and job `name`'s finish, or its pivot's merge, asks for it. The pull's
        own event may still be queued: two disks' jobs ending together."""
        for stream in unsafe_streams(self.monitor.query_jobs()):
            pull = self.doc.job(stream)
            if stream != name and pull is not None and job_kind(pull) is JobType.PULL:
                self.reconcile(stream)

    def _cancel_backup_with(self, ended: str) -> None:
        """libvirt cancels a backup's jobs still running once one of them failed or was
        cancelled (recovery's `cancel-with-backup`, judged the same way). Each is recorded
        aborting and cancelled before the ended job leaves the file: a daemon killed in
        between finds them aborting, where a restart would otherwise adopt them. One that
        ends before its cancel lands is finished by its own event."""
        jobs = self.monitor.query_jobs()
        for job in self.doc.jobs:
            qjob = jobs.get(job.name)
            if job.type is JobType.BACKUP and job.name != ended \
                    and job.state is not JobState.ABORTING \
                    and qjob is not None and qjob.status in CANCELLABLE \
                    and failed_sibling(self.doc, job, jobs) is not None:
                with self._reported(job.name, "cancel-with-backup", qjob.status):
                    self.abort(job.name)

    def follow(self, timeout: float) -> int:
        """Handle the events that arrive within `timeout` seconds; how many were followed.
        A lost connection (QEMU gone) raises MonitorUnavailableError at once."""
        deadline = deadline_after(timeout)
        handled = 0
        while (remaining := deadline - time.monotonic()) > 0:
            event = self.monitor.next_event(remaining)
            if event is not None:
                handled += self.handle(event)
        return handled

    def wait_for(
        self, check: Callable[[StatusDocument], bool], timeout: float = 60.0
    ) -> bool:
        """Follow events until `check(doc)` holds; False if `timeout` passed first."""
        deadline = deadline_after(timeout)
        while not check(self.doc):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            event = self.monitor.next_event(remaining)
            if event is not None:
                self.handle(event)
        return True

    # -- requests ----------------------------------------------------------------

    def add_job(self, job: BlockJob, *, mirror: StorageSource | None = None) -> None:
        """Record a job the daemon started itself in QEMU (any type); it is then followed,
        and caught up at once in case it already changed status. `mirror`: a copy's
        target image, written as the disk's `<mirror job='copy'>` in the same save."""
        if mirror is not None and job.disk is None:
            raise RequestError(f"job '{job.name}' has a mirror but no disk")
        try:
            self.doc.add_job(job)
        except ValueError as exc:  # a name taken, a disk unknown or busy: nothing changed
            raise RequestError(f"cannot add: {exc}") from None
        if mirror is not None and job.disk is not None:
            self.doc.set_disk_chain(job.disk, mirror=disk_mirror_node(mirror, job.type,
                                                                       ready=False))
        with self._as_the_file():
            save_new_job(self.owner, self.doc, job, mirror=mirror is not None)
        self.reconcile(job.name)

    def start_commit(
        self, disk: str, top: str, base: str, *, speed: int = 0, crash: CrashHook = no_crash,
        disable_base_bitmaps: bool = True,
    ) -> BlockJob:
        """Start a commit of `top` into `base` (node names of disk `disk`), crash-safe
        (`blockjob.jobs.commit.start_commit`, also for `disable_base_bitmaps`)."""
        with self._as_the_file():
            return start_commit(self.owner, disk, top, base, doc=self.doc,
                                monitor=self.monitor, speed=speed, crash=crash,
                                disable_base_bitmaps=disable_base_bitmaps)

    def start_active_commit(
        self, disk: str, base: str, *, speed: int = 0, crash: CrashHook = no_crash,
        disable_base_bitmaps: bool = True,
    ) -> BlockJob:
        """Start an active commit of disk `disk`'s top image into `base`; it is followed
        to `ready`, then ends with `pivot` or `abort`."""
        with self._as_the_file():
            return start_active_commit(self.owner, self.doc, disk, base,
                                       monitor=self.monitor, speed=speed, crash=crash,
                                       disable_base_bitmaps=disable_base_bitmaps)

    def pivot(self, name: str, *, crash: PivotHook | None = None) -> list[str]:
        """Pivot ready job `name`; returns bitmaps the merge skipped. The finish follows
        with the job's `concluded` event (`follow`, `wait_for`)."""
        self._finish_concluded_pulls(name)  # the merge asks for the node graph
        with self._as_the_file():
            return request_pivot(self.owner, self.doc, name, self.monitor,
                                 merge=self._merge, crash=crash)[1]

    def _merge(self, job: BlockJob) -> list[str]:
        """Recovery's own merge step, run before `job-complete` as libvirt 6.2 does."""
        step = merge_step(self.doc, job)
        if step is None:
            return [f"job '{job.name}': its images are not in the file; nothing merged"]
        ctx = Context(self.doc, self.owner, self.monitor)
        if self.on_step is not None:
            self.on_step(step)
        run_step(ctx, step)
        return ctx.problems

    def abort(self, name: str, *, crash: AbortHook | None = None) -> None:
        """Cancel job `name`; it finishes as `cancelled` with its `concluded` event."""
        with self._as_the_file():
            request_abort(self.owner, self.doc, name, self.monitor, crash=crash)

    def acknowledge(self, name: str) -> JobReport:
        """Let go of record `name`, of listed bitmaps that could not be re-enabled: what
        `blockjob recover --acknowledge` does, for a domain this tracker holds (the
        command would wait for its lock). Its bitmaps are tried once more first."""
        job = self.doc.job(name)
        if job is None or not is_unresolved_record(self.doc, job):
            raise RequestError(f"job '{name}' is not a record of bitmaps that could not be "
                               f"re-enabled; only such a record can be acknowledged")
        return self.reconcile(name, acknowledge=True)
