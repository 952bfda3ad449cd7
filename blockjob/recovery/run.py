"""Recovery of whole domains: load each status file, ask its QEMU, reconcile every job."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from blockjob.errors import BlockJobError
from blockjob.qemu.monitor import Monitor, MonitorError, MonitorUnavailableError
from blockjob.recovery.execute import Context, Saver, StepHook, run_step
from blockjob.recovery.plan import Decision, plan_job
from blockjob.recovery.report import DomainReport, JobReport, RecoveryReport
from blockjob.recovery.steps import describe
from blockjob.statusxml.document import StatusDocument, loads
from blockjob.store.atomic import replace_file
from blockjob.store.status_store import SUFFIX, StatusStore, read_status_bytes

ProgressHook = Callable[[DomainReport], None]
# A pending job is finalized and planned again; more rounds than this means QEMU is stuck.
MAX_ROUNDS = 3


class _FileSaver:
    """Atomic saves of a status file whose name is not `<domain name>.xml`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, doc: StatusDocument) -> None:
        replace_file(self.path, doc.dumps())


def _saver(path: Path, doc: StatusDocument) -> Saver:
    if doc.domain_name is not None and path.name == f"{doc.domain_name}{SUFFIX}":
        return StatusStore(path.parent)
    return _FileSaver(path)


def status_files(paths: Iterable[str | Path]) -> list[Path]:
    """The status files named, and the `*.xml` files directly inside named directories."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.name.endswith(SUFFIX) and p.is_file())
        else:
            found.append(path)
    return found


def _recover_job(
    ctx: Context, report: JobReport, dry_run: bool, on_step: StepHook | None
) -> None:
    """Plan and run the job's steps into `report`; a pending job is finalized, then
    planned again from what QEMU says after that."""
    ctx.problems = report.problems
    for _ in range(MAX_ROUNDS):
        job = ctx.doc.job(report.job)
        if job is None:
            return
        plan = plan_job(ctx.doc, job, ctx.monitor.query_jobs().get(report.job))
        report.decision, report.qemu_status, report.note = (
            plan.decision, plan.qemu_status, plan.note)
        report.steps += [describe(step) for step in plan.steps]
        if dry_run:
            return
        for step in plan.steps:
            if on_step is not None:
                on_step(step)
            run_step(ctx, step)
            report.done += 1
        if plan.decision is not Decision.FINALIZE:
            return
    report.error = f"job '{report.job}' is still pending after job-finalize"


def recover_document(
    doc: StatusDocument, saver: Saver, monitor: Monitor, *, dry_run: bool = False,
    on_step: StepHook | None = None,
) -> list[JobReport]:
    """Reconcile every job of `doc` with the QEMU behind `monitor`."""
    ctx = Context(doc, saver, monitor)
    reports: list[JobReport] = []
    for job in doc.jobs:
        report = JobReport(job.name, "unknown", None)
        reports.append(report)
        try:
            _recover_job(ctx, report, dry_run, on_step)
        except MonitorUnavailableError as exc:
            report.error = str(exc)
            break  # the next jobs would meet the same dead monitor
        except (MonitorError, BlockJobError, ValueError, OSError) as exc:
            report.error = str(exc)
    return reports


def recover_file(
    path: Path, *, dry_run: bool = False, connect_timeout: float = 1.0, timeout: float = 30.0,
    on_step: StepHook | None = None,
) -> DomainReport:
    report = DomainReport(str(path))
    try:
        doc = loads(read_status_bytes(path), str(path))
        report.domain, report.monitor = doc.domain_name, doc.monitor_path
        if doc.jobs:
            if not doc.monitor_path:
                raise MonitorUnavailableError(str(path), "the status file names no <monitor path>")
            with Monitor.connect(
                doc.monitor_path, timeout=timeout, connect_timeout=connect_timeout
            ) as monitor:
                report.jobs = recover_document(
                    doc, _saver(path, doc), monitor, dry_run=dry_run, on_step=on_step
                )
    except (BlockJobError, OSError) as exc:
        report.error = str(exc)
    report.settle(dry_run)
    return report


def recover(
    paths: Iterable[str | Path], *, dry_run: bool = False, connect_timeout: float = 1.0,
    timeout: float = 30.0, on_step: StepHook | None = None, progress: ProgressHook | None = None,
) -> RecoveryReport:
    """Reconcile the status files (or directories of them) in `paths` with their QEMUs.

    Every domain is processed even if another one needs attention; `report.ok`
    tells whether all were reconciled. With `dry_run`, QEMU is only queried and
    the files are not written: the report lists the planned steps.
    """
    report = RecoveryReport()
    for path in status_files(paths):
        domain = recover_file(
            path, dry_run=dry_run, connect_timeout=connect_timeout, timeout=timeout,
            on_step=on_step,
        )
        report.domains.append(domain)
        if progress is not None:
            progress(domain)
    return report
