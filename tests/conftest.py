"""Fixtures shared by every test folder."""

from tests.support.nfs_server import nfs_server

__all__ = ["nfs_server"]
