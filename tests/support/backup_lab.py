"""A libvirt-style pull backup in a real QEMU, with the status file libvirt 9.0 writes
for it (`<blockjob type='backup'>` with its scratch `<store>`, the async
`<job async='backup'>` and `<backups>`): its scratch image blockdev-added over the
disk's top, a `sync=none` backup job into it, and the scratch exported over NBD."""

from __future__ import annotations

from pathlib import Path

from blockjob.demo.images import run_tool
from blockjob.demo.lab import Lab
from blockjob.qemu.monitor import Monitor

ASYNC_JOB = "<job type='none' async='backup' flags='0x0' asyncStarted='1'/>"


def scratch_node(index: int) -> str:
    return f"libvirt-{index}-format"


def backup_job(target: str, top: int) -> str:
    return f"backup-{target}-libvirt-{top}-format"


def _store_xml(path: Path, index: int) -> str:
    return (f"<source file='{path}' index='{index}'><privateData><nodenames>"
            f"<nodename type='storage' name='libvirt-{index}-storage'/>"
            f"<nodename type='format' name='libvirt-{index}-format'/>"
            f"</nodenames></privateData></source>")


def start_pull(monitor: Monitor, tb: Lab, target: str, top: int, index: int) -> Path:
    """Scratch image `index` over disk `target`'s top node `top`, its backup job, and its
    NBD export (id `target`; the server is started by the first call)."""
    scratch = tb.directory / f"{target}.scratch.qcow2"
    run_tool(["qemu-img", "create", "-q", "-f", "qcow2", str(scratch), "16M"])
    monitor.execute("blockdev-add", {"driver": "file", "node-name": f"libvirt-{index}-storage",
                                     "filename": str(scratch)})
    monitor.execute("blockdev-add", {"driver": "qcow2", "node-name": scratch_node(index),
                                     "file": f"libvirt-{index}-storage",
                                     "backing": f"libvirt-{top}-format"})
    monitor.execute("blockdev-backup", {
        "job-id": backup_job(target, top), "device": f"libvirt-{top}-format",
        "target": scratch_node(index), "sync": "none", "auto-dismiss": False})
    if not monitor.execute("query-block-exports"):
        monitor.execute("nbd-server-start", {"addr": {
            "type": "unix", "data": {"path": str(tb.directory / "nbd.sock")}}})
    monitor.execute("block-export-add", {"type": "nbd", "id": target,
                                         "node-name": scratch_node(index)})
    return scratch


def record_pull(tb: Lab, jobs: list[tuple[str, int, Path, int]]) -> None:
    """Write the backup of `jobs` (target, top node index, scratch, its index) into the
    lab's status file the way libvirt 9.0 writes a running pull backup."""
    blockjobs = "".join(
        f"<blockjob name='{backup_job(target, top)}' type='backup' state='running' "
        f"jobflags='0x0'><disk dst='{target}'/><store type='file' format='qcow2'>"
        f"{_store_xml(scratch, index)}</store></blockjob>"
        for target, top, scratch, index in jobs)
    disks = "".join(
        f"<disk name='{target}' backup='yes' state='running' type='file' "
        f"backupmode='full' index='{index}'><driver type='qcow2'/>"
        f"<scratch file='{scratch}'/></disk>" for target, _, scratch, index in jobs)
    backups = (f"<backups><domainbackup mode='pull'><server transport='unix' "
               f"socket='{tb.directory / 'nbd.sock'}'/><disks>{disks}</disks>"
               f"</domainbackup></backups>\n  ")
    text = tb.status_path.read_text()
    text = text.replace("<blockjobs active='no'/>",
                        f"<blockjobs active='yes'>{blockjobs}</blockjobs>")
    text = text.replace("  <nodename index=", f"  {ASYNC_JOB}\n  <nodename index=", 1)
    text = text.replace("<domain type=", backups + "<domain type=", 1)
    tb.status_path.write_text(text)


def exports(monitor: Monitor) -> dict[str, str]:
    """Export id -> node name, as QEMU serves them now."""
    return {str(e["id"]): str(e["node-name"]) for e in monitor.execute("query-block-exports")}
