"""A stand-in for the core: canned answers, and a record of what it was asked."""

from __future__ import annotations

import errno
from collections.abc import Sequence

import trio

from hostfs.core.options import FsOptions
from hostfs.core.types import AttrReply, Entry, Lock, Opened, Stat, StatFs

STAT = Stat(1, 77, 0o100644, 1, 1000, 100, 0, 11, 8, 4096, 10**9, 2 * 10**9, 3 * 10**9)
DIR_STAT = STAT._replace(ino=2, mode=0o40755)
CONTENT = bytes(range(256)) * 64
LISTING = [(b".", 2, 4), (b"..", 1, 4)] + [(b"f%03d" % i, 100 + i, 8) for i in range(50)]


class FakeFileSystem:
    """Every FileSystem method; ``calls`` records (name, args) for assertions."""

    def __init__(self, options: FsOptions | None = None) -> None:
        self.options = options or FsOptions(xattr=True)
        self.calls: list[tuple[str, tuple]] = []
        self.written: list[memoryview] = []
        self.xattrs = {b"user.a": b"value"}
        self.block = trio.Event()
        self.calls_wait = True
        self.calls_in_loop = False
        self.supplementary_groups = True
        self.held: dict[int, AttrReply] = {}
        """Attributes held fresh (FileSystem.held_attr), by nodeid."""

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, args))

    def entry(self, nodeid: int = 5) -> Entry:
        return Entry(nodeid, 0, STAT, 1.0, 1.0)

    async def init(self) -> None:
        self._record("init")

    async def destroy(self) -> None:
        self._record("destroy")

    async def lookup_entry(self, caller, parent, name):
        return await self.lookup(caller, parent, name)

    async def lookup(self, caller, parent, name):
        self._record("lookup", caller, parent, name)
        if name == b"missing":
            raise OSError(errno.ENOENT, "no")
        if name == b"boom":
            raise RuntimeError("bug in the core")
        if name == b"slow":
            await self.block.wait()
        return self.entry()

    def forget(self, nodeid, nlookup):
        self._record("forget", nodeid, nlookup)

    def batch_forget(self, items):
        self._record("batch_forget", list(items))

    def held_attr(self, nodeid):
        return self.held.get(nodeid)

    async def getattr(self, caller, nodeid, fh=None):
        self._record("getattr", nodeid, fh)
        return AttrReply(STAT, 1.0)

    async def setattr(self, caller, nodeid, changes, fh=None):
        self._record("setattr", nodeid, changes, fh)
        return AttrReply(STAT, 1.0)

    async def readlink(self, caller, nodeid):
        return b"/some/target"

    async def symlink(self, caller, parent, name, target):
        self._record("symlink", parent, name, target)
        return self.entry()

    async def mknod(self, caller, parent, name, mode, rdev):
        self._record("mknod", parent, name, mode, rdev)
        return self.entry()

    async def mkdir(self, caller, parent, name, mode):
        self._record("mkdir", parent, name, mode)
        return self.entry()

    async def unlink(self, caller, parent, name):
        self._record("unlink", parent, name)

    async def rmdir(self, caller, parent, name):
        self._record("rmdir", parent, name)

    async def rename(self, caller, parent, name, new_parent, new_name, flags=0):
        self._record("rename", parent, name, new_parent, new_name, flags)

    async def link(self, caller, nodeid, new_parent, new_name):
        self._record("link", nodeid, new_parent, new_name)
        return self.entry()

    async def open(self, caller, nodeid, flags, kill_suidgid=False):
        self._record("open", nodeid, flags, kill_suidgid)
        return Opened(3, keep_cache=True)

    async def create(self, caller, parent, name, mode, flags):
        self._record("create", parent, name, mode, flags)
        return self.entry(), Opened(4)

    async def read(self, caller, nodeid, fh, offset, buffers: Sequence[memoryview]) -> int:
        self._record("read", nodeid, fh, offset, [len(b) for b in buffers])
        data = CONTENT[offset:]
        done = 0
        for buffer in buffers:
            chunk = data[done : done + len(buffer)]
            buffer[: len(chunk)] = chunk
            done += len(chunk)
        return done

    async def write(self, caller, nodeid, fh, offset, buffers, kill_suidgid=False) -> int:
        self._record("write", nodeid, fh, offset, kill_suidgid)
        self.written = list(buffers)
        return sum(len(b) for b in buffers)

    async def flush(self, caller, nodeid, fh, lock_owner):
        self._record("flush", nodeid, fh, lock_owner)

    async def release(self, caller, nodeid, fh, lock_owner=0, flock_release=False):
        self._record("release", nodeid, fh, lock_owner, flock_release)

    async def fsync(self, caller, nodeid, fh, datasync):
        self._record("fsync", nodeid, fh, datasync)

    async def opendir(self, caller, nodeid, flags):
        return Opened(6, cache_dir=True)

    async def readdir(self, caller, nodeid, fh, offset, add, plus):
        self._record("readdir", offset, plus)
        for index, (name, ino, dtype) in enumerate(LISTING[offset:], offset + 1):
            entry = None if name in (b".", b"..") or not plus else self.entry(ino)
            if not add(name, ino, dtype, index, entry):
                break

    async def releasedir(self, caller, nodeid, fh):
        self._record("releasedir", nodeid, fh)

    async def fsyncdir(self, caller, nodeid, fh, datasync):
        self._record("fsyncdir", nodeid, fh, datasync)

    async def statfs(self, caller, nodeid):
        return StatFs(100, 50, 40, 1000, 900, 4096, 255, 4096)

    async def access(self, caller, nodeid, mask):
        self._record("access", caller, nodeid, mask)

    async def setxattr(self, caller, nodeid, name, value, flags):
        self.xattrs[name] = value

    async def getxattr(self, caller, nodeid, name):
        try:
            return self.xattrs[name]
        except KeyError:
            raise OSError(errno.ENODATA, "no attribute") from None

    async def listxattr(self, caller, nodeid):
        return list(self.xattrs)

    async def removexattr(self, caller, nodeid, name):
        del self.xattrs[name]

    async def fallocate(self, caller, nodeid, fh, mode, offset, length):
        self._record("fallocate", fh, mode, offset, length)

    async def lseek(self, caller, nodeid, fh, offset, whence):
        return offset + 1

    async def copy_file_range(self, caller, nodeid_in, fh_in, offset_in, nodeid_out, fh_out,
                              offset_out, length, flags=0):  # fmt: skip
        self._record("copy_file_range", nodeid_in, fh_in, offset_in, nodeid_out, fh_out,
                     offset_out, length, flags)  # fmt: skip
        return length

    async def getlk(self, caller, nodeid, fh, owner, lock):
        return Lock(lock.start, lock.end, 2, 99)

    async def setlk(self, caller, nodeid, fh, owner, lock, wait, flock=False):
        self._record("setlk", fh, owner, lock, wait, flock)
        if wait:
            await self.block.wait()

    async def syncfs(self, caller):
        self._record("syncfs")
