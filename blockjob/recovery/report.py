"""What recovery did (or, with --dry-run, would do), per domain and per job."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class DomainStatus(StrEnum):
    RECONCILED = "reconciled"  # every job handled; nothing for an operator to do
    PLANNED = "planned"        # --dry-run: nothing was changed
    ATTENTION = "attention"    # unreachable or busy monitor, QMP error, foreign job, bitmap
                               # that cannot be enabled, a failed verification check
    ENDED = "ended"            # the file of a listed directory was removed before its
                               # turn: the domain shut down (libvirt removes the file)


@dataclass
class JobReport:
    job: str
    decision: str
    qemu_status: str | None
    steps: list[str] = field(default_factory=list)
    done: int = 0  # how many of `steps` were carried out
    note: str | None = None
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    acknowledged: list[str] = field(default_factory=list)  # problems let go (--acknowledge)

    @property
    def needs_attention(self) -> bool:
        return self.error is not None or bool(self.problems)


@dataclass
class DomainReport:
    file: str
    domain: str | None = None
    monitor: str | None = None
    status: DomainStatus = DomainStatus.RECONCILED
    jobs: list[JobReport] = field(default_factory=list)
    error: str | None = None
    failed_checks: list[str] = field(default_factory=list)  # verification of the end state
    unusable: bool = False  # the file could not be loaded at all (`error` says why)
    # Scratch files a crashed save of the file left: removed, and those that could not be.
    removed_scratch_files: list[str] = field(default_factory=list)
    left_in_place: list[str] = field(default_factory=list)
    ended: bool = False  # gone from its directory since the listing: nothing to recover

    @property
    def needs_attention(self) -> bool:
        return (self.error is not None or bool(self.failed_checks) or bool(self.left_in_place)
                or any(job.needs_attention for job in self.jobs))

    def settle(self, dry_run: bool) -> None:
        if self.ended:
            self.status = DomainStatus.ENDED
        elif self.needs_attention:
            self.status = DomainStatus.ATTENTION
        else:
            self.status = DomainStatus.PLANNED if dry_run else DomainStatus.RECONCILED

    def lines(self) -> list[str]:
        """Human-readable summary, one line per job step."""
        head = f"{self.domain or '?'} ({self.file}): {self.status}"
        out = [head + (f": {self.error}" if self.error else "")]
        if self.ended:
            out.append("  its file was removed since the directory was listed (the domain "
                       "shut down): nothing to recover")
        elif not self.jobs and self.error is None:
            out.append("  no block jobs")
        for job in self.jobs:
            seen = f"QEMU {job.qemu_status}" if job.qemu_status else "unknown to QEMU"
            out.append(f"  {job.job}: {job.decision} ({seen})")
            out += [f"    note: {job.note}"] if job.note else []
            for number, step in enumerate(job.steps):
                mark = "-" if self.status is DomainStatus.PLANNED else (
                    "done" if number < job.done else "not done")
                out.append(f"    [{mark}] {step}")
            out += [f"    problem: {problem}" for problem in job.problems]
            out += [f"    acknowledged: {problem}" for problem in job.acknowledged]
            out += [f"    error: {job.error}"] if job.error else []
        out += [f"  check failed: {check}" for check in self.failed_checks]
        out += [f"  removed scratch file {path} (a crashed save's)"
                for path in self.removed_scratch_files]
        out += [f"  {failure}" for failure in self.left_in_place]
        return out


@dataclass
class RecoveryReport:
    domains: list[DomainReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(domain.needs_attention for domain in self.domains)

    @property
    def unusable_input(self) -> bool:
        """Whether some status file could not be loaded at all."""
        return any(domain.unusable for domain in self.domains)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "domains": [asdict(domain) for domain in self.domains]}
