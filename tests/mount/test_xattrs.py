"""SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR on user.* attributes (the mount runs --xattr)."""

from __future__ import annotations

import errno
import os

from tests.mount.compare import fails_in_mount, in_both, same, same_error, write_file

j = os.path.join


def file_and_dir(base: str) -> None:
    write_file(j(base, "f"), b"data")
    os.mkdir(j(base, "d"))


def round_trip(base: str) -> tuple:
    path = j(base, "f")
    os.setxattr(path, "user.small", b"1")
    os.setxattr(path, "user.large", bytes(range(256)) * 8)
    os.setxattr(path, "user.empty", b"")
    os.setxattr(j(base, "d"), "user.on-dir", b"dir")
    values = (
        os.getxattr(path, "user.small"),
        os.getxattr(path, "user.large"),
        os.getxattr(path, "user.empty"),
        os.getxattr(j(base, "d"), "user.on-dir"),
    )
    names = sorted(os.listxattr(path))
    os.removexattr(path, "user.small")
    return values, names, sorted(os.listxattr(path))


def test_set_get_list_remove(twin):
    in_both(twin, file_and_dir)
    if twin.mount.backend == "nfs":
        # NFSv3 has no extended attributes: the backend says EOPNOTSUPP.
        fails_in_mount(twin, round_trip, errno.EOPNOTSUPP)
        return
    values, names, after = same(twin, round_trip)
    assert values[0] == b"1" and len(values[1]) == 2048 and values[2:] == (b"", b"dir")
    assert names == ["user.empty", "user.large", "user.small"]
    assert after == ["user.empty", "user.large"]
    assert os.getxattr(j(twin.host, "f"), "user.large") == bytes(range(256)) * 8


def test_missing_attributes_and_flags(twin):
    in_both(twin, file_and_dir)
    if twin.mount.backend == "nfs":
        # NFSv3 has no extended attributes: the backend says EOPNOTSUPP.
        fails_in_mount(twin, lambda b: os.setxattr(j(b, "f"), "user.a", b"1"), errno.EOPNOTSUPP)
        return
    in_both(twin, lambda b: os.setxattr(j(b, "f"), "user.present", b"old"))
    path = "f"
    same_error(twin, lambda b: os.getxattr(j(b, path), "user.missing"), errno.ENODATA)
    same_error(twin, lambda b: os.removexattr(j(b, path), "user.missing"), errno.ENODATA)
    same_error(
        twin, lambda b: os.setxattr(j(b, path), "user.present", b"x", os.XATTR_CREATE), errno.EEXIST
    )
    same_error(
        twin,
        lambda b: os.setxattr(j(b, path), "user.missing", b"x", os.XATTR_REPLACE),
        errno.ENODATA,
    )

    def replace_and_create(base):
        os.setxattr(j(base, path), "user.present", b"new", os.XATTR_REPLACE)
        os.setxattr(j(base, path), "user.fresh", b"created", os.XATTR_CREATE)
        return os.getxattr(j(base, path), "user.present"), os.getxattr(j(base, path), "user.fresh")

    assert same(twin, replace_and_create) == (b"new", b"created")


def test_symlink_attributes_are_its_own(twin):
    """user.* on a symlink is refused (EPERM) by the kernel, never applied to the target."""
    in_both(twin, file_and_dir)
    in_both(twin, lambda b: os.symlink("f", j(b, "link")))
    same_error(
        twin,
        lambda b: os.setxattr(j(b, "link"), "user.a", b"1", follow_symlinks=False),
        errno.EPERM,
    )

    def list_link(base):
        return os.listxattr(j(base, "link"), follow_symlinks=False)

    if twin.mount.backend == "nfs":
        fails_in_mount(twin, list_link, errno.EOPNOTSUPP)  # NFSv3 has no xattrs
    else:
        assert same(twin, list_link) == []
