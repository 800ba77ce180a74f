"""Backends: where the shared tree really lives."""

from __future__ import annotations

from hostfs.backends.base import Backend


class BackendUnavailable(Exception):
    """The shared directory or export cannot be used; the message is one line for the user."""


async def open_backend(shared_dir: str, thread_pool_size: int = 0) -> Backend:
    """A path selects the local backend, an ``nfs://`` URL the NFS backend."""
    if shared_dir.startswith("nfs://"):
        from hostfs.backends.nfs import open_nfs_backend

        return await open_nfs_backend(shared_dir)
    from hostfs.backends.local import LocalBackend

    # Opening it with O_DIRECTORY is the check: a missing path or a file raises
    # OSError, which the command line reports in one line.
    return LocalBackend.from_path(shared_dir, thread_pool_size)
