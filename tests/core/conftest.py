"""Core tests run the core over the local backend, with no mount."""

from tests.support.core import fs, share

__all__ = ["fs", "share"]
