"""mount(2) and umount2(2) of a FUSE file system on an open /dev/fuse (hostfs.libc).

This is what fusermount does for libfuse, minus the setuid helper: hostfs
runs as root (or with CAP_SYS_ADMIN) and mounts directly.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import struct

from hostfs import libc
from hostfs.devfuse.capabilities import CAP_FSETID, without_capability
from hostfs.fuse import abi

FSNAME = "hostfs"
FSTYPE = "fuse.hostfs"

_MOUNT_ERRORS = {
    errno.ENOENT: "mount point {} does not exist",
    errno.ENOTDIR: "mount point {} is not a directory",
    errno.EBUSY: "mount point {} is busy",
    errno.EPERM: "mounting {} needs root (CAP_SYS_ADMIN)",
    errno.EACCES: "mounting {} needs root (CAP_SYS_ADMIN)",
    errno.ENODEV: "the kernel has no FUSE support (modprobe fuse) to mount {}",
}


def mount_error(code: int, mountpoint: str) -> OSError:
    """An OSError whose message says in one line why ``mountpoint`` cannot be mounted."""
    template = _MOUNT_ERRORS.get(code, "cannot mount {}: " + os.strerror(code))
    return OSError(code, template.format(mountpoint))


def open_device() -> int:
    """Open /dev/fuse non-blocking, so trio can wait for requests."""
    try:
        return os.open("/dev/fuse", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise OSError(error.errno, f"cannot open /dev/fuse: {error.strerror}") from None


def mount_options(*, allow_other: bool) -> list[str]:
    """The permission words of a host mount (fuse(4)): ``allow_other`` always with
    ``default_permissions``, and neither by default (SessionConfig.allow_other).

    Why together: with other users admitted, the kernel must check each one's
    access from the attributes hostfs returns (``default_permissions``, as every
    virtiofs mount does), or any user could read what the daemon (root) can.
    Without ``allow_other`` the kernel lets only the mounting user in
    (fuse_allow_current_process: the caller's uid and gid are the mount's
    ``user_id``/``group_id``), root, for whom those checks pass anyway, so they
    would only cost round trips (a GETATTR of the directory after each create or
    unlink in it; measured in SessionConfig.allow_other).  libfuse's own rule is
    the same: neither is on unless asked for."""
    return ["default_permissions", "allow_other"] if allow_other else []


def mount(fd: int, mountpoint: str, *, allow_other: bool = False) -> None:
    """Mount the FUSE connection on ``fd`` at ``mountpoint`` (fuse(4) mount options)."""
    try:
        st = os.stat(mountpoint)
    except OSError as error:
        raise mount_error(error.errno or errno.ENOENT, mountpoint) from None
    if not stat.S_ISDIR(st.st_mode):
        raise mount_error(errno.ENOTDIR, mountpoint)
    options = [
        f"fd={fd}",
        f"rootmode={stat.S_IFDIR:o}",
        f"user_id={os.getuid()}",
        f"group_id={os.getgid()}",
        *mount_options(allow_other=allow_other),
    ]
    try:
        libc.mount(FSNAME, mountpoint, FSTYPE, libc.MS_NOSUID | libc.MS_NODEV, ",".join(options))
    except OSError as error:
        raise mount_error(error.errno or errno.EIO, mountpoint) from None


def unmount(mountpoint: str) -> None:
    """Unmount; if busy, detach lazily (the mount disappears once no one uses it).
    A mount point that is no longer mounted is fine."""
    try:
        libc.umount2(mountpoint, 0)
        return
    except OSError as error:
        code = error.errno or errno.EIO
    if code == errno.EBUSY:
        try:
            libc.umount2(mountpoint, libc.MNT_DETACH)
            return
        except OSError as error:
            code = error.errno or errno.EIO
    if code not in (errno.EINVAL, errno.ENOENT):
        raise OSError(code, f"cannot unmount {mountpoint}: {os.strerror(code)}")


def set_readahead(mountpoint: str, size: int) -> str | None:
    """Give the mount's backing device ``size`` bytes of readahead
    (``/sys/class/bdi/MAJ:MIN/read_ahead_kb``); None if done, else why not.

    The kernel starts a FUSE mount at 128 KiB (``VM_READAHEAD_PAGES``) and
    INIT's ``max_readahead`` can only lower it (process_init_reply), so a 1 MiB
    read in the page cache path became eight 128 KiB READs, one or two in
    flight.  Only the administrator's knob raises it, after the mount.  The
    device is found in /proc/self/mountinfo, not by a stat of the mount point:
    that stat would be a FUSE request this very process has to answer.
    """
    parent, name = os.path.split(os.path.abspath(mountpoint))
    target = os.path.join(os.path.realpath(parent), name)
    device = None
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda octal: chr(int(octal[1], 8)), fields[4])
            if point == target and line.split(" - ", 1)[1].startswith(FSTYPE + " "):
                device = fields[2]  # the last one: mounted over any earlier
    if device is None:
        return f"{target} is not in /proc/self/mountinfo"
    try:
        with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w") as knob:
            knob.write(str(size // 1024))
    except OSError as error:
        return f"/sys/class/bdi/{device}/read_ahead_kb: {error.strerror}"
    return None


class DeviceBackings:
    """The /dev/fuse ioctls that register backing files (hostfs.fuse.passthrough).

    Needs CAP_SYS_ADMIN, as mounting does; the kernel keeps its own reference
    to the file, so the descriptor may be closed once registered.  Registered
    without CAP_FSETID, so writes through it drop setuid/setgid (see
    hostfs.devfuse.capabilities).
    """

    def __init__(self, device_fd: int) -> None:
        self.device_fd = device_fd

    def open_backing(self, fd: int) -> int:
        request = bytearray(abi.BACKING_MAP.pack(fd, 0, 0))
        with without_capability(CAP_FSETID):
            # A mutable argument makes fcntl.ioctl return the ioctl's result: the id.
            return fcntl.ioctl(self.device_fd, abi.DEV_IOC_BACKING_OPEN, request)

    def close_backing(self, backing_id: int) -> None:
        fcntl.ioctl(self.device_fd, abi.DEV_IOC_BACKING_CLOSE, struct.pack("<I", backing_id))
