"""A real libvirt 9.0 domain with a virtiofs ``<filesystem>`` served by hostfs.

libvirt starts the daemon itself (qemu_virtiofs.c: ``--fd=N -o source=...,cache=none,
xattr,flock,posix_lock``), QEMU boots the project's guest, the smoke workload runs on
the share, and ``virsh destroy`` must leave no hostfs process behind.  libvirtd and
virtlogd run as children of the test when none is running (no systemd here).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostfs.guest.console import parse_console
from hostfs.guest.initramfs import GuestSetup, build_initramfs, workload_path
from hostfs.guest.kernel import GuestKernel

pytestmark = pytest.mark.slow

URI = "qemu:///system"
REPO = Path(__file__).parents[2]
GUEST_TIMEOUT = 300.0
"""A guard against a hung guest, not a measurement: TCG boots in ~10 s here."""

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
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <filesystem type='mount' accessmode='passthrough'>
      <driver type='virtiofs' queue='1024'/>
      <binary path='{work}/hostfs-vhost-user-fs' xattr='on'>
        <cache mode='none'/>
        <lock posix='on' flock='on'/>
      </binary>
      <source dir='{share}'/>
      <target dir='hostfs'/>
    </filesystem>
    <serial type='file'><source path='{work}/console.log'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def virsh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-c", URI, *argv], capture_output=True, text=True, timeout=120, check=check
    )


def wait_until(ready, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[None]:
    """A running libvirtd: the host's, or virtlogd + libvirtd started here and stopped after."""
    if virsh("version", check=False).returncode == 0:
        yield
        return
    started = [subprocess.Popen([daemon]) for daemon in ("virtlogd", "libvirtd")]
    try:
        wait_until(lambda: virsh("version", check=False).returncode == 0, "libvirtd answers")
        yield
    finally:
        for process in reversed(started):
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def hostfs_pids(share: Path) -> list[int]:
    """Processes started by libvirt for this share (the supervisor and the daemon)."""
    needle = f"source={share}".replace(",", ",,").encode()  # as libvirt escapes it
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"hostfs.cli.serve" in cmdline and needle in cmdline:
                pids.append(int(entry))
    return pids


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """World-traversable: QEMU runs as libvirt-qemu and must reach the kernel and initrd."""
    work = Path(tempfile.mkdtemp(prefix="hostfs-libvirt-", dir="/tmp"))
    work.chmod(0o755)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_binary(path: Path) -> None:
    """The ``<binary>``: this checkout's ``hostfs-vhost-user-fs`` (the venv's entry point
    runs whichever hostfs the venv installed)."""
    main = "import sys; from hostfs.cli.serve import main; sys.exit(main())"
    path.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -c "{main}" "$@"\n')
    path.chmod(0o755)


def test_domain_runs_the_workload_and_destroy_stops_hostfs(
    libvirtd: None, guest_kernel: GuestKernel, work_dir: Path
) -> None:
    share = work_dir / "a,share"  # a comma: libvirt escapes it as ',,' in -o source=
    share.mkdir()
    shutil.copy(guest_kernel.vmlinuz, work_dir / "vmlinuz")
    setup = GuestSetup(workload_path("smoke"), environment={"HOSTFS_XATTR": "1"})
    (work_dir / "initrd.gz").write_bytes(build_initramfs(guest_kernel, setup))
    write_binary(work_dir / "hostfs-vhost-user-fs")
    name = f"hostfs-test-{os.getpid()}"
    xml = work_dir / "domain.xml"
    xml.write_text(DOMAIN.format(name=name, work=work_dir, share=share))
    console = work_dir / "console.log"

    virsh("create", str(xml))
    try:
        assert hostfs_pids(share), "libvirt started no hostfs for the share"
        wait_until(
            lambda: console.exists() and "HOSTFS-GUEST-END" in console.read_text(errors="replace"),
            "the guest's workload ends",
            GUEST_TIMEOUT,
        )
        report = parse_console(console.read_text(errors="replace"))
        assert report.ok, "\n".join(report.problems())
        assert (share / "smoke" / "renamed.txt").read_text() == "hello virtio-fs, again\n"
    finally:
        virsh("destroy", name, check=False)
    assert hostfs_pids(share) == []
    assert name not in virsh("list", "--all", "--name").stdout
