"""The local passthrough backend: a host directory."""

from hostfs.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
