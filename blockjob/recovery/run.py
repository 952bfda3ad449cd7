"""Recovery of whole domains: own the file, observe QEMU, reconcile every job, verify.

A status file is recovered as the domain its name says (`<domain>.xml`): the domain
is owned (`StatusStore.owned`) from before the file is read until after the last save,
so two recoveries of one domain never lose an update: the second waits, then finds
the work done. A directory is taken through the store's directory rules
(`StatusStore.scan`), so `recover DIR` and `load_all` refuse the same files. A file named
on its own that is not `<domain>.xml` for the domain it holds is refused (attention, file
untouched): it is not the file a daemon would load.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

from blockjob.errors import BlockJobError, InputError, StatusXMLError
from blockjob.inputs import MAX_INPUT_BYTES, check_regular, is_directory
from blockjob.model import BlockJob, JobType
from blockjob.qemu.monitor import (
    CONCLUDED,
    Monitor,
    MonitorError,
    MonitorUnavailableError,
    UnsafeQueryError,
    check_waits,
)
from blockjob.qemu.nodes import effective_node
from blockjob.recovery.execute import (
    Context,
    Probe,
    StepHook,
    delete_images,
    forget,
    run_step,
    save,
)
from blockjob.recovery.parallel import affordable, file_key, run_ordered
from blockjob.recovery.plan import (
    ATTENTION,
    PAUSED,
    Decision,
    JobPlan,
    graph_questions,
    job_kind,
    paused_by_error,
    plan_job,
)
from blockjob.recovery.report import DomainReport, JobReport, RecoveryReport
from blockjob.recovery.steps import Drop, DropMirror, MergeBitmaps, Reenable, Step, describe
from blockjob.recovery.verify import (
    Failure,
    Observed,
    Touched,
    Unusable,
    check_bases,
    check_chains,
    check_domain,
    check_storage,
    legacy_owner,
)
from blockjob.statusxml.document import StatusDocument
from blockjob.statusxml.mirrors import mirror_job_problem
from blockjob.store.status_store import (
    OWNER_TIMEOUT,
    SUFFIX,
    DomainBusyError,
    DomainNameError,
    DomainOwner,
    LoadFailure,
    StatusStore,
    StoreError,
    StoreExhaustedError,
)

ProgressHook = Callable[[DomainReport], None]
# A pending job is finalized, a backup's job cancelled with its backup, a recorded abort or
# pivot asked again, and each planned again (a cancel may leave it pending); more rounds
# than this means QEMU is stuck.
MAX_ROUNDS = 3
_STALE_MIRROR = "stale-mirror"
# Decisions whose steps change the job's status in QEMU: it is planned again after them.
_REPLANNED = frozenset({Decision.FINALIZE, Decision.BACKUP_FAILED, Decision.ASKED_AGAIN})
# Decisions after which the job's disk must match QEMU.
_ENDED = frozenset(Decision) - {Decision.ADOPT, *_REPLANNED, *ATTENTION}


@dataclass(frozen=True)
class _Listed:
    """A status file a scan of a named directory found: the scan removed its leftovers
    already, and one gone when its turn comes was removed since the listing, as libvirt
    removes the file of a domain that shut down."""

    path: Path


# What a recovery run works through: a status file named, one of a directory, or the report
# of a file the directory rules already refused.
_Entry = Path | _Listed | DomainReport


def status_entries(
    paths: Iterable[str | Path], *, dry_run: bool = False, max_bytes: int = MAX_INPUT_BYTES,
) -> list[_Entry]:
    """The status files named, and the domains of named directories by the store's
    directory rules (`StatusStore.scan`: misnamed, second, empty or broken files are
    quarantined, or only reported in a dry run), in file order.

    InputError when a named directory cannot be listed.
    """
    found: list[_Entry] = []
    for path in paths:
        if not _named_directory(path):
            found.append(Path(path))
            continue
        try:
            scan = StatusStore(path, max_bytes=max_bytes).scan(change=not dry_run)
        except StoreError as exc:  # e.g. the directory cannot be listed
            raise InputError(str(path), exc.message) from None
        entries: list[_Entry] = [_Listed(Path(path) / f"{name}{SUFFIX}")
                                 for name in scan.domains]
        entries += [_refused(failure, dry_run) for failure in scan.failures]
        found += sorted(entries, key=lambda entry: str(_entry_path(entry)))
    return found


def _named_directory(path: str | Path) -> bool:
    """Whether `path` is a directory to scan. One that cannot be looked at (a domain that
    shut down since it was named: libvirt removes its file) is taken as a status file:
    `recover_file` reports it unusable, and the domains named with it are still recovered."""
    try:
        return is_directory(path)
    except InputError:
        return False


def _refused(failure: LoadFailure, dry_run: bool) -> DomainReport:
    # A file unread for lack of descriptors or memory needs attention, as a named one.
    report = DomainReport(str(failure.path), unusable=not failure.exhausted)
    moved = f" (moved to {failure.quarantined})" if failure.quarantined else ""
    report.error = f"{failure}{moved}"
    report.settle(dry_run)
    return report


def _entry_path(entry: _Entry) -> Path:
    if isinstance(entry, Path):
        return entry
    return entry.path if isinstance(entry, _Listed) else Path(entry.file)


def _listing(directory: Path) -> tuple[str, ...] | None:
    """The entries of a directory of named status files (a run lists it once for all of
    them); None when it cannot be listed (each file's owner then says why)."""
    try:
        return tuple(os.listdir(directory))
    except OSError:
        return None


# A drop the file makes once the end state is verified: the report of its job (or stale
# mirror), the step, and the job's bitmaps that could not be re-enabled.
_Pending = tuple[JobReport, Drop | DropMirror, tuple[str, ...]]


def _repairs(entry: _Pending) -> bool:
    """Whether a drop repairs what libvirt cannot load: saved even when a check failed."""
    return entry[0].decision in (Decision.INVALID, _STALE_MIRROR)


def _held(doc: StatusDocument, entry: _Pending, disks: set[str | None]) -> BlockJob | None:
    """The ended job `entry` drops, if a failed check about its disk (of `disks`; None:
    one about no single disk) holds it in `doc`, the file as before the drops."""
    step = entry[1]
    job = doc.job(step.job) if isinstance(step, Drop) and not _repairs(entry) else None
    if job is None or not (None in disks or job.disk in disks):
        return None
    return job


class _Run:
    """One domain's recovery: the context plus what verification must look at."""

    def __init__(self, ctx: Context, dry_run: bool, on_step: StepHook | None) -> None:
        self.ctx = ctx
        self.dry_run = dry_run
        self.on_step = on_step
        self.touched: list[Touched] = []
        self.unresolved: set[Unusable] = set()
        self.finished: set[str] = set()
        self.failed: set[str] = set()  # jobs whose steps raised: kept, and not checked
        # What the file lets go of (jobs, stale mirrors) once the end state is verified,
        # each with its report and the job's bitmaps that could not be re-enabled.
        self.pending: list[_Pending] = []
        self.applied: list[_Pending] = []
        # The files to delete with each applied drop that ended a backup.
        self.backup_files: list[tuple[_Pending, list[str]]] = []

    def job(self, report: JobReport) -> None:
        """Plan and run the job's steps into `report`; a pending job is finalized, and a
        backup job cancelled with its backup, then planned again from what QEMU says
        after that."""
        ctx = self.ctx
        ctx.problems, ctx.unresolved, ctx.acknowledged = report.problems, (), report.acknowledged
        for _ in range(MAX_ROUNDS):
            job = ctx.doc.job(report.job)
            if job is None:
                return
            qemu_jobs = ctx.monitor.query_jobs()
            qjob = qemu_jobs.get(report.job)
            # Asked after the jobs, so a job that ends in between is seen gone or concluded.
            asks_roots, asks_backing = graph_questions(job, qjob)
            roots = ctx.monitor.device_roots() if asks_roots else None
            backing = ctx.monitor.backing_of() if asks_backing else None
            plan = plan_job(ctx.doc, job, qjob, roots, backing, qemu_jobs=qemu_jobs)
            self._note(report, plan)
            if plan.problem is not None:
                (ctx.acknowledged if ctx.acknowledge else ctx.problems).append(plan.problem)
            if plan.decision in ATTENTION:
                report.problems.append(plan.note or str(plan.decision))
                return
            if plan.decision is Decision.ADOPT and plan.qemu_status in PAUSED:
                self._paused(report, plan.qemu_status)
            if job.disk is not None and plan.decision in _ENDED:
                self.finished.add(job.disk)
            touched = [s for s in plan.steps if isinstance(s, MergeBitmaps | Reenable)]
            if not self.dry_run:
                # Raises on an error: that is the job's report, and what it left unfinished
                # is not checked (the checks would hold back the other jobs' drops).
                self._steps(report, plan.steps)
            if not self.dry_run or plan.qemu_status in (None, CONCLUDED):
                # A base QEMU's job still writes to (before a planned cancel) may be writable.
                self.touched += touched
            self._unusable(touched)
            if plan.decision not in _REPLANNED or self.dry_run:
                return
        report.error = f"job '{report.job}' is still pending after job-finalize"

    def _paused(self, report: JobReport, status: str) -> None:
        """A job QEMU holds paused may be so by an I/O error (`query-block-jobs` tells):
        that needs an operator, though the file is right (libvirt records it running)."""
        io_status = self.ctx.monitor.io_failures().get(report.job)
        if io_status is not None:
            report.problems.append(paused_by_error(report.job, status, io_status))

    def _unusable(self, touched: list[Touched]) -> None:
        """Keep the job's bitmaps found unusable, each with the base it is on: another
        disk's base may have bitmaps of those names, which verification still checks."""
        self.unresolved.update((effective_node(step.base), name)
                               for step in touched for name in self.ctx.unresolved)

    def _note(self, report: JobReport, plan: JobPlan) -> None:
        report.decision, report.qemu_status, report.note = (
            plan.decision, plan.qemu_status, plan.note)
        report.steps += [describe(step) for step in plan.steps]

    def _steps(self, report: JobReport, steps: Iterable[Step]) -> None:
        for step in steps:
            if isinstance(step, Drop | DropMirror):  # a plan's last step: see `conclude`
                self.pending.append((report, step, self.ctx.unresolved))
                continue
            if self.on_step is not None:
                self.on_step(step)
            run_step(self.ctx, step)
            report.done += 1

    def stale_mirrors(self) -> list[JobReport]:
        """Remove a `<mirror>` libvirt cannot load (empty or unknown job), or one that no
        job of the file owns while no job QEMU runs may be its legacy owner either
        (`legacy_owner`)."""
        reports = []
        owned = {job.disk for job in self.ctx.doc.jobs}
        recorded = {job.name for job in self.ctx.doc.jobs}
        # Asked once, when a disk first needs it: dropping a `<mirror>` changes no QEMU job.
        qemu_jobs = cache(self.ctx.monitor.query_jobs)
        for disk in self.ctx.doc.disks:
            problem = mirror_job_problem(disk.mirror_job)
            if problem is None and (
                    disk.mirror_job is None or disk.target in owned
                    or legacy_owner(disk.mirror_job, qemu_jobs(), recorded)):
                continue  # loadable, and owned or possibly QEMU's (a legacy copy)
            step = DropMirror(disk.target)
            report = JobReport(f"<mirror> of disk {disk.target}", _STALE_MIRROR, None,
                               note=problem or f"<mirror job={disk.mirror_job!r}>: no job "
                               f"in the file or in QEMU owns it")
            report.steps.append(describe(step))
            if not self.dry_run:
                self._steps(report, [step])
            reports.append(report)
        return reports

    def conclude(self, *, mirrors: bool) -> tuple[list[JobReport], list[str]]:
        """Let go of the ended jobs (and, with `mirrors`, of stale `<mirror>`s), verify the
        end state against a fresh observation, and only then save. A failed check keeps
        the ended jobs it is about in the file (`_held`), so the next run finds them,
        checks again, and no run says ok while the state is wrong; the other ended jobs
        leave, else one disk's stale chain kept another disk's finished job for good;
        repairs of what libvirt cannot load (an invalid job, a stale `<mirror>` of a disk
        no kept job owns) are saved either way.
        Returns the stale-mirror reports and the failed checks."""
        ctx = self.ctx
        before = ctx.doc.dumps()
        self._forget(self.pending)
        reports = self.stale_mirrors() if mirrors else []
        self._forget(self.pending)
        failures = self.verify()
        failed = [failure.line for failure in failures]
        if self.dry_run:
            return reports, failed
        done = self.applied
        if failures and not all(map(_repairs, done)):
            ctx.doc.reload(before)  # what the file still holds
            disks = {failure.disk for failure in failures}
            # The held jobs stay, and with them the `<mirror>` of a disk one of them owns.
            held = [job for entry in done if (job := _held(ctx.doc, entry, disks)) is not None]
            names, kept = {job.name for job in held}, {job.disk for job in held}
            done = [entry for entry in done
                    if not (isinstance(step := entry[1], Drop) and step.job in names)
                    and not (isinstance(step, DropMirror) and step.disk in kept)]
            self.applied, self.backup_files = [], []
            self._forget(done, hook=False)
        for entry, paths in self.backup_files:
            # Before the save: a run killed in between finds the backup and deletes again.
            delete_images(ctx.monitor, paths, "backup image", entry[0].problems)
        if done:
            save(ctx)
        for report, _, _ in done:
            report.done += 1
        return reports, failed

    def _forget(self, entries: list[_Pending], *, hook: bool = True) -> None:
        """Apply `entries` (drops) to the document, not saved; `self.pending` is emptied.
        (A dry run has none: its steps are never run.)"""
        ctx = self.ctx
        for entry in entries:
            _, step, unresolved = entry
            if hook and self.on_step is not None:
                self.on_step(step)
            ctx.unresolved = unresolved
            forget(ctx, step)
            self.applied.append(entry)
            if ctx.backup_files:
                self.backup_files.append((entry, ctx.backup_files))
                ctx.backup_files = []
        self.pending = []

    def verify(self) -> list[Failure]:
        """The end state, from a fresh observation (in a dry run: the state as found),
        asked after the last step: jobs first, then the node graph, its edges and the
        devices, all in one batch while no stream job can exist (`Monitor.observe`)."""
        try:
            seen = Observed(*self.ctx.monitor.observe())
        except MonitorError as exc:
            if self.dry_run and isinstance(exc, UnsafeQueryError):
                # The graph cannot be asked before the planned job-dismiss (README `QEMU
                # care`): as found, nothing of it can be checked, and nothing is wrong.
                return []
            return [Failure(f"could not observe QEMU to verify: {exc}")]
        if self.dry_run:  # only what does not depend on the planned steps
            return (check_bases(self.touched, seen.nodes, self.unresolved, planned=True)
                    + check_chains(self.ctx.doc, seen, set()) + check_storage(self.ctx.doc, seen))
        failed = check_bases(self.touched, seen.nodes, self.unresolved)
        return failed + check_domain(self.ctx.doc, seen, self.finished, self.failed)


def reconcile_job(
    doc: StatusDocument, owner: DomainOwner, monitor: Monitor, name: str, *,
    on_step: StepHook | None = None, acknowledge: bool = False,
) -> JobReport:
    """Observe job `name` in QEMU now, run the plan recovery runs after a restart, and,
    once the job ended, verify the end state (failed checks become problems).
    `acknowledge`: as `recover_document`'s, for this job.

    The seam of a live tracker: a status change it hears about is handled by the
    same state machine, so a daemon that dies anywhere leaves what recovery finishes.
    QMP and file errors propagate to the caller.
    """
    report = JobReport(name, "unknown", None)
    run = _Run(Context(doc, owner, monitor, acknowledge=acknowledge), False, on_step)
    run.job(report)
    if run.finished or run.touched or run.pending:
        failed = run.conclude(mirrors=False)[1]
        report.problems += [f"check failed: {check}" for check in failed]
    return report


def recover_document(
    doc: StatusDocument, owner: DomainOwner, monitor: Monitor, *, dry_run: bool = False,
    on_step: StepHook | None = None, probe: Probe | None = None, acknowledge: bool = False,
) -> tuple[list[JobReport], list[str]]:
    """Reconcile every job of `doc` with the QEMU behind `monitor`, then verify.

    Returns the job reports and the failed verification checks."""
    ctx = Context(doc, owner, monitor, acknowledge=acknowledge, probe=probe)
    run = _Run(ctx, dry_run, on_step)
    reports: list[JobReport] = []
    at = {job.name: position for position, job in enumerate(doc.jobs)}

    def in_file_order() -> list[JobReport]:
        return sorted(reports, key=lambda report: at[report.job])

    # Pulls first: while a pull's concluded stream job waits for its job-dismiss, the
    # node graph another job's plan may ask for cannot be asked (README `QEMU care`). A
    # pull libvirt re-typed `broken` too: QEMU still has its stream job.
    for job in sorted(doc.jobs, key=lambda job: job_kind(job) is not JobType.PULL):
        report = JobReport(job.name, "unknown", None)
        reports.append(report)
        try:
            run.job(report)
        except MonitorUnavailableError as exc:
            report.error = str(exc)
            return in_file_order(), []  # the next jobs would meet the same dead monitor
        except (MonitorError, BlockJobError, ValueError, OSError) as exc:
            report.error = str(exc)
            run.failed.add(job.name)
    # A job that failed stays in the file; the others leave it if the checks pass.
    try:
        mirrors, failed = run.conclude(mirrors=True)
    except (BlockJobError, ValueError, OSError) as exc:
        return in_file_order(), [f"could not conclude: {exc}"]
    return in_file_order() + mirrors, failed


@contextlib.contextmanager
def _owned(
    path: Path, dry_run: bool, timeout: float, max_bytes: int
) -> Iterator[DomainOwner]:
    if not path.name.endswith(SUFFIX) or path.name == SUFFIX:
        raise StoreError(path, f"a status file is named <domain>{SUFFIX}; not recovered")
    store = StatusStore(path.parent, max_bytes=max_bytes)
    name = path.name[: -len(SUFFIX)]
    if dry_run:  # reads only (saves are atomic): no lock, and no step ever saves
        yield DomainOwner(store, name, path)
        return
    with store.owned(name, timeout=timeout) as owner:
        yield owner


def _load(owner: DomainOwner, report: DomainReport) -> StatusDocument | None:
    """The domain's document, or None with `report` saying the file is unusable."""
    try:
        return owner.load()
    except (DomainNameError, StoreExhaustedError):
        raise  # not this file's domain, or not the file's fault: attention
    except StatusXMLError as exc:  # not well-formed, or refused by the loader
        report.error = str(exc)
    except StoreError as exc:  # unreadable under the input policy
        report.error = f"{exc.path}:0: {exc.message}"
    report.unusable = True
    return None


def recover_file(
    path: Path, *, dry_run: bool = False, connect_timeout: float | None = None,
    timeout: float = 30.0, on_step: StepHook | None = None, probe: Probe | None = None,
    acknowledge: bool = False, owner_timeout: float = OWNER_TIMEOUT,
    max_bytes: int = MAX_INPUT_BYTES, scratch: Iterable[str] | None = None,
    listed: bool = False,
) -> DomainReport:
    """Recover one status file.

    `scratch`: the names of the file's directory, listed any time before, among which the
    scratch files a crashed save of it left are removed once it is owned (None: the
    directory is listed then; a dry run removes nothing). `listed`: it was found in a
    directory, so a file gone by now is a domain that ended since the listing
    (`DomainReport.ended`), not an input that cannot be used, as the store's scan takes a
    file removed meanwhile."""
    check_waits(timeout, connect_timeout)
    report = DomainReport(str(path))
    try:
        check_regular(path)  # a device or FIFO is unusable, whatever its name
        with _owned(path, dry_run, owner_timeout, max_bytes) as owner:
            if not dry_run:
                removed, kept = owner.remove_leftovers(scratch)
                report.removed_scratch_files = [str(name) for name in removed]
                report.left_in_place = [str(failure) for failure in kept]
            doc = _load(owner, report)
            if doc is None:
                return _settled(report, listed, dry_run)
            report.domain, report.monitor = doc.domain_name, doc.monitor_path
            if doc.jobs or any(disk.mirror_job is not None for disk in doc.disks):
                if not doc.monitor_path:
                    raise MonitorUnavailableError(str(path),
                                                  "the status file names no <monitor path>")
                connect = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
                with Monitor.connect(doc.monitor_path, timeout=timeout, **connect) as monitor:
                    monitor.observer = probe
                    report.jobs, report.failed_checks = recover_document(
                        doc, owner, monitor, dry_run=dry_run, on_step=on_step, probe=probe,
                        acknowledge=acknowledge)
    except InputError as exc:
        report.error, report.unusable = str(exc), True
    except DomainBusyError as exc:  # unread, but the file's name says whose it is
        report.domain, report.error = _domain_named(path), str(exc)
    except (BlockJobError, OSError) as exc:
        report.error = str(exc)
    return _settled(report, listed, dry_run)


def _settled(report: DomainReport, listed: bool, dry_run: bool) -> DomainReport:
    """`report` with its status; a listed file that could not be used because it is gone
    was removed since the listing (`recover_file`)."""
    if listed and report.unusable and not os.path.lexists(report.file):
        report.error, report.unusable, report.ended = None, False, True
        report.domain = _domain_named(Path(report.file))
    report.settle(dry_run)
    return report


def _domain_named(path: Path) -> str:
    """The domain whose file `path` (`<domain>.xml`) is, by its name."""
    return path.name.removesuffix(SUFFIX)


def recover(
    paths: Iterable[str | Path], *, dry_run: bool = False, connect_timeout: float | None = None,
    timeout: float = 30.0, on_step: StepHook | None = None, progress: ProgressHook | None = None,
    probe: Probe | None = None, acknowledge: bool = False,
    owner_timeout: float = OWNER_TIMEOUT, jobs: int = 1, max_bytes: int = MAX_INPUT_BYTES,
) -> RecoveryReport:
    """Reconcile the status files (or directories of them) in `paths` with their QEMUs.

    Every domain is processed even if another one needs attention; `report.ok`
    tells whether all were reconciled and verified. With `dry_run`, QEMU is only
    queried and the files are not written: the report lists the planned steps.
    `acknowledge` lets go of listed bitmaps that can never be re-enabled (reported,
    then forgotten) instead of keeping them recorded. Files are read under the input
    policy (`blockjob.inputs`); a named path that cannot be looked at is reported
    unusable, the other domains recovered all the same, and a named directory that cannot
    be listed raises InputError before any domain is recovered.

    Up to `jobs` domains are recovered at once (fewer when RLIMIT_NOFILE leaves too few
    descriptors for that many: `parallel.affordable`); the report, and the calls of
    `progress`, keep the order of the files whatever that number. With more than one
    job, `on_step` and `probe` are called from the worker threads.
    """
    check_waits(timeout, connect_timeout)
    recover_one = partial(
        recover_file, dry_run=dry_run, connect_timeout=connect_timeout, timeout=timeout,
        on_step=on_step, probe=probe, acknowledge=acknowledge, owner_timeout=owner_timeout,
        max_bytes=max_bytes,
    )
    listing = cache(_listing)

    def recover_entry(entry: _Entry) -> DomainReport:
        if isinstance(entry, _Listed):
            return recover_one(entry.path, scratch=(), listed=True)
        if isinstance(entry, Path):
            return recover_one(entry, scratch=listing(entry.parent))
        return entry

    domains = run_ordered(
        status_entries(paths, dry_run=dry_run, max_bytes=max_bytes), recover_entry,
        jobs=affordable(jobs), key=lambda entry: file_key(_entry_path(entry)), done=progress,
    )
    return RecoveryReport(domains)
