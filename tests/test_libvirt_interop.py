"""Interop with a real libvirt 9.0 (../shared/libvirt-lab): libvirt writes the state, its
daemon dies, blockjob reads and recovers the file inside libvirt's mount namespace, and the
restarted daemon must agree with QEMU about chain and mirror.

One daemon serves the whole module; each test defines its own domain and leaves none behind.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator

import pytest

from blockjob.cli import main
from tests.support.libvirt_lab import (
    LIBVIRT_MARKS,
    LabDomain,
    LabError,
    LibvirtLab,
    format_node,
    libvirt_chain,
    line_of,
    mirror,
    node_bitmaps,
    qemu_chain,
    qemu_jobs,
    recorded_jobs,
    running_lab,
    wait_for,
)

pytestmark = LIBVIRT_MARKS
# Bytes per second: slow enough that a job is still running after a daemon restart.
CRAWL = "64"
STALE_MIRROR = r"<mirror type='file' job=''>"


@pytest.fixture(scope="module")
def lab() -> Iterator[LibvirtLab]:
    with running_lab() as started:
        yield started


def files(dom: LabDomain, *images: str) -> list[str]:
    return [str(dom.image(image)) for image in images]


def libvirt_job(dom: LabDomain) -> str | None:
    """The type of vda's job as libvirt tracks it (`virsh blockjob --raw`), if any."""
    raw = dom.virsh("blockjob", "vda", "--raw", check=False).stdout
    found = re.search(r"^\s*type=(.*)$", raw, re.MULTILINE)
    return found.group(1) if found else None


def recorded_only(dom: LabDomain, state: str) -> str:
    """Wait until libvirt's status file records exactly one job, in `state`; its name."""
    wait_for(lambda: list(recorded_jobs(dom).values()) == [state],
             f"libvirt to record one job {state}")
    (name,) = recorded_jobs(dom)
    return name


def assert_agree(dom: LabDomain, *chain: str) -> None:
    """libvirt and QEMU both run vda on `chain`, and libvirt shows no mirror any more."""
    root = dom.dumpxml()
    assert libvirt_chain(root, "vda") == files(dom, *chain)
    assert qemu_chain(dom, "vda") == files(dom, *chain)
    assert mirror(root, "vda") is None


def cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def libvirt_loads(lab: LibvirtLab, dom: LabDomain) -> None:
    """Start libvirtd: it loads the domain's status file without an error about it."""
    lab.start_daemon()
    log = lab.log_since_start()
    errors = [line for line in log.splitlines() if " error : " in line
              and ("blockjob" in line.lower() or "mirror" in line or dom.name in line)]
    assert "Failed to load" not in log and errors == [], errors
    assert dom.state() == "paused"


def roundtrips(dom: LabDomain, capsys: pytest.CaptureFixture[str]) -> None:
    """The file libvirt wrote is written back byte for byte and valid under both schemas."""
    path = str(dom.status_path)
    assert cli("roundtrip", path, capsys=capsys) == (0, dom.status_path.read_text())
    assert cli("validate", path, capsys=capsys) == (0, f"{path}: valid (rng valid, xsd valid)\n")


def recovered(dom: LabDomain) -> str:
    """`blockjob recover` of the domain inside libvirt's namespace; its report."""
    done = dom.blockjob("recover", dom.namespace_status_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_running_commit_is_adopted_and_finished_by_libvirt(
    lab: LibvirtLab, capsys: pytest.CaptureFixture[str]
) -> None:
    with lab.domain("bj-running") as dom:
        dom.virsh("blockcommit", "vda", "--top", str(dom.image("vda-mid")),
                  "--base", str(dom.image("vda-base")), "--bandwidth", CRAWL, "--bytes")
        name = recorded_only(dom, "running")
        lab.kill_daemon()

        path = str(dom.status_path)
        code, out = cli("show", path, capsys=capsys)
        assert code == 0, out
        assert re.search(rf"{name}\s+commit\s+running\s+vda", out), out
        code, out = cli("validate", path, capsys=capsys)
        assert (code, out) == (0, f"{path}: valid (rng valid, xsd valid)\n")

        before = dom.status_path.read_bytes()
        dry = dom.blockjob("recover", "--dry-run", dom.namespace_status_path)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert f"{name}: adopt (QEMU running)" in dry.stdout
        assert dom.status_path.read_bytes() == before
        assert [(job["device"], job["speed"]) for job in dom.qmp("query-block-jobs")] == [
            (name, int(CRAWL))]

        lab.start_daemon()
        wait_for(lambda: libvirt_job(dom) == "Block Commit", "libvirt to track the commit")
        dom.virsh("blockjob", "vda", "--bandwidth", "0")
        wait_for(lambda: not recorded_jobs(dom), "libvirt to finish the commit")
        assert qemu_jobs(dom) == {}
        assert_agree(dom, "vda-top", "vda-base")


def reproduce_stale_mirror(lab: LibvirtLab, dom: LabDomain) -> None:
    """libvirt 9.0's own bug: it cancels a broken active commit and keeps its `<mirror>`."""
    dom.virsh("blockcommit", "vda", "--active", "--bandwidth", CRAWL, "--bytes")
    name = recorded_only(dom, "running")
    lab.kill_daemon()
    text = dom.status_path.read_text()
    broken, count = re.subn(r"(<blockjob [^>]*>.*?<base node=')[^']*'",
                            r"\1libvirt-99-format'", text, count=1, flags=re.DOTALL)
    assert count == 1
    dom.status_path.write_text(broken)

    lab.start_daemon()
    # libvirt marks the job invalid (no such base node) and cancels it in QEMU.
    wait_for(lambda: not recorded_jobs(dom) and name not in qemu_jobs(dom),
             "libvirt to cancel the broken job")
    assert re.search(STALE_MIRROR, dom.status_path.read_text())
    lab.restart_daemon(signal.SIGTERM)


def test_libvirt_cannot_load_the_mirror_it_left(lab: LibvirtLab) -> None:
    with lab.domain("bj-stale") as dom:
        reproduce_stale_mirror(lab, dom)
        assert "unknown mirror job type ''" in lab.log_since_start()
        assert dom.state() == "shut off"
        assert dom.qemu_alive()


def test_stale_mirror_is_reported_and_repaired_for_libvirt(
    lab: LibvirtLab, capsys: pytest.CaptureFixture[str]
) -> None:
    with lab.domain("bj-repair") as dom:
        reproduce_stale_mirror(lab, dom)
        lab.kill_daemon()
        path = str(dom.status_path)
        line = line_of(dom.status_path, STALE_MIRROR)
        for command in ("show", "validate"):
            code, out = cli(command, path, capsys=capsys)
            assert code == 1, out
            assert f"{path}:{line}:" in out

        repaired = dom.blockjob("recover", dom.namespace_status_path)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert "<mirror" not in dom.status_path.read_text()
        lab.start_daemon()
        assert "Failed to load" not in lab.log_since_start()
        assert dom.state() == "paused"
        assert_agree(dom, "vda-top", "vda-mid", "vda-base")


def adopt_ready_commit(lab: LibvirtLab, dom: LabDomain) -> str:
    """An active commit that became ready while libvirtd was down, adopted by `recover`."""
    dom.virsh("blockcommit", "vda", "--active", "--bandwidth", CRAWL, "--bytes")
    name = recorded_only(dom, "running")
    lab.kill_daemon()
    dom.qmp("block-job-set-speed", {"device": name, "speed": 0})
    wait_for(lambda: qemu_jobs(dom) == {name: "ready"}, "the active commit to be ready")
    adopted = dom.blockjob("recover", dom.namespace_status_path)
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert f"{name}: adopt (QEMU ready)" in adopted.stdout
    assert recorded_jobs(dom) == {name: "ready"}
    return name


def restart_and_pivot(lab: LibvirtLab, dom: LabDomain) -> str | None:
    """Restart libvirtd, pivot the adopted commit with virsh; the mirror's `ready` before it."""
    lab.start_daemon()
    wait_for(lambda: libvirt_job(dom) == "Active Block Commit",
             "libvirt to track the active commit")
    shown = mirror(dom.dumpxml(), "vda")
    assert shown is not None
    dom.virsh("blockjob", "vda", "--pivot")
    wait_for(lambda: not recorded_jobs(dom), "libvirt to finish the pivot")
    assert_agree(dom, "vda-base")
    return shown.get("ready")


def test_adopted_ready_commit_pivots_under_libvirt(lab: LibvirtLab) -> None:
    with lab.domain("bj-pivot") as dom:
        adopt_ready_commit(lab, dom)
        restart_and_pivot(lab, dom)


def test_adopted_ready_commit_has_libvirts_ready_mirror(lab: LibvirtLab) -> None:
    with lab.domain("bj-ready") as dom:
        adopt_ready_commit(lab, dom)
        assert re.search(r"<mirror type='file' job='active-commit' ready='yes'>",
                         dom.status_path.read_text())
        assert restart_and_pivot(lab, dom) == "yes"


TMP_BITMAP = "libvirt-tmp-activewrite"


@pytest.mark.parametrize("pivoted", [pytest.param(True, id="pivoted"),
                                     pytest.param(False, id="not-pivoted")])
def test_recovered_pivot_window_agrees_with_qemu(lab: LibvirtLab, pivoted: bool) -> None:
    with lab.domain(f"bj-window-{pivoted:d}") as dom:
        dom.virsh("blockcommit", "vda", "--active")
        name = recorded_only(dom, "ready")
        base = format_node(dom, dom.image("vda-base"))
        lab.kill_daemon()
        # libvirt dies after QEMU ended the ready job and dropped it, before its file says
        # so: a pivot as libvirt does it (its temporary bitmap first), or an abort.
        if pivoted:
            dom.qmp("transaction", {"actions": [{"type": "block-dirty-bitmap-add", "data": {
                "node": base, "name": TMP_BITMAP, "persistent": False, "disabled": False}}]})
            dom.qmp("job-complete", {"id": name})
        else:
            dom.qmp("block-job-cancel", {"device": name})
        wait_for(lambda: qemu_jobs(dom) == {name: "concluded"}, "the job to conclude")
        dom.qmp("job-dismiss", {"id": name})
        chain = ("vda-base",) if pivoted else ("vda-top", "vda-mid", "vda-base")
        assert qemu_chain(dom, "vda") == files(dom, *chain)
        assert recorded_jobs(dom) == {name: "ready"}

        recovered = dom.blockjob("recover", dom.namespace_status_path)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        lab.start_daemon()
        assert_agree(dom, *chain)
        assert TMP_BITMAP not in node_bitmaps(dom, base)


def test_harness_cleans_up_after_a_failed_test(lab: LibvirtLab) -> None:
    """A test that dies with libvirtd down and a job running leaves no domain behind."""
    with pytest.raises(RuntimeError), lab.domain("bj-dropped") as dom:
        dom.virsh("blockcommit", "vda", "--active", "--bandwidth", CRAWL, "--bytes")
        lab.kill_daemon()
        raise RuntimeError("the test failed here")
    assert not dom.qemu_alive()
    assert not dom.status_path.exists()
    assert not dom.images.exists()
    lab.start_daemon()
    assert "bj-dropped" not in lab.virsh("list", "--all", "--name").stdout


def test_a_backup_over_two_disks_one_cancelled_while_away_is_ended_whole(
    lab: LibvirtLab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pull backup of vda and vdb whose vda job was cancelled while libvirtd was down.
    libvirt 9.0 itself cancels vdb's job then (`block-job-cancel`) and ends the backup;
    recovery adopted vdb's and dropped vda's, so the restarted libvirt, whose <backups>
    still said vda was running, kept the backup forever, even past `domjobabort` (no job
    left in QEMU or the file). Now recovery cancels vdb's too."""
    with lab.domain("bj-backup-two") as dom:
        pull = dom.images / "pull.xml"
        pull.write_text(
            f"<domainbackup mode='pull'><server transport='unix' socket='{dom.images}/nbd'/>"
            f"<disks><disk name='vda' type='file'><scratch file='{dom.image('s-vda')}'/>"
            f"</disk><disk name='vdb' type='file'><scratch file='{dom.image('s-vdb')}'/>"
            "</disk></disks></domainbackup>")
        dom.virsh("backup-begin", str(pull))
        wait_for(lambda: list(recorded_jobs(dom).values()) == ["running", "running"],
                 "libvirt to record both jobs running")
        (vda,) = [name for name in recorded_jobs(dom) if name.startswith("backup-vda-")]
        (vdb,) = [name for name in recorded_jobs(dom) if name.startswith("backup-vdb-")]
        roundtrips(dom, capsys)
        lab.kill_daemon()
        dom.qmp("job-cancel", {"id": vda})
        wait_for(lambda: qemu_jobs(dom) == {vda: "concluded", vdb: "running"},
                 "vda's backup job to be cancelled")
        report = recovered(dom)
        assert f"{vdb}: finish-failed" in report and f"job-cancel {vdb}" in report
        assert qemu_jobs(dom) == {} and recorded_jobs(dom) == {}
        text = dom.status_path.read_text()
        assert "<backups>" not in text and "async='backup'" not in text
        libvirt_loads(lab, dom)
        assert re.search(r"Job type:\s+None", dom.virsh("domjobinfo").stdout)
        backs_up(dom, "full")
        assert recorded_jobs(dom) == {} and qemu_jobs(dom) == {}


def backs_up(dom: LabDomain, target: str, incremental: str | None = None) -> None:
    """libvirt runs a push backup of vda into image `target` to its end."""
    since = f"<incremental>{incremental}</incremental>" if incremental else ""
    backup = dom.images / f"{target}.xml"
    backup.write_text(
        f"<domainbackup>{since}<disks><disk name='vda' type='file'><target file='"
        f"{dom.image(target)}'/><driver type='qcow2'/></disk>"
        "<disk name='vdb' backup='no'/></disks></domainbackup>")
    dom.virsh("backup-begin", str(backup))
    # libvirt reports the backup completed before it saves the file without its job; it
    # forgets the report once read, unless asked to keep it.
    wait_for(lambda: "Completed" in dom.virsh("domjobinfo", "--completed",
                                              "--keep-completed").stdout
             and not recorded_jobs(dom), f"the backup into {target} to complete")


def test_shallow_copy_pivoted_while_away_keeps_the_chain_below(
    lab: LibvirtLab, capsys: pytest.CaptureFixture[str]
) -> None:
    """libvirt records a shallow copy into a new image without the mirror's backing; the
    copy pivoted while libvirtd was down runs on top of the disk's old mid and base, and
    carries the checkpoint's bitmap over, so the next incremental backup works."""
    with lab.domain("bj-shallow") as dom:
        dom.virsh("checkpoint-create-as", "--name", "ck1", "--diskspec",
                  "vda,checkpoint=bitmap", "--diskspec", "vdb,checkpoint=no")
        dom.virsh("blockcopy", "vda", str(dom.image("copy")), "--shallow", "--transient-job",
                  "--bandwidth", CRAWL, "--bytes")
        name = recorded_only(dom, "running")
        roundtrips(dom, capsys)
        lab.kill_daemon()
        dom.qmp("block-job-set-speed", {"device": name, "speed": 0})
        wait_for(lambda: qemu_jobs(dom) == {name: "ready"}, "the copy to be ready")
        dom.qmp("job-complete", {"id": name})
        wait_for(lambda: qemu_jobs(dom) == {name: "concluded"}, "the copy to pivot")
        assert f"{name}: finish-completed" in recovered(dom)
        libvirt_loads(lab, dom)
        assert recorded_jobs(dom) == {} and qemu_jobs(dom) == {}
        assert_agree(dom, "copy", "vda-mid", "vda-base")
        assert "ck1" in node_bitmaps(dom, format_node(dom, dom.image("copy")))
        backs_up(dom, "since-ck1", incremental="ck1")


def test_backup_ended_while_away_leaves_libvirt_free_for_the_next(
    lab: LibvirtLab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pull backup cancelled while libvirtd was down: recovered, libvirt restarts with no
    backup waiting, the scratch image is out of QEMU, and a new backup runs."""
    with lab.domain("bj-backup") as dom:
        scratch = dom.image("scratch")
        pull = dom.images / "pull.xml"
        pull.write_text(
            f"<domainbackup mode='pull'><server transport='unix' socket='{dom.images}/nbd'/>"
            f"<disks><disk name='vda' type='file'><scratch file='{scratch}'/></disk>"
            "<disk name='vdb' backup='no'/></disks></domainbackup>")
        dom.virsh("backup-begin", str(pull))
        name = recorded_only(dom, "running")
        roundtrips(dom, capsys)
        lab.kill_daemon()
        dom.qmp("job-cancel", {"id": name})
        wait_for(lambda: qemu_jobs(dom) == {name: "concluded"}, "the backup to be cancelled")
        assert f"{name}: finish-failed" in recovered(dom)
        text = dom.status_path.read_text()
        assert "<backups>" not in text and "async='backup'" not in text
        libvirt_loads(lab, dom)
        assert re.search(r"Job type:\s+None", dom.virsh("domjobinfo").stdout)
        assert str(scratch) not in [node["file"] for node in
                                    dom.qmp("query-named-block-nodes", {"flat": True})]
        assert not scratch.exists(), "libvirt deletes a pull backup's scratch file"
        backs_up(dom, "full")
        assert recorded_jobs(dom) == {} and qemu_jobs(dom) == {}
        assert_agree(dom, "vda-top", "vda-mid", "vda-base")


def _push_backup_half_ended_while_away(lab: LibvirtLab, dom: LabDomain) -> bool:
    """A push backup of vda and vdb begun, libvirtd killed, vdb's job held back (rate 1)
    and vda's completed while the daemon is down. False when a copy outran the kill (the
    copies are of empty 32 GiB disks, a third of a second each): libvirt saw vda's end,
    or vdb's ended too."""
    for disk in ("vda", "vdb"):
        dom.virsh("blockresize", disk, "32G")
    push = dom.images / "push.xml"
    push.write_text(
        "<domainbackup mode='push'><disks>"
        f"<disk name='vda' type='file'><target file='{dom.image('vda.push')}'/></disk>"
        f"<disk name='vdb' type='file'><target file='{dom.image('vdb.push')}'/></disk>"
        "</disks></domainbackup>")
    dom.virsh("backup-begin", str(push))
    lab.kill_daemon()
    recorded = recorded_jobs(dom)
    if sorted(recorded.values()) != ["running", "running"]:
        return False
    vda, vdb = sorted(recorded)
    try:
        dom.qmp("block-job-set-speed", {"device": vdb, "speed": 1})
    except LabError:
        return False  # vdb's job concluded already
    wait_for(lambda: qemu_jobs(dom).get(vda) == "concluded", "vda's job to complete")
    return True


def test_a_push_backup_whose_first_job_ended_while_away_is_ended_by_libvirt(
    lab: LibvirtLab,
) -> None:
    """A push backup over two disks: vda's job completed while libvirtd was down, vdb's
    still runs. Recovery finishes vda's job and adopts vdb's; the restarted libvirt ends
    the backup once vdb's completes. It kept it forever, the domain's job lock with it,
    while `<backups>` still said vda's disk was running."""
    for attempt in range(3):  # the set-up races QEMU's copies, which nearly never win
        with lab.domain(f"bj-push-two-{attempt}") as dom:
            if not _push_backup_half_ended_while_away(lab, dom):
                lab.start_daemon()  # so the domain is discarded as libvirt's
                continue
            vda, vdb = sorted(recorded_jobs(dom))
            report = recovered(dom)
            assert f"{vda}: finish-completed" in report and f"{vdb}: adopt" in report
            libvirt_loads(lab, dom)
            dom.qmp("block-job-set-speed", {"device": vdb, "speed": 0})
            wait_for(lambda: "<backups>" not in dom.status_path.read_text(),
                     "libvirt to end the backup")
            assert re.search(r"Job type:\s+None", dom.virsh("domjobinfo").stdout)
            assert recorded_jobs(dom) == {} and qemu_jobs(dom) == {}
            return
    pytest.fail("three times a copy outran libvirtd's kill")
