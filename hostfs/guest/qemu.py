"""Boot a guest under QEMU with a virtio-fs share served by a vhost-user-fs daemon.

The daemon and QEMU each run in their own process group, and both groups are
killed when the run ends for any reason (timeout, error, Ctrl-C): a test run
never leaves an orphan QEMU or daemon behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio

from hostfs.core.options import FsOptions
from hostfs.guest.chroot import QEMU_IN_ROOT, in_root
from hostfs.guest.console import GuestReport, parse_console
from hostfs.guest.daemons import HOSTFS_SERVE, daemon_command
from hostfs.guest.errors import GuestError
from hostfs.guest.initramfs import GuestSetup, build_initramfs
from hostfs.guest.kernel import GuestKernel
from hostfs.testing.unprivileged import serve_as

logger = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
BOOT_MARKER = ".hostfs-guest-boot"
SOCKET_WAIT_SECONDS = 10.0
DAEMON_EXIT_GRACE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Emulator:
    """Which QEMU boots the guest: the host's (7.2), or one installed in a root
    (:mod:`hostfs.guest.chroot`: trixie's 10.0), which sees only the files under it."""

    root: Path | None = None

    def command(self) -> list[str]:
        return [QEMU] if self.root is None else in_root(self.root, [QEMU_IN_ROOT])

    def scratch_parent(self) -> Path | None:
        """Where the run's files go so that this QEMU can open them."""
        return None if self.root is None else self.root / "tmp"

    def path(self, host_path: Path) -> str:
        """``host_path`` as this QEMU names it."""
        return str(host_path if self.root is None else "/" / host_path.relative_to(self.root))


HOST_QEMU = Emulator()


@dataclass(frozen=True, slots=True)
class GuestRun:
    """Everything a run produced: the parsed report plus the raw evidence."""

    report: GuestReport
    console: str
    daemon_log: str
    timed_out: bool
    qemu_status: int | None


def qemu_command(
    kernel: GuestKernel,
    initrd: Path,
    socket_path: Path,
    tag: str,
    *,
    memory: str = "1G",
    reboot: bool = False,
    interactive: bool = False,
    request_queues: int = 1,
    emulator: Emulator = HOST_QEMU,
) -> list[str]:
    """QEMU under TCG (KVM cannot run a stock guest kernel on these hosts).

    ``-no-reboot`` turns the guest's final ``poweroff -f``/panic into an exit;
    a multi-boot run leaves it out so ``reboot -f`` resets the machine and the
    vhost-user device with it.  ``request_queues`` > 1 is the device's
    ``num-request-queues`` (QEMU's default 1 is left implicit); a Linux >= 6.11
    guest sends on the queue of the CPU it runs on, hence the two vCPUs.
    """
    command = [*emulator.command(), "-accel", "tcg", "-cpu", "max", "-m", memory, "-smp", "2"]
    command += [
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "mon:stdio" if interactive else "stdio",
    ]
    command += ["-kernel", emulator.path(kernel.vmlinuz), "-initrd", emulator.path(initrd)]
    command += ["-append", "console=ttyS0 quiet panic=-1"]
    command += ["-chardev", f"socket,id=char0,path={emulator.path(socket_path)}"]
    device = f"vhost-user-fs-pci,queue-size=1024,chardev=char0,tag={tag}"
    device += f",num-request-queues={request_queues}" if request_queues != 1 else ""
    command += ["-device", device]
    command += ["-object", f"memory-backend-memfd,id=mem,size={memory},share=on"]
    command += ["-numa", "node,memdev=mem"]
    return command if reboot else [*command, "-no-reboot"]


def boot_files(
    kernel: GuestKernel, setup: GuestSetup, options: FsOptions, emulator: Emulator, work: Path
) -> tuple[GuestKernel, Path]:
    """The kernel and initramfs one boot reads, in ``work``.

    The workload learns through ``HOSTFS_XATTR`` whether to test extended attributes;
    a QEMU in a chroot sees only what is below it, so the kernel is copied beside the
    initramfs in ``work`` (which the chroot shares)."""
    setup = replace(
        setup, environment={"HOSTFS_XATTR": str(int(options.xattr)), **setup.environment}
    )
    if emulator.root is not None:
        kernel = replace(kernel, vmlinuz=Path(shutil.copy(kernel.vmlinuz, work)))
    initrd = work / "initrd.gz"
    initrd.write_bytes(build_initramfs(kernel, setup))
    return kernel, initrd


async def run_guest(
    kernel: GuestKernel,
    setup: GuestSetup,
    shared_dir: Path | str,
    daemon: str,
    *,
    timeout: float = 120.0,
    options: FsOptions | None = None,
    echo: Callable[[str], None] | None = None,
    interactive: bool = False,
    request_queues: int = 1,
    emulator: Emulator = HOST_QEMU,
    daemon_args: Sequence[str] = (),
    daemon_user: tuple[int, int] | None = None,
) -> GuestRun:
    """Serve ``shared_dir`` with ``daemon``, boot the guest, run ``setup``'s workload.

    ``shared_dir`` is a host directory or, for hostfs, an NFS URL (whose stale
    reboot marker the host cannot clear). ``options`` go to the daemon
    (default: the core's defaults); the workload learns through
    ``HOSTFS_XATTR`` whether to test extended attributes.
    ``echo`` sees the console text as it arrives; ``interactive`` hands the
    terminal to the guest's console instead of capturing it.  ``request_queues``
    goes to both QEMU and the daemon; ``emulator`` says which QEMU.
    ``daemon_args`` go to the daemon's command line as they are.  ``daemon_user``
    (uid, gid) runs hostfs as that ordinary user (its scratch folder, where the socket
    goes, becomes the user's; QEMU, as root, still connects).
    """
    options = options or FsOptions()
    if isinstance(shared_dir, Path):
        (shared_dir / BOOT_MARKER).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(
        prefix="hostfs-guest-", dir=emulator.scratch_parent()
    ) as scratch:
        work = Path(scratch)
        kernel, initrd = boot_files(kernel, setup, options, emulator, work)
        socket_path = work / "vhost-user-fs.sock"
        daemon_log = work / "daemon.log"
        serve: Sequence[str] = HOSTFS_SERVE
        if daemon_user is not None:
            os.chown(work, *daemon_user)
            serve = serve_as(*daemon_user)
        command = daemon_command(
            daemon, socket_path, shared_dir, options, request_queues, daemon_args, serve=serve
        )
        with daemon_log.open("wb") as log:
            server = await _spawn(command, stdout=log)
        try:
            await _wait_for_socket(socket_path, server, daemon_log)
            command = qemu_command(
                kernel,
                initrd,
                socket_path,
                setup.tag,
                reboot=setup.boots > 1,
                interactive=interactive,
                request_queues=request_queues,
                emulator=emulator,
            )
            logger.debug("starting %s", " ".join(command))
            console, timed_out, status = await _run_qemu(command, timeout, echo, interactive)
        finally:
            await _stop(server, grace=DAEMON_EXIT_GRACE_SECONDS)
        return GuestRun(
            parse_console(console),
            console,
            daemon_log.read_text(errors="replace"),
            timed_out,
            status,
        )


async def _spawn(command: list[str], **options: Any) -> trio.Process:
    try:
        return await trio.lowlevel.open_process(
            command, start_new_session=True, stderr=subprocess.STDOUT, **options
        )
    except FileNotFoundError:
        raise GuestError(f"{command[0]} is not installed") from None


async def _wait_for_socket(socket_path: Path, server: trio.Process, log: Path) -> None:
    with trio.move_on_after(SOCKET_WAIT_SECONDS):
        while not socket_path.exists():
            if server.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise GuestError(
                    f"daemon exited with status {server.returncode} before listening: "
                    + " | ".join(tail)
                )
            await trio.sleep(0.05)
        return
    raise GuestError(f"daemon did not create {socket_path} within {SOCKET_WAIT_SECONDS} s")


async def _run_qemu(
    command: list[str],
    timeout: float,
    echo: Callable[[str], None] | None,
    interactive: bool,
) -> tuple[str, bool, int | None]:
    """Console text, whether the timeout hit, and QEMU's exit status."""
    chunks: list[str] = []
    if interactive:
        qemu = await trio.lowlevel.open_process(command, start_new_session=False)
    else:
        qemu = await _spawn(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        with trio.move_on_after(timeout) as deadline:
            if qemu.stdout is not None:
                async for data in qemu.stdout:
                    text = data.decode(errors="replace")
                    chunks.append(text)
                    if echo is not None:
                        echo(text)
            await qemu.wait()
    finally:
        await _stop(qemu, grace=0)
    return "".join(chunks), deadline.cancelled_caught, qemu.returncode


async def _stop(process: trio.Process, grace: float) -> None:
    """Let ``process`` exit on its own for ``grace`` seconds, then kill its whole group."""
    with trio.CancelScope(shield=True):
        with trio.move_on_after(grace):
            await process.wait()
        if process.returncode is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                _signal_group(process, sig)
                with trio.move_on_after(2):
                    await process.wait()
                if process.returncode is not None:
                    break
        # A daemon that forked (virtiofsd's sandbox) may leave its group behind.
        _signal_group(process, signal.SIGKILL)


def _signal_group(process: trio.Process, sig: signal.Signals) -> None:
    """Signal the group ``process`` leads, or just ``process`` when it leads none."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        if process.returncode is None:
            process.send_signal(sig)
