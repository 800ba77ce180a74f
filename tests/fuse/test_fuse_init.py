"""INIT negotiation across kernel versions and options."""

from __future__ import annotations

import errno

import pytest

from hostfs.core.options import FsOptions
from hostfs.fuse import abi
from hostfs.fuse.init import SessionConfig, negotiate, offered_flags

ALL = (1 << 64) - 1


@pytest.mark.parametrize(
    ("minor", "size", "spoken"),
    [(31, 64, 31), (38, 64, 38), (45, 64, 38)],
)
def test_reply_size_follows_the_kernel_minor(minor: int, size: int, spoken: int) -> None:
    reply = negotiate(7, minor, 65536, ALL, FsOptions(), SessionConfig())
    assert reply.error == 0 and len(reply.body) == size
    assert reply.protocol is not None and reply.protocol.minor == spoken
    major, got_minor, readahead, flags = abi.COMPAT_INIT_IN.unpack_from(reply.body)
    assert (major, got_minor, readahead) == (7, spoken, 65536)
    assert flags == offered_flags(FsOptions(), SessionConfig())
    if size == 64:
        fields = abi.INIT_OUT.unpack(reply.body)
        assert fields[4:9] == (0xFFFF, 0xFFFF // 4 * 3, 1 << 20, 1, 256)


@pytest.mark.parametrize("minor", [0, 4, 22, 27, 30])
def test_minor_below_the_floor_is_refused(minor: int) -> None:
    """An error, not our 7.38: process_init_reply() believes any minor we send."""
    reply = negotiate(7, minor, 65536, ALL, FsOptions(), SessionConfig())
    assert abi.MIN_KERNEL_MINOR_VERSION == 31
    assert reply.error == errno.EPROTO and reply.body == b"" and reply.protocol is None


def test_older_major_is_refused() -> None:
    reply = negotiate(6, 30, 0, ALL, FsOptions(), SessionConfig())
    assert reply.error == errno.EPROTO and reply.protocol is None


def test_newer_major_gets_ours_and_no_session() -> None:
    reply = negotiate(8, 0, 0, ALL, FsOptions(), SessionConfig())
    assert reply.error == 0 and reply.protocol is None
    assert abi.INIT_IN_PREFIX.unpack(reply.body) == (7, abi.KERNEL_MINOR_VERSION)


def test_only_features_the_kernel_offers_and_options_allow() -> None:
    options = FsOptions(xattr=True, writeback=True, locks=False, readdirplus=False)
    offered = abi.WRITEBACK_CACHE | abi.POSIX_LOCKS | abi.ASYNC_READ | abi.EXPORT_SUPPORT
    flags = negotiate(7, 38, 0, offered, options, SessionConfig()).protocol.flags
    assert flags == abi.WRITEBACK_CACHE | abi.ASYNC_READ
    defaults = offered_flags(FsOptions(), SessionConfig())
    assert defaults & abi.DO_READDIRPLUS and defaults & abi.FLOCK_LOCKS
    assert not defaults & (abi.WRITEBACK_CACHE | abi.SETXATTR_EXT | abi.EXPORT_SUPPORT)
    assert offered_flags(FsOptions(xattr=True), SessionConfig()) & abi.SETXATTR_EXT


def test_config_limits() -> None:
    config = SessionConfig(max_write=128 * 1024, max_readahead=4096)
    fields = abi.INIT_OUT.unpack(negotiate(7, 38, 65536, ALL, FsOptions(), config).body)
    assert fields[2] == 4096 and fields[6] == 128 * 1024 and fields[8] == 32
    assert config.buffer_size >= abi.IN_HEADER.size + abi.WRITE_IN.size + config.max_write


def test_passthrough_only_when_asked_offered_and_without_writeback() -> None:
    kernel = abi.INIT_EXT | abi.PASSTHROUGH | abi.WRITEBACK_CACHE | abi.ASYNC_READ
    asked = SessionConfig(passthrough=True)
    reply = negotiate(7, 45, 0, kernel, FsOptions(), asked)
    fields = abi.INIT_OUT.unpack(reply.body)
    assert fields[3] & abi.INIT_EXT, "flags2 is only read with FUSE_INIT_EXT"
    assert fields[10] == abi.PASSTHROUGH >> 32 and fields[11] == 1
    assert reply.protocol.passthrough
    for kernel_flags, options, config in [
        (kernel, FsOptions(), SessionConfig()),
        (kernel & ~abi.PASSTHROUGH, FsOptions(), asked),
        (kernel, FsOptions(writeback=True), asked),
    ]:
        reply = negotiate(7, 45, 0, kernel_flags, options, config)
        fields = abi.INIT_OUT.unpack(reply.body)
        assert not reply.protocol.passthrough
        assert not fields[3] & abi.INIT_EXT and fields[10:12] == (0, 0)


def test_the_request_cap_is_virtiofsds() -> None:
    """Rust virtiofsd: in_header.len > MAX_BUFFER_SIZE (1 MiB) + 4 KiB -> ENOMEM."""
    assert SessionConfig().max_request == (1 << 20) + 4096
    assert SessionConfig(max_write=4096).max_request == 65536 + 4096


def test_create_supp_group_only_when_the_backend_honours_groups() -> None:
    kernel = ALL | abi.CREATE_SUPP_GROUP
    for backend, agreed in ((True, True), (False, False)):
        reply = negotiate(
            7, 38, 0, kernel, FsOptions(), SessionConfig(), supplementary_groups=backend
        )
        assert reply.protocol is not None
        assert bool(reply.protocol.flags & abi.CREATE_SUPP_GROUP) is agreed
        assert reply.protocol.create_supp_group is agreed
        flags2 = abi.INIT_OUT.unpack(reply.body)[10]
        assert bool(flags2 << 32 & abi.CREATE_SUPP_GROUP) is agreed
        assert bool(abi.INIT_OUT.unpack(reply.body)[3] & abi.INIT_EXT) is agreed
