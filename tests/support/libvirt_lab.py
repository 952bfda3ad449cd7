"""A private libvirt 9.0 daemon for interop tests, started by ../shared/libvirt-lab.

`running_lab()` starts the shared `start-libvirtd.sh` with all of libvirtd's state in one
scratch directory (`$VLAB`) and yields a `LibvirtLab`; `lab.domain(name)` defines and starts
a fresh paused domain from the shared template with its own images and yields a
`LabDomain`. Both tear down whatever a failed test left: the daemon, every QEMU in the
lab's mount namespaces, the domain's definition, status file and images.

Things learned from running it here (README: "Interop with a real libvirt 9.0"):
- Each `start-libvirtd.sh` makes a new mount namespace. QEMU processes stay in the one of
  the daemon that started them, so a command that follows a domain's `<monitor path>`
  enters the namespace of that domain's QEMU, not the daemon's.
- Never `rmdir` the host's empty mount points (/var/lib/libvirt, ...): removing a
  directory that is a mount point in another namespace detaches that mount there, which
  pulls the state directories from under a running lab (ours or someone else's).
- A daemon killed here may stay a zombie for a moment: dead means gone or state Z.
- A fresh `$VLAB` probes QEMU's capabilities (~8 s); restarts reuse the cache (~1 s) only
  while the daemon runs on the same core (see `start_daemon`).
- libvirtd answers `virsh` before it has reconnected to its domains: wait for what a test
  needs (a job libvirt tracks, a state) instead of assuming it right after a start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from blockjob.demo.images import AddBitmap, ImageSpec, MiB, Write, build_chain, run_tool
from blockjob.qemu.monitor import Monitor, MonitorError
from tests.support.corpus import SHARED
from tests.support.qemu_fixtures import wait_until

LAB_SOURCE = SHARED / "libvirt-lab"
START_SCRIPT = LAB_SOURCE / "start-libvirtd.sh"
TEMPLATE = LAB_SOURCE / "domain.xml"
LIBVIRTD = Path("/usr/sbin/libvirtd")
TOOLS = ("virsh", "nsenter", "unshare", "taskset", "qemu-system-x86_64", "qemu-img", "qemu-io")
# Inside the daemon's namespace these are bind mounts of $VLAB's subdirectories.
NAMESPACE_DIRS = {"/run/libvirt": "run", "/var/lib/libvirt": "lib"}
# The script runs in a mount namespace of its own with a private /run, which the daemon's
# namespace inherits: libvirtd locks /run/libvirtd.pid, outside the script's bind mounts,
# so without it a second lab, or the host's own libvirtd, would refuse to start. Pinned to
# one core: in a VM each core may report different CPUID data, and libvirt then finds its
# capability cache "outdated" and re-probes QEMU (~8 s) on a start at random.
_PRIVATE_RUN = ("unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs -o mode=0755 blockjob-lab-run /run && exec taskset -c "$1" "$0"')
# Bounds that keep a broken daemon from hanging the suite; never timing assertions.
START_LIMIT = 120.0
COMMAND_LIMIT = 60.0


class LabError(Exception):
    """The lab itself failed (daemon did not start, virsh or QMP refused a command)."""


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the libvirt lab starts a privileged libvirtd: needs root"
    if not START_SCRIPT.is_file() or not TEMPLATE.is_file():
        return f"libvirt lab not found under {LAB_SOURCE}"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not LIBVIRTD.is_file():
        missing.append(str(LIBVIRTD))
    if missing:
        return f"libvirt lab needs {', '.join(missing)} (Debian: libvirt-daemon, " \
            "libvirt-daemon-driver-qemu, libvirt-clients)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        return "libvirt lab needs a private mount namespace (unshare -m failed here)"
    return None


UNAVAILABLE = _unavailable()
# `pytestmark = LIBVIRT_MARKS` for a module of interop tests.
LIBVIRT_MARKS = [
    pytest.mark.libvirt,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or ""),
]


def _dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the parenthesised command name, which may itself hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _kill(pid: int, sig: signal.Signals, what: str) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)
    wait_until(lambda: _dead(pid), f"{what} (pid {pid}) to exit", limit=COMMAND_LIMIT)


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pids_in(namespaces: set[str], root: Path) -> list[int]:
    """Processes in `namespaces` that still see this lab's bind mounts: a namespace that
    died since it was recorded may have lent its inode number to someone else's."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _mount_ns(int(entry.name)) in namespaces
            and _sees(int(entry.name), root)]


def _sees(pid: int, root: Path) -> bool:
    try:
        return f"/{root.name}/" in Path(f"/proc/{pid}/mountinfo").read_text()
    except OSError:
        return False


def _run(argv: Sequence[str], *, check: bool, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                          timeout=COMMAND_LIMIT, env=env)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: "
                       f"{(done.stderr or done.stdout).strip()}")
    return done


class LibvirtLab:
    """One scratch `$VLAB` and the private libvirtd serving it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"qemu+unix:///system?socket={root}/run/libvirt-sock"
        self.daemon_pid: int | None = None
        self._namespaces: set[str] = set()
        self._log_offset = 0

    # -- daemon ----------------------------------------------------------------

    @property
    def daemon_running(self) -> bool:
        return self.daemon_pid is not None and not _dead(self.daemon_pid)

    def start_daemon(self) -> None:
        """Start libvirtd on this `$VLAB`; it reconnects to every QEMU it has a status file of."""
        if self.daemon_running:
            raise LabError("libvirtd is already running")
        self._log_offset = self._log_size()
        env = dict(os.environ, VLAB=str(self.root))
        cpu = str(min(os.sched_getaffinity(0)))
        try:
            done = _run([*_PRIVATE_RUN, str(START_SCRIPT), cpu], check=True, env=env)
        except LabError as exc:
            raise LabError(f"{exc}\n{self._errors_since_start()}") from None
        self.daemon_pid = int(done.stdout.split()[-1])
        namespace = _mount_ns(self.daemon_pid)
        if namespace is not None:
            self._namespaces.add(namespace)
        # The script gives up waiting after ~20 s but still prints the PID.
        wait_until(self._answers, "libvirtd to answer", limit=START_LIMIT, interval=0.1)

    def _answers(self) -> bool:
        if not self.daemon_running:
            raise LabError(f"libvirtd exited during start-up:\n{self._errors_since_start()}")
        return self.virsh("version", check=False).returncode == 0

    def kill_daemon(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop libvirtd, by default the way it crashes; QEMU keeps running."""
        if self.daemon_pid is not None:
            _kill(self.daemon_pid, sig, "libvirtd")
        self.daemon_pid = None

    def restart_daemon(self, sig: signal.Signals = signal.SIGKILL) -> None:
        self.kill_daemon(sig)
        self.start_daemon()

    def virsh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["virsh", "-c", self.uri, *args], check=check)

    def log_since_start(self) -> str:
        """libvirtd's debug log written since the last start."""
        with (self.root / "log" / "libvirtd.log").open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def _log_size(self) -> int:
        log = self.root / "log" / "libvirtd.log"
        return log.stat().st_size if log.exists() else 0

    def _errors_since_start(self) -> str:
        """The last errors libvirtd logged (why it refused to start, e.g. a held pid file)."""
        if not (self.root / "log" / "libvirtd.log").exists():
            return "(libvirtd wrote no log)"
        errors = [line for line in self.log_since_start().splitlines() if " error : " in line]
        return "\n".join(errors[-5:])

    # -- domains ---------------------------------------------------------------

    @contextmanager
    def domain(self, name: str, *, base_bitmaps: Sequence[str] = ()) -> Iterator[LabDomain]:
        """A fresh domain `name` (two virtio disks, vda top/mid/base), started paused;
        `base_bitmaps` are recording bitmaps of vda-base, made before its data."""
        if not self.daemon_running:
            self.start_daemon()
        domain = LabDomain(self, name, base_bitmaps)
        try:
            domain.create()
            yield domain
        finally:
            domain.discard()

    def close(self) -> None:
        """Stop the daemon and every process of the lab's namespaces, then remove `$VLAB`."""
        if self.daemon_pid is not None and not _dead(self.daemon_pid):
            try:
                _kill(self.daemon_pid, signal.SIGTERM, "libvirtd")
            except AssertionError:
                _kill(self.daemon_pid, signal.SIGKILL, "libvirtd")
        self.daemon_pid = None
        for pid in _pids_in(self._namespaces, self.root):
            _kill(pid, signal.SIGKILL, "a process of the libvirt lab")
        shutil.rmtree(self.root, ignore_errors=True)


class LabDomain:
    """A domain of the lab: its images, its status file, its QEMU."""

    def __init__(self, lab: LibvirtLab, name: str, base_bitmaps: Sequence[str] = ()) -> None:
        self.lab = lab
        self.name = name
        self.base_bitmaps = tuple(base_bitmaps)
        self.images = lab.root / "images" / name
        self.status_path = lab.root / "run" / "qemu" / f"{name}.xml"
        # The same file as a tool inside the namespace sees it.
        self.namespace_status_path = f"/run/libvirt/qemu/{name}.xml"
        self.qemu_pid: int | None = None

    def image(self, name: str) -> Path:
        return self.images / f"{name}.qcow2"

    def create(self) -> None:
        self.images.mkdir(parents=True)
        # mid carries the README's checkpoint bitmap, which records mid's data.
        build_chain(self.images, [
            ImageSpec("vda-top", (Write(4 * MiB, 2 * MiB, 0x22),)),
            ImageSpec("vda-mid", (AddBitmap("chk0"), Write(0, 4 * MiB, 0x11))),
            ImageSpec("vda-base", self._base_steps()),
        ], 64 * MiB)
        # Absolute backing names, as in the lab's README: with relative ones QEMU names an
        # image `json:{...}` in query-block once a cancelled active commit reshaped the graph.
        for image, backing in (("vda-top", "vda-mid"), ("vda-mid", "vda-base")):
            run_tool(["qemu-img", "rebase", "-u", "-F", "qcow2", "-b",
                      str(self.image(backing)), str(self.image(image))])
        build_chain(self.images, [ImageSpec("vdb")], 16 * MiB)
        template = TEMPLATE.read_text()
        xml = template.replace("@IMAGES@", str(self.images)).replace(
            "<name>lab1</name>", f"<name>{self.name}</name>")
        if f"<name>{self.name}</name>" not in xml:
            raise LabError(f"{TEMPLATE}: no <name>lab1</name> to rename")
        definition = self.lab.root / f"{self.name}.xml"
        definition.write_text(xml)
        self.lab.virsh("define", str(definition))
        self.lab.virsh("start", "--paused", self.name)
        self.qemu_pid = int((self.lab.root / "run" / "qemu" / f"{self.name}.pid").read_text())

    def _base_steps(self) -> tuple[AddBitmap | Write, ...]:
        """base's bitmaps, then 1 MiB of data they record (none without bitmaps)."""
        if not self.base_bitmaps:
            return ()
        return (*map(AddBitmap, self.base_bitmaps), Write(8 * MiB, MiB, 0x33))

    def discard(self) -> None:
        """Destroy and undefine the domain whatever state a test left it in."""
        if self.lab.daemon_running:
            self.lab.virsh("destroy", self.name, check=False)
        if self.qemu_alive():
            assert self.qemu_pid is not None
            _kill(self.qemu_pid, signal.SIGKILL, f"QEMU of {self.name}")
        if self.lab.daemon_running:
            self.lab.virsh("undefine", self.name, check=False)
        # What libvirt did not remove (it was down, or could not load the domain).
        for leftover in (self.status_path, self.status_path.with_suffix(".pid"),
                         self.lab.root / "etc" / "qemu" / f"{self.name}.xml"):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(self.images, ignore_errors=True)

    def qemu_alive(self) -> bool:
        if self.qemu_pid is None or _dead(self.qemu_pid):
            return False
        # Guard against a recycled PID: it must still be this domain's QEMU.
        cmdline = Path(f"/proc/{self.qemu_pid}/cmdline").read_bytes()
        return f"guest={self.name},".encode() in cmdline

    # -- libvirt's view --------------------------------------------------------

    def virsh(self, command: str, *args: str, check: bool = True,
              ) -> subprocess.CompletedProcess[str]:
        """`virsh COMMAND DOMAIN ARGS...`."""
        return self.lab.virsh(command, self.name, *args, check=check)

    def dumpxml(self) -> etree._Element:
        return etree.fromstring(self.virsh("dumpxml").stdout.encode())

    def state(self) -> str:
        return self.virsh("domstate").stdout.strip()

    # -- QEMU ------------------------------------------------------------------

    def qmp(self, command: str, arguments: dict[str, object] | None = None) -> Any:
        """One QMP command: through libvirt while it runs, else on the monitor socket."""
        if not self.lab.daemon_running:
            with Monitor.connect(str(self.monitor_path())) as monitor:
                try:
                    return monitor.execute(command, arguments)
                except MonitorError as exc:
                    raise LabError(str(exc)) from None
        request: dict[str, object] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        reply = json.loads(self.virsh("qemu-monitor-command", json.dumps(request)).stdout)
        if "error" in reply:
            raise LabError(f"{command}: {reply['error']}")
        return reply["return"]

    def monitor_path(self) -> Path:
        """The QMP socket named in the status file, as seen from outside the namespace."""
        monitor = etree.parse(str(self.status_path)).find("monitor")
        if monitor is None:
            raise LabError(f"{self.status_path}: no <monitor>")
        inside = monitor.get("path", "")
        for mount, subdir in NAMESPACE_DIRS.items():
            if inside.startswith(mount + "/"):
                return self.lab.root / subdir / inside[len(mount) + 1:]
        raise LabError(f"{self.status_path}: monitor {inside} is outside the lab's mounts")

    def run_in_namespace(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the mount namespace of this domain's QEMU (daemon up or down)."""
        if not self.qemu_alive():
            raise LabError(f"QEMU of {self.name} is not running")
        return _run(["nsenter", "-t", str(self.qemu_pid), "-m", "--", *argv], check=False)

    def blockjob(self, *args: str) -> subprocess.CompletedProcess[str]:
        """This checkout's `blockjob` CLI, inside the namespace."""
        return self.run_in_namespace([sys.executable, "-m", "blockjob", *args])


def disk_alias(domain: LabDomain, target: str) -> str:
    """The disk's device alias, from the status file (readable while libvirtd is down)."""
    status = etree.parse(str(domain.status_path))
    alias = status.find(f"domain/devices/disk/target[@dev='{target}']/../alias")
    if alias is None:
        raise LabError(f"{domain.status_path}: disk {target} has no alias")
    return alias.get("name", "")


def libvirt_chain(root: etree._Element, target: str) -> list[str]:
    """The files of a disk's chain in `virsh dumpxml`, top first."""
    disk = root.find(f"devices/disk/target[@dev='{target}']/..")
    if disk is None:
        raise LabError(f"dumpxml: no disk {target}")
    files = []
    layer: etree._Element | None = disk
    while layer is not None:
        source = layer.find("source")
        if source is None:  # the chain's terminating empty <backingStore/>
            break
        files.append(source.get("file", ""))
        layer = layer.find("backingStore")
    return files


def qemu_chain(domain: LabDomain, target: str) -> list[str]:
    """The files under the disk's device in QEMU's `query-block`, top first."""
    qdev = f"/machine/peripheral/{disk_alias(domain, target)}/"
    for device in domain.qmp("query-block"):
        if str(device.get("qdev", "")).startswith(qdev):
            files = []
            image: dict[str, Any] | None = device["inserted"]["image"]
            while image is not None:
                files.append(str(image["filename"]))
                image = image.get("backing-image")
            return files
    raise LabError(f"query-block: no device {qdev}")


def format_node(domain: LabDomain, image: Path) -> str:
    """QEMU's qcow2 node for `image`."""
    for node in domain.qmp("query-named-block-nodes", {"flat": True}):
        if node["drv"] == "qcow2" and node["file"] == str(image):
            return str(node["node-name"])
    raise LabError(f"query-named-block-nodes: no qcow2 node for {image}")


def node_bitmaps(domain: LabDomain, node_name: str) -> list[str]:
    """Names of the dirty bitmaps QEMU has on one node."""
    for node in domain.qmp("query-named-block-nodes", {"flat": True}):
        if node["node-name"] == node_name:
            return [str(bitmap["name"]) for bitmap in node.get("dirty-bitmaps", ())
                    if "name" in bitmap]
    raise LabError(f"query-named-block-nodes: no node {node_name}")


def mirror(root: etree._Element, target: str) -> etree._Element | None:
    return root.find(f"devices/disk/target[@dev='{target}']/../mirror")


def recorded_jobs(domain: LabDomain) -> dict[str, str]:
    """Job name -> state in the status file as it is on disk now."""
    jobs = etree.parse(str(domain.status_path)).findall("blockjobs/blockjob")
    return {job.get("name", ""): job.get("state", "") for job in jobs}


def qemu_jobs(domain: LabDomain) -> dict[str, str]:
    return {str(job["id"]): str(job["status"]) for job in domain.qmp("query-jobs")}


def line_of(path: Path, pattern: str) -> int:
    """The 1-based line of `path` where `pattern` (a regex) first matches."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if re.search(pattern, line):
            return number
    raise LabError(f"{path}: nothing matches {pattern!r}")


@contextmanager
def running_lab() -> Iterator[LibvirtLab]:
    """A started lab in a short scratch directory (socket paths must stay < 108 bytes)."""
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)
    lab = LibvirtLab(Path(tempfile.mkdtemp(prefix="bj-vlab-")))
    try:
        lab.start_daemon()
        yield lab
    finally:
        lab.close()


def wait_for(check: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll a libvirt or QEMU condition; the limit only guards against a hang."""
    wait_until(check, what, limit=limit, interval=0.05)
