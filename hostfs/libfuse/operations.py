"""pyfuse3 ``Operations`` that forward to the translation core.

Thin by design: convert pyfuse3's types to the core's and back, nothing more.
What pyfuse3 cannot express (FALLOCATE, LSEEK, COPY_FILE_RANGE, GETLK/SETLK)
the kernel answers itself: locks become local to the host kernel,
SEEK_DATA/SEEK_HOLE see one data extent, copy_file_range falls back to
read+write, and fallocate fails with EOPNOTSUPP.  The devfuse engine has them all.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import ParamSpec, TypeVar

import pyfuse3

from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.types import ROOT_CALLER, Caller, Entry, Opened, SetattrChanges, Stat

P = ParamSpec("P")
R = TypeVar("R")


def _errors_as_fuse_errors(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno or errno.EIO) from None

    return wrapper


def _caller(ctx: pyfuse3.RequestContext) -> Caller:
    return Caller(ctx.uid, ctx.gid, ctx.pid)


def _attributes(nodeid: int, st: Stat, attr_timeout: float) -> pyfuse3.EntryAttributes:
    # pyfuse3 uses st_ino as the nodeid: it cannot report the backend's inode number.
    attrs = pyfuse3.EntryAttributes()
    attrs.st_ino = nodeid
    attrs.st_mode = st.mode
    attrs.st_nlink = st.nlink
    attrs.st_uid = st.uid
    attrs.st_gid = st.gid
    attrs.st_rdev = st.rdev
    attrs.st_size = st.size
    attrs.st_blocks = st.blocks
    attrs.st_blksize = st.blksize
    attrs.st_atime_ns = st.atime_ns
    attrs.st_mtime_ns = st.mtime_ns
    attrs.st_ctime_ns = st.ctime_ns
    attrs.attr_timeout = attr_timeout
    return attrs


def _entry_attributes(entry: Entry) -> pyfuse3.EntryAttributes:
    attrs = _attributes(entry.nodeid, entry.attr, entry.attr_timeout)
    attrs.generation = entry.generation
    attrs.entry_timeout = entry.entry_timeout
    return attrs


def _file_info(opened: Opened) -> pyfuse3.FileInfo:
    return pyfuse3.FileInfo(
        fh=opened.fh,
        direct_io=opened.direct_io,
        keep_cache=opened.keep_cache,
        nonseekable=opened.nonseekable,
    )


class CoreOperations(pyfuse3.Operations):
    supports_dot_lookup = False

    def __init__(self, fs: FileSystem) -> None:
        super().__init__()
        self.fs = fs
        self.enable_writeback_cache = fs.options.writeback

    # pyfuse3 awaits a coroutine if one is returned (save_retval) and takes None too:
    # forgetting costs no I/O, so it stays synchronous.
    def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:  # type: ignore[override]
        self.fs.batch_forget(inode_list)

    @_errors_as_fuse_errors
    async def lookup(self, parent_inode, name, ctx):
        return _entry_attributes(await self.fs.lookup_entry(_caller(ctx), parent_inode, name))

    @_errors_as_fuse_errors
    async def getattr(self, inode, ctx):
        reply = await self.fs.getattr(_caller(ctx), inode)
        return _attributes(inode, reply.attr, reply.attr_timeout)

    @_errors_as_fuse_errors
    async def setattr(self, inode, attr, fields, fh, ctx):
        changes = SetattrChanges(
            mode=attr.st_mode if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            size=attr.st_size if fields.update_size else None,
            atime=attr.st_atime_ns if fields.update_atime else None,
            mtime=attr.st_mtime_ns if fields.update_mtime else None,
        )
        reply = await self.fs.setattr(_caller(ctx), inode, changes, fh)
        return _attributes(inode, reply.attr, reply.attr_timeout)

    @_errors_as_fuse_errors
    async def readlink(self, inode, ctx):
        return await self.fs.readlink(_caller(ctx), inode)

    @_errors_as_fuse_errors
    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        entry = await self.fs.mknod(_caller(ctx), parent_inode, name, mode, rdev)
        return _entry_attributes(entry)

    @_errors_as_fuse_errors
    async def mkdir(self, parent_inode, name, mode, ctx):
        return _entry_attributes(await self.fs.mkdir(_caller(ctx), parent_inode, name, mode))

    @_errors_as_fuse_errors
    async def unlink(self, parent_inode, name, ctx):
        await self.fs.unlink(_caller(ctx), parent_inode, name)

    @_errors_as_fuse_errors
    async def rmdir(self, parent_inode, name, ctx):
        await self.fs.rmdir(_caller(ctx), parent_inode, name)

    @_errors_as_fuse_errors
    async def symlink(self, parent_inode, name, target, ctx):
        return _entry_attributes(await self.fs.symlink(_caller(ctx), parent_inode, name, target))

    @_errors_as_fuse_errors
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        await self.fs.rename(
            _caller(ctx), parent_inode_old, name_old, parent_inode_new, name_new, flags
        )

    @_errors_as_fuse_errors
    async def link(self, inode, new_parent_inode, new_name, ctx):
        entry = await self.fs.link(_caller(ctx), inode, new_parent_inode, new_name)
        return _entry_attributes(entry)

    @_errors_as_fuse_errors
    async def open(self, inode, flags, ctx):
        # libfuse does not pass FUSE_OPEN_KILL_SUIDGID on; the kernel sets it for
        # an O_TRUNC open by a caller without CAP_FSETID, which root has.
        kill_suidgid = bool(flags & os.O_TRUNC) and ctx.uid != 0
        return _file_info(await self.fs.open(_caller(ctx), inode, flags, kill_suidgid))

    @_errors_as_fuse_errors
    async def create(self, parent_inode, name, mode, flags, ctx):
        entry, opened = await self.fs.create(_caller(ctx), parent_inode, name, mode, flags)
        return _file_info(opened), _entry_attributes(entry)

    @_errors_as_fuse_errors
    async def read(self, fh, off, size):
        # Slice, never resize: a backend may still hold a view of the buffer
        # (the nfs worker thread drops its reference only after replying).
        view = memoryview(bytearray(size))
        count = await self.fs.read(ROOT_CALLER, self.fs.file_nodeid(fh), fh, off, [view])
        return bytes(view[:count])

    @_errors_as_fuse_errors
    async def write(self, fh, off, buf):
        return await self.fs.write(ROOT_CALLER, self.fs.file_nodeid(fh), fh, off, [memoryview(buf)])

    @_errors_as_fuse_errors
    async def flush(self, fh):
        # pyfuse3 does not pass the lock owner; its locks live in the host kernel anyway.
        await self.fs.flush(ROOT_CALLER, self.fs.file_nodeid(fh), fh, 0)

    @_errors_as_fuse_errors
    async def release(self, fh):
        await self.fs.release(ROOT_CALLER, self.fs.file_nodeid(fh), fh)

    @_errors_as_fuse_errors
    async def fsync(self, fh, datasync):
        await self.fs.fsync(ROOT_CALLER, self.fs.file_nodeid(fh), fh, bool(datasync))

    @_errors_as_fuse_errors
    async def opendir(self, inode, ctx):
        return (await self.fs.opendir(_caller(ctx), inode, 0)).fh

    @_errors_as_fuse_errors
    async def readdir(self, fh, start_id, token):
        def add(name: bytes, ino: int, dtype: int, next_offset: int, entry: Entry | None) -> bool:
            if entry is None:
                return True  # "." and "..": pyfuse3 cannot send an entry without a lookup
            return pyfuse3.readdir_reply(token, name, _entry_attributes(entry), next_offset)

        await self.fs.readdir(ROOT_CALLER, self.fs.dir_nodeid(fh), fh, start_id, add, plus=True)

    @_errors_as_fuse_errors
    async def releasedir(self, fh):
        await self.fs.releasedir(ROOT_CALLER, self.fs.dir_nodeid(fh), fh)

    @_errors_as_fuse_errors
    async def fsyncdir(self, fh, datasync):
        await self.fs.fsyncdir(ROOT_CALLER, self.fs.dir_nodeid(fh), fh, bool(datasync))

    @_errors_as_fuse_errors
    async def statfs(self, ctx):
        st = await self.fs.statfs(_caller(ctx), ROOT_NODEID)
        data = pyfuse3.StatvfsData()
        data.f_bsize = st.bsize
        data.f_frsize = st.frsize
        data.f_blocks = st.blocks
        data.f_bfree = st.bfree
        data.f_bavail = st.bavail
        data.f_files = st.files
        data.f_ffree = st.ffree
        data.f_favail = st.ffree
        data.f_namemax = st.namelen
        return data

    @_errors_as_fuse_errors
    async def access(self, inode, mode, ctx):
        await self.fs.access(_caller(ctx), inode, mode)
        return True

    @_errors_as_fuse_errors
    async def setxattr(self, inode, name, value, ctx):
        await self.fs.setxattr(_caller(ctx), inode, name, value, 0)

    @_errors_as_fuse_errors
    async def getxattr(self, inode, name, ctx):
        return await self.fs.getxattr(_caller(ctx), inode, name)

    @_errors_as_fuse_errors
    async def listxattr(self, inode, ctx):
        return await self.fs.listxattr(_caller(ctx), inode)

    @_errors_as_fuse_errors
    async def removexattr(self, inode, name, ctx):
        await self.fs.removexattr(_caller(ctx), inode, name)
