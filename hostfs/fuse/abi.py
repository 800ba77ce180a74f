"""The FUSE kernel ABI: opcodes, flags and struct layouts from ``<linux/fuse.h>``.

Layouts are pre-compiled :class:`struct.Struct` objects in little-endian
byte order (virtio-fs is little-endian by specification; /dev/fuse on x86 and
arm64 too).  Each one cites the fuse.h struct it mirrors.

Versions: hostfs answers INIT with minor 7.38 (or the kernel's, if smaller)
and refuses kernels below 7.31, so no pre-7.31 layout is kept.  The layouts
are fuse.h 7.40's: the fields added after 7.38 are sent only under the
negotiated flag that makes the kernel read them, whatever the minor (the
kernel tests the flag, not ``fc->minor``):

- ``fuse_init_out.max_stack_depth`` (7.40): non-zero only with FUSE_PASSTHROUGH
  in the reply's flags2 (fs/fuse/inode.c, process_init_reply);
- ``fuse_open_out.backing_id`` (7.40): set only with FOPEN_PASSTHROUGH in
  ``open_flags``, itself sent only once FUSE_PASSTHROUGH was negotiated
  (fs/fuse/iomode.c, fuse_file_io_open);
- FUSE_DIRECT_IO_ALLOW_MMAP (7.39): a flags2 bit, echoed only when the kernel
  offers it.
- FUSE_OVER_IO_URING (7.42): a flags2 bit, offered only by the io_uring engine
  (hostfs.uring); the kernel tests the flag in process_init_reply.
"""

from __future__ import annotations

import enum
import struct

KERNEL_VERSION = 7
"""``FUSE_KERNEL_VERSION``."""

KERNEL_MINOR_VERSION = 38
"""The minor hostfs speaks: 7.38 (Linux 6.2, FUSE_EXT_GROUPS); what came after is
flag-gated (module docstring)."""

MIN_KERNEL_MINOR_VERSION = 31
"""The oldest minor served: 7.31 (Linux 5.4) is the first with the virtio-fs driver
(fs/fuse/virtio_fs.c); virtiofsd refuses below 7.27.  Every kernel hostfs meets is
far newer (Linux 6.1 speaks 7.37)."""

ROOT_ID = 1
"""``FUSE_ROOT_ID``."""

MIN_READ_BUFFER = 8192
"""``FUSE_MIN_READ_BUFFER``: /dev/fuse refuses reads into anything smaller."""


class Opcode(enum.IntEnum):
    """``enum fuse_opcode``."""

    LOOKUP = 1
    FORGET = 2
    GETATTR = 3
    SETATTR = 4
    READLINK = 5
    SYMLINK = 6
    MKNOD = 8
    MKDIR = 9
    UNLINK = 10
    RMDIR = 11
    RENAME = 12
    LINK = 13
    OPEN = 14
    READ = 15
    WRITE = 16
    STATFS = 17
    RELEASE = 18
    FSYNC = 20
    SETXATTR = 21
    GETXATTR = 22
    LISTXATTR = 23
    REMOVEXATTR = 24
    FLUSH = 25
    INIT = 26
    OPENDIR = 27
    READDIR = 28
    RELEASEDIR = 29
    FSYNCDIR = 30
    GETLK = 31
    SETLK = 32
    SETLKW = 33
    ACCESS = 34
    CREATE = 35
    INTERRUPT = 36
    BMAP = 37
    DESTROY = 38
    IOCTL = 39
    POLL = 40
    NOTIFY_REPLY = 41
    BATCH_FORGET = 42
    FALLOCATE = 43
    READDIRPLUS = 44
    RENAME2 = 45
    LSEEK = 46
    COPY_FILE_RANGE = 47
    SETUPMAPPING = 48
    REMOVEMAPPING = 49
    SYNCFS = 50
    TMPFILE = 51


MAX_OPCODE = max(Opcode)

# -- INIT flags (fuse_init_in.flags / fuse_init_out.flags; bits 32.. go in flags2) --
ASYNC_READ = 1 << 0
POSIX_LOCKS = 1 << 1
FILE_OPS = 1 << 2
ATOMIC_O_TRUNC = 1 << 3
EXPORT_SUPPORT = 1 << 4
BIG_WRITES = 1 << 5
DONT_MASK = 1 << 6
SPLICE_WRITE = 1 << 7
SPLICE_MOVE = 1 << 8
SPLICE_READ = 1 << 9
FLOCK_LOCKS = 1 << 10
HAS_IOCTL_DIR = 1 << 11
AUTO_INVAL_DATA = 1 << 12
DO_READDIRPLUS = 1 << 13
READDIRPLUS_AUTO = 1 << 14
ASYNC_DIO = 1 << 15
WRITEBACK_CACHE = 1 << 16
NO_OPEN_SUPPORT = 1 << 17
PARALLEL_DIROPS = 1 << 18
HANDLE_KILLPRIV = 1 << 19
POSIX_ACL = 1 << 20
ABORT_ERROR = 1 << 21
MAX_PAGES = 1 << 22
CACHE_SYMLINKS = 1 << 23
NO_OPENDIR_SUPPORT = 1 << 24
EXPLICIT_INVAL_DATA = 1 << 25
MAP_ALIGNMENT = 1 << 26
SUBMOUNTS = 1 << 27
HANDLE_KILLPRIV_V2 = 1 << 28
SETXATTR_EXT = 1 << 29
INIT_EXT = 1 << 30
CREATE_SUPP_GROUP = 1 << 34
"""fuse.h 7.38 (Linux 6.2), ``flags2``: CREATE, MKNOD, MKDIR and SYMLINK carry, as a
FUSE_EXT_GROUPS extension, the parent directory's group when the caller is in it only
through a supplementary group (fs/fuse/dir.c, ``get_create_supp_group``)."""
DIRECT_IO_ALLOW_MMAP = 1 << 36
"""fuse.h 7.39 (Linux 6.6), ``flags2``: a FOPEN_DIRECT_IO file may be mapped shared."""
PASSTHROUGH = 1 << 37
"""fuse.h 7.40 (Linux 6.9), the first flag of ``flags2``: OPEN may name a backing file."""
OVER_IO_URING = 1 << 41
"""fuse.h 7.42 (Linux 6.14), ``flags2``: the kernel offers it only while
``fuse.enable_uring`` is on; a reply with it sets ``fc->io_uring``, after which the
kernel holds new requests until every ring queue has an entry (fuse_block_alloc)
or a registration fails (then /dev/fuse carries everything).  hostfs.uring."""

# -- fuse_setattr_in.valid --
FATTR_MODE = 1 << 0
FATTR_UID = 1 << 1
FATTR_GID = 1 << 2
FATTR_SIZE = 1 << 3
FATTR_ATIME = 1 << 4
FATTR_MTIME = 1 << 5
FATTR_FH = 1 << 6
FATTR_ATIME_NOW = 1 << 7
FATTR_MTIME_NOW = 1 << 8
FATTR_LOCKOWNER = 1 << 9
FATTR_CTIME = 1 << 10
FATTR_KILL_SUIDGID = 1 << 11

# -- fuse_open_out.open_flags --
FOPEN_DIRECT_IO = 1 << 0
FOPEN_KEEP_CACHE = 1 << 1
FOPEN_NONSEEKABLE = 1 << 2
FOPEN_CACHE_DIR = 1 << 3
FOPEN_NOFLUSH = 1 << 5
FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6
FOPEN_PASSTHROUGH = 1 << 7
"""fuse.h 7.40: read, write and mmap go to ``fuse_open_out.backing_id``'s file."""
FOPEN_PASSTHROUGH_MASK = (
    FOPEN_PASSTHROUGH | FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES | FOPEN_NOFLUSH
)
"""The only flags an open may carry beside FOPEN_PASSTHROUGH (the kernel's
fs/fuse/fuse_i.h; ``fuse_file_passthrough_open`` fails the open with EINVAL on any
other, FOPEN_KEEP_CACHE included, and the caller sees EIO)."""

# -- per-request flags --
OPEN_KILL_SUIDGID = 1 << 0
"""``fuse_open_in.open_flags`` (7.36, HANDLE_KILLPRIV_V2): an O_TRUNC open by a
caller without CAP_FSETID; the server drops setuid/setgid."""
RELEASE_FLUSH = 1 << 0
RELEASE_FLOCK_UNLOCK = 1 << 1
GETATTR_FH = 1 << 0
LK_FLOCK = 1 << 0
WRITE_CACHE = 1 << 0
WRITE_LOCKOWNER = 1 << 1
WRITE_KILL_SUIDGID = 1 << 2
FSYNC_FDATASYNC = 1 << 0

# -- struct layouts ---------------------------------------------------------

IN_HEADER = struct.Struct("<IIQQIIIHH")
"""``struct fuse_in_header``: len, opcode, unique, nodeid, uid, gid, pid, total_extlen, pad."""

EXT_HEADER = struct.Struct("<II")
"""``struct fuse_ext_header`` (7.38): size (this header included, a multiple of 8), type.
Extensions follow a request's arguments, ``total_extlen`` 8-byte units in all."""
EXT_GROUPS = 32
"""``FUSE_EXT_GROUPS`` (``enum fuse_ext_type``; types 0..31 are security contexts)."""
SUPP_GROUPS = struct.Struct("<I")
"""``struct fuse_supp_groups``: nr_groups, then that many ``uint32_t groups[]``."""
GROUP = struct.Struct("<I")

OUT_HEADER = struct.Struct("<IiQ")
"""``struct fuse_out_header``: len, error (negative errno), unique."""

_ATTR = "QQQqqqIIIIIIIIII"
ATTR = struct.Struct("<" + _ATTR)
"""``struct fuse_attr``: ino, size, blocks, atime, mtime, ctime, atimensec, mtimensec,
ctimensec, mode, nlink, uid, gid, rdev, blksize, flags.  Times are packed signed (the
kernel reads them as ``time64_t``) so dates before 1970 survive."""

ENTRY_OUT = struct.Struct("<QQQQII" + _ATTR)
"""``struct fuse_entry_out``: nodeid, generation, entry_valid, attr_valid,
entry_valid_nsec, attr_valid_nsec, attr."""

ATTR_OUT = struct.Struct("<QII" + _ATTR)
"""``struct fuse_attr_out``: attr_valid, attr_valid_nsec, dummy, attr."""

KSTATFS = struct.Struct("<QQQQQIIII24x")
"""``struct fuse_statfs_out`` = ``struct fuse_kstatfs``: blocks, bfree, bavail, files,
ffree, bsize, namelen, frsize, padding, spare[6]."""

FILE_LOCK = struct.Struct("<QQII")
"""``struct fuse_file_lock`` = ``struct fuse_lk_out``: start, end, type, pid."""

FORGET_IN = struct.Struct("<Q")
"""``struct fuse_forget_in``: nlookup."""

FORGET_ONE = struct.Struct("<QQ")
"""``struct fuse_forget_one``: nodeid, nlookup."""

BATCH_FORGET_IN = struct.Struct("<II")
"""``struct fuse_batch_forget_in``: count, dummy."""

GETATTR_IN = struct.Struct("<IIQ")
"""``struct fuse_getattr_in``: getattr_flags, dummy, fh."""

MKNOD_IN = struct.Struct("<IIII")
"""``struct fuse_mknod_in``: mode, rdev, umask, padding."""

MKDIR_IN = struct.Struct("<II")
"""``struct fuse_mkdir_in``: mode, umask."""

RENAME_IN = struct.Struct("<Q")
"""``struct fuse_rename_in``: newdir."""

RENAME2_IN = struct.Struct("<QII")
"""``struct fuse_rename2_in``: newdir, flags, padding."""

LINK_IN = struct.Struct("<Q")
"""``struct fuse_link_in``: oldnodeid."""

SETATTR_IN = struct.Struct("<IIQQQqqqIIIIIIII")
"""``struct fuse_setattr_in``: valid, padding, fh, size, lock_owner, atime, mtime, ctime,
atimensec, mtimensec, ctimensec, mode, unused4, uid, gid, unused5."""

OPEN_IN = struct.Struct("<II")
"""``struct fuse_open_in``: flags, open_flags."""

CREATE_IN = struct.Struct("<IIII")
"""``struct fuse_create_in``: flags, mode, umask, open_flags."""

OPEN_OUT = struct.Struct("<QIi")
"""``struct fuse_open_out``: fh, open_flags, backing_id (7.40, read by the kernel only
with FOPEN_PASSTHROUGH; padding before)."""

RELEASE_IN = struct.Struct("<QIIQ")
"""``struct fuse_release_in``: fh, flags, release_flags, lock_owner."""

FLUSH_IN = struct.Struct("<QIIQ")
"""``struct fuse_flush_in``: fh, unused, padding, lock_owner."""

READ_IN = struct.Struct("<QQIIQII")
"""``struct fuse_read_in``: fh, offset, size, read_flags, lock_owner, flags, padding
(also the argument of READDIR and READDIRPLUS)."""

WRITE_IN = struct.Struct("<QQIIQII")
"""``struct fuse_write_in``: fh, offset, size, write_flags, lock_owner, flags, padding."""

WRITE_OUT = struct.Struct("<II")
"""``struct fuse_write_out``: size, padding."""

FSYNC_IN = struct.Struct("<QII")
"""``struct fuse_fsync_in``: fh, fsync_flags, padding."""

SETXATTR_IN = struct.Struct("<IIII")
"""``struct fuse_setxattr_in``: size, flags, setxattr_flags, padding (FUSE_SETXATTR_EXT)."""

COMPAT_SETXATTR_IN = struct.Struct("<II")
"""The first ``FUSE_COMPAT_SETXATTR_IN_SIZE`` bytes: size, flags."""

GETXATTR_IN = struct.Struct("<II")
"""``struct fuse_getxattr_in``: size, padding (also LISTXATTR's argument)."""

GETXATTR_OUT = struct.Struct("<II")
"""``struct fuse_getxattr_out``: size, padding."""

LK_IN = struct.Struct("<QQQQIIII")
"""``struct fuse_lk_in``: fh, owner, lk (start, end, type, pid), lk_flags, padding."""

ACCESS_IN = struct.Struct("<II")
"""``struct fuse_access_in``: mask, padding."""

INIT_IN = struct.Struct("<IIIII44x")
"""``struct fuse_init_in``: major, minor, max_readahead, flags, flags2, unused[11]."""

INIT_IN_PREFIX = struct.Struct("<II")
"""major and minor: all an INIT from major != 7 is read for."""

COMPAT_INIT_IN = struct.Struct("<IIII")
"""``fuse_init_in`` up to 7.35 (no flags2): major, minor, max_readahead, flags."""

INIT_OUT = struct.Struct("<IIIIHHIIHHII24x")
"""``struct fuse_init_out``: major, minor, max_readahead, flags, max_background,
congestion_threshold, max_write, time_gran, max_pages, map_alignment, flags2,
max_stack_depth (7.40, non-zero only with FUSE_PASSTHROUGH), unused[6]."""

COMPAT_INIT_OUT_SIZE = 8
"""``FUSE_COMPAT_INIT_OUT_SIZE``: major and minor, all the answer to a kernel of a
newer major holds (fuse.h, "Version negotiation")."""

INTERRUPT_IN = struct.Struct("<Q")
"""``struct fuse_interrupt_in``: unique."""

FALLOCATE_IN = struct.Struct("<QQQII")
"""``struct fuse_fallocate_in``: fh, offset, length, mode, padding."""

LSEEK_IN = struct.Struct("<QQII")
"""``struct fuse_lseek_in``: fh, offset, whence, padding."""

LSEEK_OUT = struct.Struct("<q")
"""``struct fuse_lseek_out``: offset."""

COPY_FILE_RANGE_IN = struct.Struct("<QQQQQQQ")
"""``struct fuse_copy_file_range_in``: fh_in, off_in, nodeid_out, fh_out, off_out, len,
flags."""

SYNCFS_IN = struct.Struct("<Q")
"""``struct fuse_syncfs_in``: padding."""

DIRENT = struct.Struct("<QQII")
"""``struct fuse_dirent`` without its name: ino, off, namelen, type."""

DIRENTPLUS_SIZE = ENTRY_OUT.size + DIRENT.size
"""``FUSE_NAME_OFFSET_DIRENTPLUS``: ``struct fuse_direntplus`` up to the name."""


def rec_align(size: int) -> int:
    """``FUSE_REC_ALIGN``: dirents are padded to 8 bytes."""
    return (size + 7) & ~7


# -- /dev/fuse ioctls (fuse.h 7.40, "Device ioctls") --
BACKING_MAP = struct.Struct("<iIQ")
"""``struct fuse_backing_map``: fd, flags (must be 0), padding."""

DEV_IOC_BACKING_OPEN = 0x4010E501
"""``FUSE_DEV_IOC_BACKING_OPEN`` = ``_IOW(229, 1, struct fuse_backing_map)``: returns an id."""

DEV_IOC_BACKING_CLOSE = 0x4004E502
"""``FUSE_DEV_IOC_BACKING_CLOSE`` = ``_IOW(229, 2, uint32_t)``."""
