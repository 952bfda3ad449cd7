"""libvirt 9.0's newest finishing steps set up in a real QEMU (`Lab`), each with the
status file libvirt 9.0 writes while its job runs: a pull backup (its scratch image
blockdev-added over the disk's top, a `sync=none` backup job into it, the scratch
exported over NBD), an incremental push backup, a pull of mid into top, a copy (full or
shallow into a new image) pivoted, and a commit made with `--delete`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from blockjob.demo.images import run_tool
from blockjob.demo.lab import Lab
from blockjob.qemu.monitor import Monitor
from blockjob.store.status_store import StatusStore
from tests.support.qemu_fixtures import BASE, MID, TOP, commit, wait_concluded, wait_until

ASYNC_JOB = "<job type='none' async='backup' flags='0x0' asyncStarted='1'/>"
PULL = "pull-vda-libvirt-1-format"
COPY = "copy-vda-libvirt-1-format"
# The bitmap libvirt adds to the disk's top for an incremental push backup.
PUSH_BITMAP = "backup-vda"


def scratch_node(index: int) -> str:
    return f"libvirt-{index}-format"


def backup_job(target: str, top: int) -> str:
    return f"backup-{target}-libvirt-{top}-format"


def _source_xml(path: Path, index: int) -> str:
    return (f"<source file='{path}' index='{index}'><privateData><nodenames>"
            f"<nodename type='storage' name='libvirt-{index}-storage'/>"
            f"<nodename type='format' name='libvirt-{index}-format'/>"
            f"</nodenames></privateData></source>")


def add_image(monitor: Monitor, tb: Lab, name: str, index: int, backing: str | None) -> Path:
    """A new 16 MiB qcow2 image `name` blockdev-added as node `index` over `backing`."""
    path = tb.directory / f"{name}.qcow2"
    run_tool(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"])
    monitor.execute("blockdev-add", {"driver": "file", "node-name": f"libvirt-{index}-storage",
                                     "filename": str(path)})
    monitor.execute("blockdev-add", {"driver": "qcow2", "node-name": scratch_node(index),
                                     "file": f"libvirt-{index}-storage", "backing": backing})
    return path


def start_pull(
    monitor: Monitor, tb: Lab, target: str, top: int, index: int, *, sync: str = "none"
) -> Path:
    """Scratch image `index` over disk `target`'s top node `top`, its backup job, and its
    NBD export (id `target`; the server is started by the first call). `sync`: libvirt's
    `none`, or `full` for a job that completes by itself."""
    scratch = add_image(monitor, tb, f"{target}.scratch", index, f"libvirt-{top}-format")
    monitor.execute("blockdev-backup", {
        "job-id": backup_job(target, top), "device": f"libvirt-{top}-format",
        "target": scratch_node(index), "sync": sync, "auto-dismiss": False})
    if not monitor.execute("query-block-exports"):
        monitor.execute("nbd-server-start", {"addr": {
            "type": "unix", "data": {"path": str(tb.directory / "nbd.sock")}}})
    monitor.execute("block-export-add", {"type": "nbd", "id": target,
                                         "node-name": scratch_node(index)})
    return scratch


def _job_xml(name: str, target: str, store: tuple[Path, int] | None = None,
             bitmap: str | None = None) -> str:
    inner = f"<disk dst='{target}'/>"
    inner += f"<bitmap name='{bitmap}'/>" if bitmap else ""
    if store is not None:
        inner += f"<store type='file' format='qcow2'>{_source_xml(*store)}</store>"
    return (f"<blockjob name='{name}' type='backup' state='running' jobflags='0x0'>{inner}"
            f"</blockjob>")


def _write_jobs(tb: Lab, blockjobs: str, backups: str | None = None) -> None:
    text = tb.status_path.read_text()
    text = text.replace("<blockjobs active='no'/>",
                        f"<blockjobs active='yes'>{blockjobs}</blockjobs>")
    if backups is not None:
        text = text.replace("  <nodename index=", f"  {ASYNC_JOB}\n  <nodename index=", 1)
        text = text.replace("<domain type=", f"<backups>{backups}</backups>\n  <domain type=", 1)
    tb.status_path.write_text(text)


def record_pull(tb: Lab, jobs: list[tuple[str, int, Path, int]]) -> None:
    """Write the backup of `jobs` (target, top node index, scratch, its index) into the
    lab's status file the way libvirt 9.0 writes a running pull backup."""
    blockjobs = "".join(_job_xml(backup_job(target, top), target, (scratch, index))
                        for target, top, scratch, index in jobs)
    disks = "".join(
        f"<disk name='{target}' backup='yes' state='running' type='file' "
        f"backupmode='full' index='{index}'><driver type='qcow2'/>"
        f"<scratch file='{scratch}'/></disk>" for target, _, scratch, index in jobs)
    _write_jobs(tb, blockjobs, f"<domainbackup mode='pull'><server transport='unix' "
                f"socket='{tb.directory / 'nbd.sock'}'/><disks>{disks}</disks>"
                f"</domainbackup>")


def exports(monitor: Monitor) -> dict[str, str]:
    """Export id -> node name, as QEMU serves them now."""
    return {str(e["id"]): str(e["node-name"]) for e in monitor.execute("query-block-exports")}


def cancel(tb: Lab, job: str) -> None:
    with tb.connect() as monitor:
        monitor.job_cancel(job)
    wait_concluded(tb, job)


def backup_pull(tb: Lab, *, shared: bool = False) -> None:
    """A pull backup of vda, cancelled (how a pull backup ends); `shared`: the server
    also serves an export the backup never made."""
    with tb.connect() as monitor:
        scratch = start_pull(monitor, tb, "vda", 1, 9)
        if shared:
            monitor.execute("block-export-add", {"type": "nbd", "id": "other",
                                                 "node-name": BASE})
    record_pull(tb, [("vda", 1, scratch, 9)])
    cancel(tb, backup_job("vda", 1))


def backup_sibling(tb: Lab) -> None:
    """A pull backup of vda and vdb (a lab with a second disk) whose vda job was
    cancelled while vdb's still runs: libvirt 9.0 cancels vdb's too."""
    with tb.connect() as monitor:
        vda = start_pull(monitor, tb, "vda", 1, 9)
        vdb = start_pull(monitor, tb, "vdb", 4, 10)
    record_pull(tb, [("vda", 1, vda, 9), ("vdb", 4, vdb, 10)])
    cancel(tb, backup_job("vda", 1))


def backup_push(tb: Lab) -> None:
    """An incremental push backup of vda that completed: its target image, and the
    bitmap libvirt added to the disk's top for it."""
    job = backup_job("vda", 1)
    with tb.connect() as monitor:
        monitor.execute("block-dirty-bitmap-add", {"node": TOP, "name": PUSH_BITMAP})
        target = add_image(monitor, tb, "vda.backup-push", 9, None)
        monitor.execute("blockdev-backup", {
            "job-id": job, "device": TOP, "target": scratch_node(9), "sync": "incremental",
            "bitmap": PUSH_BITMAP, "auto-dismiss": False})
    disk = (f"<disk name='vda' backup='yes' state='running' type='file' "
            f"backupmode='incremental' incremental='chk1' index='9'><driver type='qcow2'/>"
            f"<target file='{target}'/></disk>")
    _write_jobs(tb, _job_xml(job, "vda", (target, 9), PUSH_BITMAP),
                f"<domainbackup mode='push'><incremental>chk1</incremental>"
                f"<disks>{disk}</disks></domainbackup>")
    wait_concluded(tb, job)


def pull_mid(tb: Lab) -> None:
    """A pull of mid (and its bitmaps) into top, down to base, that completed."""
    with tb.connect() as monitor:
        monitor.execute("block-stream", {"job-id": PULL, "device": TOP, "base-node": BASE,
                                         "auto-dismiss": False})
    _write_jobs(tb, f"<blockjob name='{PULL}' type='pull' state='running' jobflags='0x0'>"
                    f"<disk dst='vda'/><base node='{BASE}'/></blockjob>")
    wait_concluded(tb, PULL)


def copy_pivoted(tb: Lab, *, shallow: bool = False) -> None:
    """A copy of vda into a new image, ready, then pivoted (QEMU completed it: the
    device runs on the copy). `shallow`: libvirt's shallow copy into a new image
    (`shallownew`), its copy over the disk's chain below the old top."""
    copy_ready(tb, shallow=shallow)
    with tb.connect() as monitor:
        monitor.job_complete(COPY)
    wait_concluded(tb, COPY)


def copy_ready(tb: Lab, *, shallow: bool = False) -> None:
    """A copy of vda into a new image (node 4), ready, as libvirt 9.0 records it."""
    with tb.connect() as monitor:
        copy = add_image(monitor, tb, "copy", 4, MID if shallow else None)
        monitor.execute("blockdev-mirror", {
            "job-id": COPY, "device": TOP, "target": scratch_node(4),
            "sync": "top" if shallow else "full", "auto-dismiss": False})
        wait_until(lambda: monitor.query_jobs()[COPY].status == "ready", "the copy ready")
    flags = "0x1' shallownew='yes" if shallow else "0x0"
    _write_jobs(tb, f"<blockjob name='{COPY}' type='copy' state='ready' newstate='ready' "
                    f"jobflags='{flags}'><disk dst='vda' mirror='yes'/></blockjob>")
    backing = "" if shallow else "<backingStore/>"
    mirror = (f"<mirror type='file' file='{copy}' format='qcow2' job='copy' ready='yes'>"
              f"<format type='qcow2'/>{_source_xml(copy, 4)}{backing}</mirror>\n        ")
    text = tb.status_path.read_text()
    tb.status_path.write_text(text.replace("<target dev='vda'", mirror + "<target dev='vda'"))


def delete_committed(tb: Lab) -> None:
    """The lab's commit, made with `--delete` (`<deleteCommittedImages/>`), completed."""
    commit(tb)
    with StatusStore(tb.directory).owned(tb.name) as owner:
        doc = owner.load()
        (job,) = doc.jobs
        assert job.commit is not None
        doc.replace_job(replace(job, data=replace(job.commit, delete_committed_images=True)))
        owner.save(doc)
    wait_concluded(tb)


# The flows that need a second disk (`started(..., second_disk=True)`).
TWO_DISKS = frozenset({"backup-sibling"})


def create_job(node: str) -> str:
    return f"create-{node}"


def create(tb: Lab, *, size: int = 16 << 20, storage_only: bool = False) -> Path:
    """A create job libvirt 9.0 ran (blockdev-create) and that concluded while the daemon
    was away: the format of a new qcow2 image over its storage node, attached for it
    (a `size` QEMU refuses makes it fail); `storage_only`: the creation of the file
    itself (`<create mode='storage'/>`), which attaches no node."""
    path = tb.directory / "created.qcow2"
    node = f"libvirt-9-{'storage' if storage_only else 'format'}"
    with tb.connect() as monitor:
        if storage_only:
            options: dict[str, object] = {"driver": "file", "filename": str(path),
                                          "size": size}
        else:
            path.write_bytes(b"")  # what the storage's creation left
            monitor.execute("blockdev-add", {"driver": "file", "filename": str(path),
                                             "node-name": "libvirt-9-storage"})
            options = {"driver": "qcow2", "file": "libvirt-9-storage", "size": size}
        monitor.execute("blockdev-create", {"job-id": create_job(node), "options": options})
    mode = "<create mode='storage'/>" if storage_only else ""
    _write_jobs(tb, f"<blockjob name='{create_job(node)}' type='create' state='running' "
                    f"jobflags='0x0'>{mode}<src type='file' format='qcow2'>"
                    f"{_source_xml(path, 9)}</src></blockjob>")
    wait_concluded(tb, create_job(node))
    return path


# Each new flow, set up in a started lab (with devices: a copy's pivot shows in them).
FLOWS: dict[str, Callable[[Lab], object]] = {
    "deleted": delete_committed,
    "backup-pull": backup_pull,
    "backup-shared": lambda tb: backup_pull(tb, shared=True),
    "backup-push": backup_push,
    "backup-sibling": backup_sibling,
    "pull-bitmaps": pull_mid,
    "copy-pivoted": copy_pivoted,
    "copy-shallow": lambda tb: copy_pivoted(tb, shallow=True),
    "create": create,
    "create-failed": lambda tb: create(tb, size=1000),  # not a multiple of 512
}


# The demo's commit, completed or cancelled while no daemon listened, beside the flows above.
COMMITS = ("completed", "cancelled")
ALL_FLOWS = (*COMMITS, *FLOWS)


def set_up(tb: Lab, flow: str) -> None:
    """Flow `flow` of `ALL_FLOWS`, set up in the started lab `tb` up to where a daemon died."""
    if flow in FLOWS:
        FLOWS[flow](tb)
        return
    commit(tb, speed=64 * 1024 if flow == "cancelled" else 0)
    if flow == "cancelled":
        with tb.connect() as monitor:
            monitor.job_cancel("commit-vda-libvirt-2-format")
    wait_concluded(tb)
