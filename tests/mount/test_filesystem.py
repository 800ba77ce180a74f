"""STATFS: the whole file system's numbers, as the backend's host directory reports them."""

from __future__ import annotations

import os


def test_statfs_fields_are_sane(twin):
    st = os.statvfs(twin.mnt)
    assert st.f_bsize > 0 and st.f_frsize > 0
    assert 0 <= st.f_bavail <= st.f_bfree <= st.f_blocks
    assert 0 <= st.f_ffree <= st.f_files
    assert st.f_namemax >= 255


def test_statfs_equals_the_host_directory(twin):
    if twin.mount.backend == "nfs":
        # Through NFS the server reports its export's numbers in its own block
        # size: only the sanity checks above apply.
        assert os.statvfs(twin.mnt).f_blocks > 0
        return
    mounted, host = os.statvfs(twin.mnt), os.statvfs(twin.host)
    for field in ("f_bsize", "f_frsize", "f_blocks", "f_files", "f_namemax"):
        assert getattr(mounted, field) == getattr(host, field), field
    # Free counts move while other tests write: equal within 1% of the total.
    for free, total in (("f_bfree", "f_blocks"), ("f_bavail", "f_blocks"), ("f_ffree", "f_files")):
        assert abs(getattr(mounted, free) - getattr(host, free)) <= getattr(host, total) // 100
