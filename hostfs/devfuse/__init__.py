"""The raw /dev/fuse transport: hostfs's own FUSE codec against the host kernel."""

from hostfs.devfuse.session import serve_mount

__all__ = ["serve_mount"]
