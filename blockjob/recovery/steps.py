"""The steps recovery takes for one job, as data: planned, printed, then executed.

Steps that touch bitmaps or nodes carry what to look at, not the QMP actions: the
executor computes those from a fresh observation of QEMU, so a step that is repeated
after a crash does only what is still missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from blockjob.model import JobState, StorageSource
from blockjob.qemu.nodes import effective_node


@dataclass(frozen=True)
class Finalize:
    """`job-finalize` a pending job; the job is planned again once it concluded."""

    job: str


@dataclass(frozen=True)
class Record:
    """Write the job's new state (and outcome) to the status file before acting on it;
    `mirror_ready` also marks the disk's `<mirror>` ready, as libvirt 9.0 does; `mirror`
    gives the job's disk the `<mirror>` into that image (an active commit's base) it lacks."""

    job: str
    state: JobState | None = None
    newstate: JobState | None = None
    errmsg: str | None = None
    mirror_ready: str | None = None  # disk target
    mirror: StorageSource | None = None


@dataclass(frozen=True)
class Cancel:
    """`job-cancel` and wait until QEMU has concluded the job."""

    job: str


@dataclass(frozen=True)
class Complete:
    """`job-complete` (a ready mirror's pivot) and wait until QEMU has concluded the job."""

    job: str


@dataclass(frozen=True)
class MergeBitmaps:
    """Merge the bitmaps of the images that leave into the image that stays, and
    re-enable the listed ones: a commit's committed images into base, a pull's pulled
    images into the disk's top, a pivoted copy's old chain into the copy's top. `base`
    ends read-only unless it is now the disk's active layer."""

    base: StorageSource
    committed: tuple[StorageSource, ...]
    chain: tuple[str, ...]  # node names of the chain they leave, top to bottom
    listed: tuple[str, ...]
    base_is_active: bool = False
    discard: str | None = None  # the disk's `<driver discard>`, which base's reopens repeat


@dataclass(frozen=True)
class Reenable:
    """Enable the listed base bitmaps that are still disabled, remove libvirt's
    pivot-time bitmap, and leave base read-only (unless it is the active layer)."""

    base: StorageSource
    listed: tuple[str, ...]
    base_is_active: bool = False
    discard: str | None = None  # as in MergeBitmaps


@dataclass(frozen=True)
class Dismiss:
    job: str


@dataclass(frozen=True)
class DeleteNodes:
    """`blockdev-del` images that left the chain: format node, then storage node."""

    images: tuple[StorageSource, ...]


@dataclass(frozen=True)
class DeleteFiles:
    """Remove the local image files of a commit made with `--delete`
    (`<deleteCommittedImages/>`), once they left QEMU, as libvirt 9.0 does; never a
    relative path, a directory, or a file another QEMU node still has open."""

    images: tuple[StorageSource, ...]

    def local_paths(self) -> list[str]:
        """The images' local files: libvirt deletes no other kind."""
        return [image.path for image in self.images if image.type == "file" and image.path]


@dataclass(frozen=True)
class StopExports:
    """End QEMU's exports of the image (a pull backup's scratch image), which hold it:
    `nbd-server-stop` when they are all the server serves, as libvirt 9.0 stops its
    server when the backup's last job ends; else `block-export-del` of them only."""

    image: StorageSource


@dataclass(frozen=True)
class RemoveBitmap:
    """`block-dirty-bitmap-remove` a bitmap a job added to an image, if still there."""

    image: StorageSource
    name: str


@dataclass(frozen=True)
class Drop:
    """Forget the job, give its disk the chain it has now (if it changed), and drop the
    disk's `<mirror>` when the job that owned it is over. A listed bitmap that could not
    be re-enabled keeps a record of the job instead (README: "never forget"). A backup's
    last job takes the backup along (`StatusDocument.end_backup`), as in libvirt 9.0."""

    job: str
    disk: str | None = None
    chain: StorageSource | None = None
    drop_mirror: bool = False
    backup: bool = False  # the job is one of the domain's backup


@dataclass(frozen=True)
class DropMirror:
    """Remove a disk's `<mirror>` that libvirt could not load (no job owns it)."""

    disk: str


Step = (Finalize | Record | Cancel | Complete | MergeBitmaps | Reenable | Dismiss
        | DeleteNodes | DeleteFiles | StopExports | RemoveBitmap | Drop | DropMirror)


def _names(images: tuple[StorageSource, ...]) -> str:
    return ", ".join(effective_node(image) for image in images)


def describe(step: Step) -> str:
    """One line saying what the step does, for `--dry-run` and reports."""
    match step:
        case Finalize(job=job):
            return f"job-finalize {job}"
        case Record(state=state, newstate=newstate, errmsg=errmsg, mirror_ready=ready,
                    mirror=mirror):
            parts = [f"state={state}"] if state is not None else []
            parts += [f"newstate={newstate}"] if newstate is not None else []
            parts += [f"errmsg={errmsg!r}"] if errmsg else []
            parts += [f"disk {ready} <mirror ready='yes'>"] if ready else []
            parts += [f"disk <mirror> into {effective_node(mirror)}"] if mirror else []
            return "record " + " ".join(parts)
        case Cancel(job=job):
            return f"job-cancel {job} and wait for it to conclude"
        case Complete(job=job):
            return f"job-complete {job} and wait for it to conclude"
        case MergeBitmaps(base=base, committed=committed, listed=listed):
            return (
                f"merge {_names(committed)} bitmaps into {effective_node(base)}, "
                f"re-enable {', '.join(listed) or 'none'}"
            )
        case Reenable(base=base, listed=listed, base_is_active=active):
            names = ", ".join(listed) or "none"
            text = f"re-enable still-disabled {names} in {effective_node(base)}"
            return text + ("" if active else " and leave it read-only")
        case Dismiss(job=job):
            return f"job-dismiss {job}"
        case DeleteNodes(images=images):
            return f"blockdev-del {_names(images)} (format node, then storage node)"
        case DeleteFiles():
            paths = ", ".join(step.local_paths())
            return f"delete the committed image files {paths or '(none local)'}"
        case StopExports(image=image):
            return (f"end the exports of {effective_node(image)} (nbd-server-stop if it "
                    f"serves nothing else)")
        case RemoveBitmap(image=image, name=name):
            return f"remove bitmap {name} from {effective_node(image)}"
        case Drop(job=job, disk=disk, chain=chain, drop_mirror=drop_mirror, backup=backup):
            text = f"drop job {job}"
            if chain is not None:
                text += f"; disk {disk} chain is {_names(tuple(chain.images()))}"
            text += f"; remove disk {disk} <mirror>" if drop_mirror else ""
            return text + ("; end the backup if no job of it is left (deleting the images "
                           "libvirt deletes then)" if backup else "")
        case DropMirror(disk=disk):
            return f"remove disk {disk} <mirror> that no job owns"
