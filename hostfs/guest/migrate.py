"""Live-migrate a guest between two QEMUs, each with its own ``hostfs serve`` on one share.

The destination QEMU starts with ``-incoming unix:SOCKET`` and connects to its daemon
(B) at once; the source (A) boots the guest and runs the workload.  When the host
sees the workload ready, the source's QMP monitor gets ``migrate`` and is polled
with ``query-migrate``; QEMU stops the rings, takes the device state from A
(SET_DEVICE_STATE_FD) and hands it to B, whose guest then runs on.  ``after`` runs
on the host once the destination is running; then the source QEMU quits, A must
exit cleanly, and the guest finishes on the destination.  QEMU 10 is needed
(vhost-user device-state transfer arrived in 8.2).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from hostfs.core.options import FsOptions
from hostfs.guest.console import GuestReport, parse_console
from hostfs.guest.daemons import daemon_command
from hostfs.guest.errors import GuestError
from hostfs.guest.initramfs import GuestSetup
from hostfs.guest.kernel import GuestKernel
from hostfs.guest.qemu import Emulator, _spawn, _stop, _wait_for_socket, boot_files, qemu_command
from hostfs.guest.qmp import Qmp

logger = logging.getLogger(__name__)

MEMORY = "512M"
"""Small, so that TCG and the transfer are quick; enough for the 6.12 cloud kernel."""
DAEMON_EXIT_SECONDS = 10.0
MIGRATION_DONE = ("completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class MigrationRun:
    report: GuestReport
    console: str
    """The serial console: the source's part, then the destination's."""
    source_log: str
    destination_log: str
    source_daemon_status: int | None
    """Daemon A's exit status once the source QEMU quit (None: it did not exit)."""
    migration: dict[str, Any]
    """The last ``query-migrate`` answer."""
    transcript: list[str]
    """Both QMP sessions, in order."""


async def run_migration(
    kernel: GuestKernel,
    setup: GuestSetup,
    shared_dir: Path | str,
    emulator: Emulator,
    *,
    ready: Callable[[], bool],
    after: Callable[[], Awaitable[None]],
    timeout: float = 600.0,
    options: FsOptions | None = None,
    daemon_args: Sequence[str] = (),
) -> MigrationRun:
    """Boot on A, migrate to B once ``ready()``, run ``after()``, let the guest finish on B."""
    options = options or FsOptions()
    transcript: list[str] = []
    consoles: dict[str, list[str]] = {"source": [], "destination": []}
    with tempfile.TemporaryDirectory(
        prefix="hostfs-migrate-", dir=emulator.scratch_parent()
    ) as scratch:
        work = Path(scratch)
        kernel, initrd = boot_files(kernel, setup, options, emulator, work)
        logs = {side: work / f"daemon-{side}.log" for side in consoles}
        sockets = {side: work / f"vhost-{side}.sock" for side in consoles}
        qmp_paths = {side: work / f"qmp-{side}.sock" for side in consoles}
        incoming = work / "migration.sock"
        daemons: dict[str, trio.Process] = {}
        qemus: dict[str, trio.Process] = {}
        migration: dict[str, Any] = {}
        source_status: int | None = None
        try:
            for side in consoles:
                command = daemon_command(
                    "hostfs", sockets[side], shared_dir, options, 1, daemon_args
                )
                with logs[side].open("wb") as log:
                    daemons[side] = await _spawn(command, stdout=log)
                await _wait_for_socket(sockets[side], daemons[side], logs[side])
            async with trio.open_nursery() as nursery:
                for side in ("destination", "source"):
                    command = qemu_command(
                        kernel, initrd, sockets[side], setup.tag, memory=MEMORY, emulator=emulator
                    )
                    command += ["-qmp", f"unix:{emulator.path(qmp_paths[side])},server=on,wait=off"]
                    if side == "destination":
                        command += ["-incoming", f"unix:{emulator.path(incoming)}"]
                    logger.debug("starting %s QEMU: %s", side, " ".join(command))
                    qemus[side] = await _spawn(
                        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
                    )
                    nursery.start_soon(_read_console, qemus[side], consoles[side])
                try:
                    with trio.fail_after(timeout):
                        migration = await _migrate(qmp_paths, incoming, emulator, ready, transcript)
                        if migration.get("status") == "completed":
                            await after()
                            source_status = await _quit_source(
                                qmp_paths["source"], qemus["source"], daemons["source"], transcript
                            )
                            await qemus["destination"].wait()
                except (GuestError, OSError, trio.TooSlowError) as error:
                    migration["error"] = repr(error)
                nursery.cancel_scope.cancel()
        finally:
            for process in [*qemus.values(), *daemons.values()]:
                await _stop(process, grace=0)
        for side, qemu in qemus.items():
            migration[f"{side}_qemu_status"] = qemu.returncode
        console = "".join(consoles["source"]) + "".join(consoles["destination"])
        return MigrationRun(
            parse_console(console),
            console,
            logs["source"].read_text(errors="replace"),
            logs["destination"].read_text(errors="replace"),
            source_status,
            migration,
            transcript,
        )


async def _quit_source(
    qmp_path: Path, qemu: trio.Process, daemon: trio.Process, transcript: list[str]
) -> int | None:
    """``quit`` the source QEMU; its daemon's exit status, if it exits in time."""
    source = await Qmp.connect(qmp_path, "source", transcript)
    with contextlib.suppress(GuestError):  # it may close the monitor before answering
        await source.execute("quit")
    source.close()
    await qemu.wait()
    with trio.move_on_after(DAEMON_EXIT_SECONDS):
        return await daemon.wait()
    return None


async def _read_console(qemu: trio.Process, chunks: list[str]) -> None:
    if qemu.stdout is None:
        return
    async for data in qemu.stdout:
        chunks.append(data.decode(errors="replace"))


async def _migrate(
    qmp_paths: dict[str, Path],
    incoming: Path,
    emulator: Emulator,
    ready: Callable[[], bool],
    transcript: list[str],
) -> dict[str, Any]:
    """Wait for ``ready()``, migrate, and poll until done; the destination then runs."""
    while not ready():
        await trio.sleep(0.5)
    source = await Qmp.connect(qmp_paths["source"], "source", transcript)
    try:
        await source.execute("migrate", uri=f"unix:{emulator.path(incoming)}")
        while True:
            status: dict[str, Any] = await source.execute("query-migrate")
            if status.get("status") in MIGRATION_DONE:
                break
            await trio.sleep(0.5)
    finally:
        source.close()
    if status.get("status") != "completed":
        return status
    destination = await Qmp.connect(qmp_paths["destination"], "destination", transcript)
    try:
        while (await destination.execute("query-status")).get("status") != "running":
            await trio.sleep(0.2)
    finally:
        destination.close()
    return status
