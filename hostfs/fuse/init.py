"""FUSE_INIT: agree on a protocol version and on features.

Version rules are fuse.h's "Version negotiation" section: same major -> both
use the smaller minor; kernel major greater -> reply with ours and wait for
another INIT; kernel major smaller -> we cannot speak it, fail.  A minor below
:data:`abi.MIN_KERNEL_MINOR_VERSION` fails too, with the same EPROTO: the
kernel's process_init_reply() (fs/fuse/inode.c) takes any error as "no
connection", while a reply of 7.38 would be believed by a kernel that cannot
speak it.  Only features the core implements are offered.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from hostfs.core.options import FsOptions
from hostfs.fuse import abi

PAGE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Limits hostfs announces in ``fuse_init_out``, with the precedent for each default.

    ``concurrency`` is how many requests a transport serves at once.
    """

    max_write: int = 1 << 20
    """virtiofsd (Rust, C) announces 1 MiB; libfuse's default is 128 KiB."""
    max_readahead: int | None = None
    """None = accept the kernel's proposal (virtiofsd and libfuse echo it, capped)."""
    readahead: int = 4 << 20
    """Bytes of readahead a host mount's backing device gets after INIT (hostfs.devfuse:
    ``read_ahead_kb``; a guest's kernel sets its own): four ``max_write`` READs in
    flight for a sequential reader, where the kernel's 128 KiB default sent 128 KiB
    READs one after another.  Measured on an NFS share, one reader of 1 MiB
    preads, page cache dropped: 85 MiB/s at 128 KiB, 190 at 1 MiB, 540 at 4 MiB.
    Precedent: the Linux NFS client read ahead 15 x rsize before 5.4 (NFS_MAX_READAHEAD).
    0 leaves the kernel's default."""
    max_background: int = 0xFFFF
    """virtiofsd: ``u16::MAX`` (libfuse leaves 0, the kernel's default of 12)."""
    congestion_threshold: int = 0xFFFF // 4 * 3
    """virtiofsd: three quarters of max_background, as the kernel's own default ratio."""
    time_gran: int = 1
    """Timestamps are nanosecond-exact (virtiofsd and libfuse announce 1)."""
    concurrency: int = 16
    """Requests in flight per session; each holds one max_write-sized buffer."""
    passthrough: bool = False
    """Offer FUSE_PASSTHROUGH: only a /dev/fuse session can register backing files
    (a virtqueue cannot carry a file descriptor), so its transport turns this on."""

    over_io_uring: bool = False
    """Offer FUSE_OVER_IO_URING: the io_uring engine (hostfs.uring) turns it on."""

    allow_other: bool = False
    """A host mount's ``allow_other`` (users other than the mounting one may use it),
    which brings ``default_permissions`` with it (hostfs.devfuse.mount.mount_options).
    Off by default, as libfuse's passthrough_ll and passthrough_hp mount: then only
    the mounting user (root) gets in and no permission checks are needed, while
    ``default_permissions`` costs a GETATTR of the directory after every change to
    it (the kernel drops a directory's attributes when it creates or removes a name
    in it, fuse_dir_changed, and checks them before the next one): measured here,
    2000 files on tmpfs, devfuse, create 2.4k/s with it against 3.6k/s without,
    unlink 8.8k/s against 18.7k/s."""

    max_stack_depth: int = 1
    """``fuse_init_out.max_stack_depth`` with passthrough: backing files may sit on
    plain file systems only, so the mount itself can still be stacked on (libfuse's
    passthrough_hp example uses 1 as well; the kernel allows up to 2)."""

    @property
    def max_pages(self) -> int:
        """``fuse_init_out.max_pages``: pages per request, enough for ``max_write``
        (virtiofsd: max_write / page size = 256; the kernel caps it at 256 by default)."""
        return min(0xFFFF, max(1, -(-self.max_write // PAGE_SIZE)))

    @property
    def max_request(self) -> int:
        """The longest request served; a longer ``in_header.len`` gets ENOMEM unread.

        virtiofsd's rule: Rust virtiofsd (server.rs) answers ENOMEM when
        ``in_header.len > MAX_BUFFER_SIZE + BUFFER_HEADER_SIZE``, i.e. its max_write
        (1 MiB) plus 4 KiB.  No kernel sends more: /dev/fuse needs a read buffer of
        only ``max(FUSE_MIN_READ_BUFFER, in_header + write_in + max_write)``
        (fuse_dev_do_read) and fits BATCH_FORGET to the buffer
        (fuse_read_batch_forget); virtio-fs caps a request at max_pages pages of data.
        The 64 KiB floor keeps SETXATTR of a largest value (XATTR_SIZE_MAX) when
        max_write is small."""
        return max(abi.MIN_READ_BUFFER, self.max_write, 65536) + PAGE_SIZE

    @property
    def buffer_size(self) -> int:
        """A /dev/fuse read buffer that fits any request hostfs serves."""
        return self.max_request


@dataclass(frozen=True, slots=True)
class Protocol:
    """What INIT settled: how later requests are laid out and which features are on.

    ``minor`` is at least :data:`abi.MIN_KERNEL_MINOR_VERSION`, so every layout is
    the current one; only the flags change what a request or reply holds."""

    major: int = abi.KERNEL_VERSION
    minor: int = abi.KERNEL_MINOR_VERSION
    flags: int = 0
    setxattr_ext: bool = field(init=False, repr=False, compare=False)
    passthrough: bool = field(init=False, repr=False, compare=False)
    create_supp_group: bool = field(init=False, repr=False, compare=False)
    """The flags requests ask about (passthrough on every OPEN and CREATE), worked out
    once: a property is a call the attribute read enters from C (~1000 instructions)."""

    def __post_init__(self) -> None:
        agreed = self.flags
        object.__setattr__(self, "setxattr_ext", bool(agreed & abi.SETXATTR_EXT))
        object.__setattr__(self, "passthrough", bool(agreed & abi.PASSTHROUGH))
        object.__setattr__(self, "create_supp_group", bool(agreed & abi.CREATE_SUPP_GROUP))


def offered_flags(
    options: FsOptions, config: SessionConfig, *, supplementary_groups: bool = False
) -> int:
    """The INIT flags the core and this transport can honour with these options.

    ``supplementary_groups``: the backend creates with the groups FUSE_EXT_GROUPS
    carries (Backend.supplementary_groups), so FUSE_CREATE_SUPP_GROUP is offered."""
    flags = (
        abi.ASYNC_READ | abi.PARALLEL_DIROPS | abi.ATOMIC_O_TRUNC | abi.BIG_WRITES | abi.MAX_PAGES
    )
    if options.killpriv_v2:
        flags |= abi.HANDLE_KILLPRIV_V2
    if options.readdirplus:
        flags |= abi.DO_READDIRPLUS | abi.READDIRPLUS_AUTO
    if options.cache.cache_dir:
        # Cached listings are checked against the directory's mtime only with it
        # (fuse_readdir_cached); file pages are dropped when mtime or size change.
        flags |= abi.AUTO_INVAL_DATA
    if options.locks:
        flags |= abi.POSIX_LOCKS
    if options.flock:
        flags |= abi.FLOCK_LOCKS
    if options.allow_mmap:
        flags |= abi.DIRECT_IO_ALLOW_MMAP
    if options.writeback:
        flags |= abi.WRITEBACK_CACHE
    if options.xattr:
        flags |= abi.SETXATTR_EXT
    if supplementary_groups:
        flags |= abi.CREATE_SUPP_GROUP
    if config.over_io_uring:
        flags |= abi.OVER_IO_URING
    if config.passthrough and not options.writeback:
        # The kernel ignores FUSE_PASSTHROUGH together with WRITEBACK_CACHE.
        flags |= abi.PASSTHROUGH
    return flags


@dataclass(frozen=True, slots=True)
class InitReply:
    """The outcome of one INIT: an errno to fail with, or a reply body and the new
    protocol (None when the kernel must retry with our major)."""

    error: int
    body: bytes
    protocol: Protocol | None


def negotiate(
    major: int,
    minor: int,
    max_readahead: int,
    kernel_flags: int,
    options: FsOptions,
    config: SessionConfig,
    *,
    supplementary_groups: bool = False,
) -> InitReply:
    """Answer ``fuse_init_in`` (flags already merged with ``flags2 << 32``)."""
    if major < abi.KERNEL_VERSION:
        return InitReply(errno.EPROTO, b"", None)
    if major > abi.KERNEL_VERSION:
        body = abi.INIT_OUT.pack(abi.KERNEL_VERSION, abi.KERNEL_MINOR_VERSION, *[0] * 10)
        return InitReply(0, body[: abi.COMPAT_INIT_OUT_SIZE], None)
    if minor < abi.MIN_KERNEL_MINOR_VERSION:
        return InitReply(errno.EPROTO, b"", None)
    minor = min(minor, abi.KERNEL_MINOR_VERSION)
    flags = kernel_flags & offered_flags(options, config, supplementary_groups=supplementary_groups)
    if flags >> 32:
        flags |= abi.INIT_EXT  # the kernel reads flags2 only with it
    readahead = max_readahead
    if config.max_readahead is not None:
        readahead = min(readahead, config.max_readahead)
    body = abi.INIT_OUT.pack(
        abi.KERNEL_VERSION,
        minor,
        readahead,
        flags & 0xFFFFFFFF,
        config.max_background,
        config.congestion_threshold,
        config.max_write,
        config.time_gran,
        config.max_pages if flags & abi.MAX_PAGES else 0,
        0,
        flags >> 32,
        config.max_stack_depth if flags & abi.PASSTHROUGH else 0,
    )
    return InitReply(0, body, Protocol(abi.KERNEL_VERSION, minor, flags))
