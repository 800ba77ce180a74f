"""``--sandbox``: fork the supervisor off, then confine the daemon (``namespaces``)."""

from __future__ import annotations

import os
from collections.abc import Callable

from hostfs import libc, procfd
from hostfs.sandbox.capabilities import keep_only
from hostfs.sandbox.namespaces import SandboxError, enter_chroot, enter_namespaces
from hostfs.sandbox.supervisor import prepare_child, supervise
from hostfs.sandbox.usermaps import UserMapError, UserMaps, enter_user_namespace

FALLBACK = {"namespace": "try --sandbox chroot or none", "chroot": "try --sandbox none"}


def enter_sandbox(
    mode: str,
    root: str | None,
    *,
    network: bool,
    cleanup: Callable[[], None],
    user_maps: UserMaps | None = None,
) -> int | None:
    """Confine this process; None in the daemon, which goes on to serve.

    ``user_maps`` (``namespace`` mode only): first a new user namespace with those maps, as
    virtiofsd does when an ordinary user starts it (``usermaps``); the pid namespace made
    with it, and the mount and network ones made after, then belong to it.

    In ``namespace`` and ``chroot`` mode the caller's process becomes the supervisor: this
    returns its exit status (the daemon's) once the daemon is gone and ``cleanup()`` ran.
    Must run before any thread exists (fork(2) copies only the calling thread).
    """
    if mode == "none":
        return None
    if mode == "namespace" and user_maps is not None:
        try:
            enter_user_namespace(user_maps, libc.CLONE_NEWPID)
        except UserMapError as error:
            raise SandboxError(f"--sandbox namespace: {error} (try --sandbox none)") from None
    elif mode == "namespace":
        try:
            libc.unshare(libc.CLONE_NEWPID)
        except OSError as error:
            raise SandboxError(
                f"--sandbox namespace: {error.strerror} ({FALLBACK[mode]})"
            ) from None
    child = os.fork()
    if child:
        if user_maps is not None:
            # The namespace's creator holds every capability over it; waiting, forwarding
            # signals and unlinking the user's socket need none.
            keep_only(())
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
