"""Carry out a job's plan against QEMU and the status file, one step at a time.

The file is saved after every step that changed it, and every QEMU step first
looks at what QEMU has now, so a recovery killed anywhere redoes only what is
missing when it runs again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from blockjob.qemu.bitmaps import finish_actions
from blockjob.qemu.monitor import Monitor
from blockjob.qemu.nodes import effective_node
from blockjob.qemu.reopen import restore_base, transaction_on
from blockjob.recovery.steps import (
    Cancel,
    DeleteNodes,
    Dismiss,
    Drop,
    Finalize,
    MergeBitmaps,
    Record,
    Reenable,
    Step,
)
from blockjob.statusxml.document import StatusDocument


class Saver(Protocol):
    """Where a step's changes to the document are saved."""

    def save(self, doc: StatusDocument) -> object: ...


# Called with each step just before it runs (tests use it to crash on purpose).
StepHook = Callable[[Step], None]

CANCEL_WAIT_SECONDS = 30.0


@dataclass
class Context:
    doc: StatusDocument
    saver: Saver
    monitor: Monitor
    problems: list[str] = field(default_factory=list)


def _save(ctx: Context) -> None:
    ctx.saver.save(ctx.doc)


def _record(ctx: Context, step: Record) -> None:
    job = ctx.doc.job(step.job)
    if job is None:
        return
    updated = replace(
        job,
        state=step.state if step.state is not None else job.state,
        newstate=step.newstate if step.newstate is not None else job.newstate,
        errmsg=step.errmsg if step.errmsg is not None else job.errmsg,
    )
    ctx.doc.replace_job(updated)
    _save(ctx)


def _cancel(ctx: Context, step: Cancel) -> None:
    ctx.monitor.job_cancel(step.job)
    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    while time.monotonic() < deadline:
        qjob = ctx.monitor.query_jobs().get(step.job)
        if qjob is None or qjob.status == "concluded":
            return
        time.sleep(0.02)
    ctx.problems.append(
        f"job '{step.job}' did not conclude within {CANCEL_WAIT_SECONDS:g} s of job-cancel"
    )


def _merge(ctx: Context, step: MergeBitmaps) -> None:
    nodes = ctx.monitor.query_nodes()
    base = effective_node(step.base)
    committed = [effective_node(image) for image in step.committed]
    if not all(name in nodes for name in committed):
        # Committed nodes are deleted only after the merge: it already happened.
        return
    actions, problems = finish_actions(committed, step.chain, base, step.listed, nodes)
    ctx.problems.extend(problems)
    if actions:
        transaction_on(ctx.monitor, step.base, actions)


def _reenable(ctx: Context, step: Reenable) -> None:
    ctx.problems.extend(
        restore_base(ctx.monitor, step.base, step.listed, read_only=step.restore_read_only)
    )


def _dismiss(ctx: Context, step: Dismiss) -> None:
    if step.job in ctx.monitor.query_jobs():
        ctx.monitor.job_dismiss(step.job)


def _delete(ctx: Context, step: DeleteNodes) -> None:
    present = ctx.monitor.query_nodes()
    for image in step.images:
        for name in (image.format_node, image.storage_node):
            if name is not None and name in present:
                ctx.monitor.blockdev_del(name)


def _drop(ctx: Context, step: Drop) -> None:
    if ctx.doc.job(step.job) is not None:
        ctx.doc.remove_job(step.job)
    if step.disk is not None and (step.chain is not None or step.drop_mirror):
        # After the job is gone, so no job is judged against the shorter chain.
        ctx.doc.set_disk_chain(step.disk, step.chain, drop_mirror=step.drop_mirror)
    _save(ctx)


def run_step(ctx: Context, step: Step) -> None:
    match step:
        case Finalize(job=job):
            ctx.monitor.job_finalize(job)
        case Record():
            _record(ctx, step)
        case Cancel():
            _cancel(ctx, step)
        case MergeBitmaps():
            _merge(ctx, step)
        case Reenable():
            _reenable(ctx, step)
        case Dismiss():
            _dismiss(ctx, step)
        case DeleteNodes():
            _delete(ctx, step)
        case Drop():
            _drop(ctx, step)
