"""Fixtures for the guest tests: the real Debian kernel, a share, a guest booter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hostfs.core.options import FsOptions
from hostfs.guest.chroot import fetch_trixie_root
from hostfs.guest.initramfs import GuestSetup, workload_path
from hostfs.guest.kernel import GuestKernel, fetch_kernel
from hostfs.guest.qemu import Emulator, GuestRun
from tests.guest.runs import run_guest


@pytest.fixture(scope="session")
def guest_kernel() -> GuestKernel:
    """Debian's cloud kernel, downloaded once into the cache (needs apt, as in CI)."""
    return fetch_kernel()


@pytest.fixture(scope="session")
def guest_kernel_612() -> GuestKernel:
    """Debian 13's cloud kernel (6.12: virtio-fs multi-queue), through a private apt."""
    return fetch_kernel(suite="trixie")


@pytest.fixture(scope="session")
def qemu_10() -> Emulator:
    """QEMU 10.0 in a cached trixie root (debootstrap on first use, about a minute)."""
    return Emulator(fetch_trixie_root())


@pytest.fixture
def share(tmp_path: Path) -> Path:
    directory = tmp_path / "share"
    directory.mkdir()
    return directory


@pytest.fixture
def boot_guest(guest_kernel: GuestKernel, share: Path) -> Callable[..., Awaitable[GuestRun]]:
    """``await boot_guest(daemon, workload, boots=1, timeout=120, daemon_args=(), **environment)``,
    with extended attributes on so the smoke workload checks them."""

    async def boot(
        daemon: str,
        workload: str,
        boots: int = 1,
        timeout: float = 120.0,
        daemon_args: tuple[str, ...] = (),
        **environment: str,
    ) -> GuestRun:
        setup = GuestSetup(workload_path(workload), boots=boots, environment=environment)
        return await run_guest(
            guest_kernel,
            setup,
            share,
            daemon,
            timeout=timeout,
            options=FsOptions(xattr=True),
            daemon_args=daemon_args,
        )

    return boot
