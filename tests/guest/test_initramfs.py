"""The initramfs holds what /init needs, built from the real kernel package."""

from __future__ import annotations

import gzip
import stat
import subprocess
import sys

from hostfs.guest.cpio import read_newc
from hostfs.guest.initramfs import GUEST_IMAGES, GuestSetup, build_initramfs, workload_path
from hostfs.progress import ERASE_LINE
from tests.test_progress import environment, stderr_on_a_pty


def test_initramfs_contents(guest_kernel):
    setup = GuestSetup(workload_path("smoke"), tag="share", boots=2, environment={"K": "a b"})

    entries = {e.name: e for e in read_newc(gzip.decompress(build_initramfs(guest_kernel, setup)))}

    assert entries["init"].data == (GUEST_IMAGES / "init.sh").read_bytes()
    assert entries["init"].mode & 0o111
    assert entries["workload.sh"].data == workload_path("smoke").read_bytes()
    assert entries["checks.sh"].data == (GUEST_IMAGES / "checks.sh").read_bytes()
    assert stat.S_ISCHR(entries["dev/console"].mode) and entries["dev/console"].rdev == (5, 1)
    assert entries["bin/sh"].data == b"busybox"
    env = entries["etc/hostfs-guest.env"].data.decode()
    assert "export TAG=share\n" in env and "export BOOTS=2\n" in env and "export K='a b'\n" in env
    modules = next(line for line in env.splitlines() if line.startswith("export MODULES="))
    for name in modules.partition("=")[2].strip("'").split():
        assert entries[f"lib/modules/{name}.ko"].data[:4] == b"\x7fELF"
    names = list(entries)
    assert all(
        names.index(str(parent)) < names.index(name)
        for name in names
        for parent in [name.rpartition("/")[0]]
        if parent
    )


def test_building_shows_its_phases_on_a_terminal_only(guest_kernel):
    code = (
        "from pathlib import Path\n"
        "from hostfs.guest.kernel import GuestKernel\n"
        "from hostfs.guest.initramfs import GuestSetup, build_initramfs, workload_path\n"
        f"kernel = GuestKernel({guest_kernel.package!r}, Path({str(guest_kernel.vmlinuz)!r}), "
        f"Path({str(guest_kernel.modules_dir)!r}))\n"
        "build_initramfs(kernel, GuestSetup(workload_path('smoke')))\n"
    )
    seen = stderr_on_a_pty([sys.executable, "-c", code], environment())
    assert f"{ERASE_LINE}guest image: resolving the modules of {guest_kernel.release}" in seen
    assert f"{ERASE_LINE}guest image: packing " in seen and seen.endswith(ERASE_LINE)
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, env=environment())
    assert quiet.returncode == 0 and quiet.stderr == b""
