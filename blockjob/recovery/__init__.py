"""Reconcile recorded block jobs with QEMU after a management-daemon restart."""

from blockjob.recovery.plan import Decision, JobPlan, plan_job
from blockjob.recovery.report import DomainReport, DomainStatus, JobReport, RecoveryReport
from blockjob.recovery.run import reconcile_job, recover, recover_document, recover_file

__all__ = [
    "Decision",
    "DomainReport",
    "DomainStatus",
    "JobPlan",
    "JobReport",
    "RecoveryReport",
    "plan_job",
    "reconcile_job",
    "recover",
    "recover_document",
    "recover_file",
]
