"""``--sandbox``: fork the supervisor off, then confine the daemon (``namespaces``)."""

from __future__ import annotations

import os
from collections.abc import Callable

from hostfs import libc, procfd
from hostfs.sandbox.namespaces import SandboxError, enter_chroot, enter_namespaces
from hostfs.sandbox.supervisor import prepare_child, supervise

FALLBACK = {"namespace": "try --sandbox chroot or none", "chroot": "try --sandbox none"}


def enter_sandbox(
    mode: str, root: str | None, *, network: bool, cleanup: Callable[[], None]
) -> int | None:
    """Confine this process; None in the daemon, which goes on to serve.

    In ``namespace`` and ``chroot`` mode the caller's process becomes the supervisor: this
    returns its exit status (the daemon's) once the daemon is gone and ``cleanup()`` ran.
    Must run before any thread exists (fork(2) copies only the calling thread).
    """
    if mode == "none":
        return None
    if mode == "namespace":
        try:
            libc.unshare(libc.CLONE_NEWPID)
        except OSError as error:
            raise SandboxError(
                f"--sandbox namespace: {error.strerror} ({FALLBACK[mode]})"
            ) from None
    child = os.fork()
    if child:
        return supervise(child, cleanup)
    prepare_child()
    try:
        if mode == "namespace":
            enter_namespaces(root, network=network)
        else:
            enter_chroot(root)
    except SandboxError as error:
        raise SandboxError(f"{error} ({FALLBACK[mode]})") from None
    procfd.relative_to_cwd()
    return None
