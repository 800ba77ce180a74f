"""The local backend is tested through the core it serves."""

from tests.support.core import fs, share

__all__ = ["fs", "share"]
