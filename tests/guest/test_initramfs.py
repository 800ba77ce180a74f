"""The initramfs holds what /init needs, built from the real kernel package."""

from __future__ import annotations

import gzip
import stat

from hostfs.guest.cpio import read_newc
from hostfs.guest.initramfs import GUEST_IMAGES, GuestSetup, build_initramfs, workload_path


def test_initramfs_contents(guest_kernel):
    setup = GuestSetup(workload_path("smoke"), tag="share", boots=2, environment={"K": "a b"})

    entries = {e.name: e for e in read_newc(gzip.decompress(build_initramfs(guest_kernel, setup)))}

    assert entries["init"].data == (GUEST_IMAGES / "init.sh").read_bytes()
    assert entries["init"].mode & 0o111
    assert entries["workload.sh"].data == workload_path("smoke").read_bytes()
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
