"""Make the shared directory the daemon's root: pivot_root in new namespaces, or chroot.

virtiofsd's ``sandbox.rs`` does the same two ways: ``namespace`` (new mount,
pid and network namespaces, ``pivot_root`` into the shared directory, the old
root lazily unmounted) and ``chroot`` (for containers whose runtime already
set up namespaces and forbids new ones).  Either way, after start-up no path
the daemon can name lies outside the share: a request-path bug that builds a
host path from guest input reaches the share and nothing else.

The local backend still needs ``/proc/self/fd/N`` (it re-opens ``O_PATH``
descriptors through those magic links).  virtiofsd keeps a descriptor of
``/proc/self/fd`` opened before the pivot; hostfs makes that directory its
working directory, so the backend names ``N`` relative to it
(``hostfs.backends.local.backend.PROC_SELF_FD``).  The proc mounted in the new
pid namespace shows the daemon's own processes only.
"""

from __future__ import annotations

import os
import tempfile

from hostfs import libc

EMPTY_ROOT_MOUNT = "/tmp"
"""Where the NFS backend's empty root (a read-only tmpfs) is mounted before the pivot; only in
the daemon's private mount namespace (FHS guarantees the directory)."""


class SandboxError(Exception):
    """The sandbox cannot be set up; one line for the user."""


def enter_namespaces(root: str | None, *, network: bool) -> int:
    """In the first process of a new pid namespace: new mount (and network) namespace, pivot.

    ``root`` is the shared directory, or None for an empty root (the NFS backend, whose files
    are on the network, which it then keeps: ``network``).  Returns a descriptor of this
    process's ``/proc/self/fd``, now also its working directory.
    """
    flags = libc.CLONE_NEWNS | (0 if network else libc.CLONE_NEWNET)
    try:
        libc.unshare(flags)
        # virtiofsd: MS_SLAVE|MS_REC first, so nothing below (the pivot, the detach of the old
        # root) propagates back to the host, while host unmounts still reach the share.
        libc.mount(None, "/", None, libc.MS_SLAVE | libc.MS_REC)
        # A proc of the new pid namespace, as virtiofsd mounts.
        proc_flags = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC | libc.MS_RELATIME
        libc.mount("proc", "/proc", "proc", proc_flags)
        proc_fd = _open_proc_self_fd()
        if root is None:
            root = EMPTY_ROOT_MOUNT
            empty = libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
            libc.mount("tmpfs", root, "tmpfs", empty, "size=4k,mode=0555")
        else:
            # pivot_root(2) wants new_root to be a mount point.
            libc.mount(root, root, None, libc.MS_BIND | libc.MS_REC)
        os.chdir(root)
        # pivot_root(2), NOTES: pivot_root(".", ".") stacks the old root on the new one ...
        libc.pivot_root(".", ".")
        libc.mount(None, ".", None, libc.MS_SLAVE | libc.MS_REC)
        # ... and umount2(".", MNT_DETACH) takes it off: no host path is left to name.
        libc.umount2(".", libc.MNT_DETACH)
        os.fchdir(proc_fd)
    except OSError as error:
        raise SandboxError(f"--sandbox namespace: {error.strerror}") from None
    return proc_fd


def enter_chroot(root: str | None) -> int:
    """chroot(2) into ``root``, or into an empty directory that no longer exists (None).

    Returns a descriptor of ``/proc/self/fd``, now the working directory.  That directory is
    outside the new root (the host's proc), as virtiofsd's kept proc descriptor is; the
    ``namespace`` mode has no such opening.
    """
    try:
        proc_fd = _open_proc_self_fd()
        if root is None:
            root_fd = _deleted_empty_directory()
            os.fchdir(root_fd)
            os.close(root_fd)
        else:
            os.chdir(root)
        os.chroot(".")
        os.fchdir(proc_fd)
    except OSError as error:
        raise SandboxError(f"--sandbox chroot: {error.strerror}") from None
    return proc_fd


def _open_proc_self_fd() -> int:
    return os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _deleted_empty_directory() -> int:
    """An empty directory, already removed: nothing can ever be created in it (ENOENT)."""
    path = tempfile.mkdtemp(prefix="hostfs-root-")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.rmdir(path)
    return fd
