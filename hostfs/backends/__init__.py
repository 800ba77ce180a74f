"""Backends: where the shared tree really lives."""

from __future__ import annotations

from hostfs.core.backend import Backend


class BackendUnavailable(Exception):
    """The shared directory or export cannot be used; the message is one line for the user."""


async def open_backend(
    shared_dir: str,
    thread_pool_size: int = 0,
    rlimit_nofile: int | None = None,
    inode_file_handles: str | None = None,
) -> Backend:
    """A path selects the local backend, an ``nfs://`` URL the NFS backend.

    ``rlimit_nofile`` is ``--rlimit-nofile`` (hostfs.backends.local.fd_budget),
    ``inode_file_handles`` is ``--inode-file-handles``, None for the default
    (hostfs.backends.local.file_handles); NFS nodes are file handles already.
    """
    if shared_dir.startswith("nfs://"):
        from hostfs.backends.local.fd_budget import set_nofile_limit
        from hostfs.backends.nfs import open_nfs_backend

        if rlimit_nofile is not None:  # NFS nodes pin no fds: no need to lift it
            set_nofile_limit(rlimit_nofile)
        return await open_nfs_backend(shared_dir)
    from hostfs.backends.local import LocalBackend
    from hostfs.backends.local.file_handles import DEFAULT_MODE

    # Opening it with O_DIRECTORY is the check: a missing path or a file raises
    # OSError, which the command line reports in one line.
    return LocalBackend.from_path(
        shared_dir, thread_pool_size, rlimit_nofile, inode_file_handles or DEFAULT_MODE
    )
