"""Real libvirt 9.0 domains with virtiofs ``<filesystem>``s served by hostfs.

libvirt starts the daemon itself (qemu_virtiofs.c, ``qemuVirtioFSBuildCommandLine``:
``--fd=N -o source=DIR[,cache=M][,sandbox=M][,xattr][,flock][,posix_lock]
[--thread-pool-size=N]``), QEMU boots the project's guest, a workload runs on the
share, and stopping the domain must leave no hostfs process behind.  Two domains keep
the TCG boots few:

- A: ``<binary path>`` with every sub-element libvirt 9.0 has (``<cache>``,
  ``<lock>``, ``<thread_pool>``, ``<sandbox>``) on a share whose path has a comma,
  plus a second share whose ``<binary>`` adds ``--allow-direct-io --allow-mmap``;
  the guest (Linux 6.12) runs ``io-flags.sh`` (``dd`` with ``oflag/iflag=direct``, an O_DIRECT
  descriptor held open, a shared mmap write) and the host judges each outcome;
- B: no ``<binary>``: libvirt finds hostfs through the ``50-hostfs.json`` that
  ``hostfs install-vhost-user`` writes; the smoke workload runs, ``virsh reboot``
  (ACPI power button; libvirt answers the guest's power-off with a reset) runs it
  again on the same daemon, a libvirtd restart leaves the domain and its hostfs
  running, and ``virsh destroy`` through the restarted libvirtd leaves nothing.

libvirtd and virtlogd run as children of the test when none is running (no systemd).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hostfs.guest.console import GuestReport, parse_console
from hostfs.guest.initramfs import GuestSetup, build_initramfs, workload_path
from hostfs.guest.kernel import GuestKernel

pytestmark = pytest.mark.slow

URI = "qemu:///system"
REPO = Path(__file__).parents[2]
GUEST_TIMEOUT = 300.0
"""A guard against a hung guest, not a measurement: TCG boots in ~10 s here."""
VHOST_USER_DIR = Path("/usr/share/qemu/vhost-user")
HOSTFS_NAMES = ("hostfs.cli.serve", "hostfs-vhost-user-fs")
"""In the command line of hostfs as this test's ``<binary>`` and as the venv's entry point."""

DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>2</vcpu>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{work}/vmlinuz</kernel>
    <initrd>{work}/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>{on_reboot}</on_reboot>
  <devices>
{filesystems}
    <serial type='file'><source path='{work}/console.log'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""

FILESYSTEM = """    <filesystem type='mount' accessmode='passthrough'>
      <driver type='virtiofs' queue='1024'/>{binary}
      <source dir='{source}'/>
      <target dir='{tag}'/>
    </filesystem>"""

SUB_ELEMENTS = """
      <binary path='{path}' xattr='on'>
        <cache mode='none'/>
        <lock posix='on' flock='on'/>
        <thread_pool size='2'/>
        <sandbox mode='chroot'/>
      </binary>"""
"""Every ``<binary>`` child libvirt 9.0 knows (docs/formatdomain.rst, "Filesystems")."""

IO_BINARY = """
      <binary path='{path}'>
        <cache mode='none'/>
        <lock posix='off' flock='off'/>
      </binary>"""


def virsh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-c", URI, *argv], capture_output=True, text=True, timeout=120, check=check
    )


def wait_until(ready: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


@dataclass
class Libvirtd:
    """The libvirtd the tests talk to; ``process`` is None when it is the host's own."""

    process: subprocess.Popen[bytes] | None
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def pid(self) -> int:
        if self.process is not None:
            return self.process.pid
        return int(Path("/run/libvirtd.pid").read_text())

    def restart(self) -> None:
        """SIGTERM and start again: libvirtd leaves running domains running (it reconnects)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.process = subprocess.Popen(["libvirtd"])
        wait_until(answers, "the restarted libvirtd answers")


def answers() -> bool:
    return virsh("version", check=False).returncode == 0


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[Libvirtd]:
    """A running libvirtd: the host's, or virtlogd + libvirtd started here and stopped after."""
    if answers():
        yield Libvirtd(None)
        return
    helper = subprocess.Popen(["virtlogd"])
    daemon = Libvirtd(subprocess.Popen(["libvirtd"]), [helper])
    try:
        wait_until(answers, "libvirtd answers")
        yield daemon
    finally:
        for process in (daemon.process, helper):
            assert process is not None
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def hostfs_pids(share: Path) -> list[int]:
    """Processes libvirt started for this share: the sandbox's supervisor and the daemon."""
    needle = f"source={share}".replace(",", ",,")  # as libvirt escapes it
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = cmdline(int(entry))
            except OSError:
                continue
            ours = any(name in word for word in argv for name in HOSTFS_NAMES)
            if ours and any(needle in word for word in argv):
                pids.append(int(entry))
    return sorted(pids)


def parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def daemon_of(share: Path) -> int:
    """The serving process: the supervisor's child (the only process without a sandbox)."""
    wait_until(lambda: hostfs_pids(share), f"a hostfs process serving {share}")
    pids = hostfs_pids(share)
    children = [pid for pid in pids if parent(pid) in pids]
    return children[0] if children else pids[0]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def held_flags(pid: int, host_file: Path) -> int | None:
    """``flags:`` (octal, proc(5) fdinfo) of ``pid``'s open file of ``host_file``, found by
    inode (a sandboxed daemon's paths are relative to its own root); the ``O_PATH``
    descriptor the daemon keeps per node is not an open file."""
    try:
        wanted = host_file.stat()
    except FileNotFoundError:
        return None
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino):
            for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
                if line.startswith("flags:") and not int(line.split()[1], 8) & os.O_PATH:
                    return int(line.split()[1], 8)
    return None


def request_table(log: Path, pid: int) -> dict[str, int]:
    """Calls per FUSE opcode so far: SIGUSR1 makes ``pid`` log its table (hostfs.fuse.stats)
    to the log libvirt keeps of the daemon's stderr."""
    start = log.stat().st_size
    os.kill(pid, signal.SIGUSR1)
    # One log record, written whole (one write of a line-buffered stderr).
    wait_until(lambda: "FUSE requests:" in log.read_text()[start:], f"a request table in {log}")
    table = log.read_text()[start:].partition("FUSE requests:")[2]
    rows = re.findall(r"^([A-Z0-9_]+) +(\d+) +\d+ ", table, re.MULTILINE)
    return {name: int(calls) for name, calls in rows}


def write_binary(path: Path, *extra: str) -> None:
    """A ``<binary>``: this checkout's ``hostfs-vhost-user-fs`` (the venv's entry point runs
    whichever hostfs the venv installed), with ``extra`` flags after libvirt's."""
    main = "import sys; from hostfs.cli.serve import main; sys.exit(main())"
    flags = "".join(f" {flag}" for flag in extra)
    path.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -c "{main}" "$@"{flags}\n')
    path.chmod(0o755)


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """World-traversable: QEMU runs as libvirt-qemu and must reach the kernel and initrd."""
    work = Path(tempfile.mkdtemp(prefix="hostfs-libvirt-", dir="/tmp"))
    work.chmod(0o755)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Domain:
    """A transient domain (``virsh create``) and its serial console."""

    def __init__(self, work: Path, kernel: GuestKernel, setup: GuestSetup, xml: str) -> None:
        self.name = f"hostfs-test-{os.getpid()}-{work.name[-6:]}"
        self.console = work / "console.log"
        shutil.copy(kernel.vmlinuz, work / "vmlinuz")
        (work / "initrd.gz").write_bytes(build_initramfs(kernel, setup))
        (work / "domain.xml").write_text(xml.replace("{name}", self.name))
        self.xml = work / "domain.xml"

    def text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def report(self) -> GuestReport:
        return parse_console(self.text())

    def wait_for(self, marker: str, count: int = 1) -> None:
        wait_until(
            lambda: self.text().count(marker) >= count,
            f"{marker} #{count} on the console:\n{self.text()[-2000:]}",
            GUEST_TIMEOUT,
        )

    def running(self) -> bool:
        return self.name in virsh("list", "--name").stdout.split()


def domain_xml(work: Path, filesystems: list[str], on_reboot: str = "destroy") -> str:
    return DOMAIN.format(
        name="{name}", work=work, filesystems="\n".join(filesystems), on_reboot=on_reboot
    )


def test_binary_sub_elements_direct_io_and_mmap(
    libvirtd: Libvirtd, guest_kernel_612: GuestKernel, work_dir: Path
) -> None:
    """On Linux 6.12: a guest maps a direct-I/O file shared only with
    FUSE_DIRECT_IO_ALLOW_MMAP, which Linux >= 6.6 knows (6.1 refuses, flag or not)."""
    share = work_dir / "a,share"  # a comma: libvirt escapes it as ',,' in -o source=
    io_share = work_dir / "io"
    share.mkdir()
    io_share.mkdir()
    write_binary(work_dir / "hostfs-vhost-user-fs")
    write_binary(work_dir / "hostfs-io-flags", "--allow-direct-io", "--allow-mmap")
    xml = domain_xml(
        work_dir,
        [
            FILESYSTEM.format(
                binary=SUB_ELEMENTS.format(path=work_dir / "hostfs-vhost-user-fs"),
                source=share,
                tag="hostfs",
            ),
            FILESYSTEM.format(
                binary=IO_BINARY.format(path=work_dir / "hostfs-io-flags"),
                source=io_share,
                tag="io",
            ),
        ],
    )
    setup = GuestSetup(workload_path("io-flags"), environment={"HOSTFS_IO_TAG": "io"})
    domain = Domain(work_dir, guest_kernel_612, setup, xml)
    libvirtd_fds = open_fds(libvirtd.pid())

    virsh("create", str(domain.xml))
    try:
        daemon, io_daemon = daemon_of(share), daemon_of(io_share)
        argv = cmdline(daemon)
        escaped = str(share).replace(",", ",,")
        assert f"source={escaped},cache=none,sandbox=chroot,xattr,flock,posix_lock" in argv
        assert "--thread-pool-size=2" in argv
        assert any(word.startswith("--fd=") for word in argv)
        # <sandbox mode='chroot'/>: the share is the daemon's root, in the host's namespaces.
        assert os.readlink(f"/proc/{daemon}/root") == str(share)
        assert os.readlink(f"/proc/{daemon}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
        # No <sandbox>: hostfs's default, virtiofsd's: namespace (its own mount namespace).
        assert os.readlink(f"/proc/{io_daemon}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        io_argv = cmdline(io_daemon)
        assert f"source={io_share},cache=none,no_flock,no_posix_lock" in io_argv
        assert "--allow-direct-io" in io_argv

        # While the guest holds an O_DIRECT descriptor it polls for the .go file; the
        # <thread_pool size='2'/> share's data I/O so far ran in worker threads, which stay.
        held, requests = {}, {}
        logs = Path("/var/log/libvirt/qemu")
        for pid, directory, log in (
            (daemon, share, logs / f"{domain.name}-fs0-virtiofsd.log"),
            (io_daemon, io_share, logs / f"{domain.name}-fs1-virtiofsd.log"),
        ):
            host_file = directory / "io-flags" / "held.bin"
            wait_until(
                lambda: held_flags(pid, host_file) is not None,  # noqa: B023
                f"the daemon opens {host_file}:\n{domain.text()[-2000:]}",
                GUEST_TIMEOUT,
            )
            held[pid] = held_flags(pid, host_file)
            requests[pid] = request_table(log, pid)
            if pid == daemon:
                pool_threads = threads(daemon)
                inline_threads = threads(io_daemon)
            (directory / "io-flags" / "held.bin.go").touch()
        domain.wait_for("HOSTFS-GUEST-END")
    finally:
        virsh("destroy", domain.name, check=False)

    report = domain.report()
    assert report.ok, "\n".join([*report.problems(), domain.text()[-3000:]])
    results = report.boots[0].results
    for directory, name in ((share, "share"), (io_share, "io")):
        data = (directory / "io-flags" / "direct.bin").read_bytes()
        assert len(data) == 65536
        assert results[f"{name}-direct-md5"] == hashlib.md5(data).hexdigest()
        assert (directory / "io-flags" / "held.bin").read_bytes() == b"D" * 4096
    # --allow-direct-io: the guest's O_DIRECT reaches the host's open(2); without, dropped.
    assert not held[daemon] & os.O_DIRECT
    assert held[io_daemon] & os.O_DIRECT
    assert pool_threads > inline_threads
    # <lock posix='on' flock='on'/>: flock(2) and fcntl locks reach the daemon; 'off':
    # the guest kernel keeps them to itself.  xattr='on': setfattr reaches the host file.
    assert requests[daemon].get("SETLK", 0) + requests[daemon].get("SETLKW", 0) >= 3
    assert not {"GETLK", "SETLK", "SETLKW"} & set(requests[io_daemon])
    assert requests[io_daemon]["LOOKUP"] > 0  # the table is there, and complete
    assert results["share-setxattr"] == "ok" and results["io-setxattr"] == "refused"
    assert os.getxattr(share / "io-flags" / "direct.bin", "user.hostfs") == b"share"
    # cache=none is direct I/O: a shared mapping needs --allow-mmap.
    assert results["share-mmap"] == "FAIL mmap ENODEV"
    assert (share / "io-flags" / "mapped.bin").read_bytes() == bytes(4096)
    assert results["io-mmap"] == "mapped"
    assert (io_share / "io-flags" / "mapped.bin").read_bytes()[:5] == b"paged"

    assert hostfs_pids(share) == [] and hostfs_pids(io_share) == []
    assert domain.name not in virsh("list", "--all", "--name").stdout
    # libvirtd lets go of a domain's descriptors in its own time: a leak never settles.
    wait_until(lambda: open_fds(libvirtd.pid()) == libvirtd_fds, f"libvirtd's {libvirtd_fds} fds")


@pytest.fixture
def discovery() -> Iterator[Path]:
    """``hostfs install-vhost-user`` (the venv's entry point), removed after."""
    install = [sys.executable, "-m", "hostfs", "install-vhost-user"]
    subprocess.run(install, check=True, capture_output=True)
    try:
        yield VHOST_USER_DIR / "50-hostfs.json"
    finally:
        subprocess.run([*install, "--uninstall"], check=True, capture_output=True)


def test_discovery_reboot_and_libvirtd_restart(
    libvirtd: Libvirtd, guest_kernel: GuestKernel, work_dir: Path, discovery: Path
) -> None:
    if libvirtd.process is None:
        pytest.skip("the host's own libvirtd runs: this test restarts only one it started")
    share = work_dir / "share"
    share.mkdir()
    xml = domain_xml(
        work_dir, [FILESYSTEM.format(binary="", source=share, tag="hostfs")], on_reboot="restart"
    )
    setup = GuestSetup(
        workload_path("smoke"),
        boots=2,
        environment={"HOSTFS_XATTR": "0", "HOSTFS_POWER_BUTTON": "1"},
        modules=("button", "evdev"),
    )
    domain = Domain(work_dir, guest_kernel, setup, xml)

    virsh("create", str(domain.xml))
    try:
        pids = hostfs_pids(share)
        daemon = daemon_of(share)
        binary = Path(sys.executable).parent / "hostfs-vhost-user-fs"
        assert str(binary) in cmdline(daemon), "libvirt did not run the discovered hostfs"
        domain.wait_for("HOSTFS-GUEST-WAITING")
        fds_before = open_fds(daemon)

        libvirtd.restart()
        assert domain.running() and hostfs_pids(share) == pids

        virsh("reboot", domain.name)  # through the restarted libvirtd
        domain.wait_for("HOSTFS-GUEST-WAITING", 2)
        assert hostfs_pids(share) == pids, "libvirt restarted the daemon on reboot"
        wait_until(lambda: open_fds(daemon) == fds_before, f"the daemon's {fds_before} fds")

    finally:
        virsh("destroy", domain.name, check=False)  # the restarted libvirtd stops its hostfs
    assert hostfs_pids(share) == []
    assert domain.name not in virsh("list", "--all", "--name").stdout

    report = domain.report()
    evidence = "\n".join([*report.problems(), domain.text()[-3000:]])
    assert report.failure is None, evidence
    assert [boot.number for boot in report.boots] == [1, 2], evidence
    assert all(boot.workload_exit == 0 and not boot.failed_checks for boot in report.boots)
    assert report.boots[1].checks["survives-reboot"] == "ok"
    assert (share / "smoke" / "after-reboot.txt").read_text() == "boot 2\n"
