"""libnfs 4.0's synchronous C API through ctypes: the only module that touches C.

Why not the ``libnfs`` package's SWIG functions: its extension module never
releases the GIL (it imports no ``PyEval_SaveThread``), so every NFS round trip
made through it would stop the trio loop and every other worker thread for the
whole round trip (and for the whole timeout when the server is gone).  ctypes
releases the GIL around each foreign call, so N contexts in N threads really
overlap.  The library is the one the package links (``libnfs.so.13``); the
prototypes are those of ``/usr/include/nfsc/libnfs.h`` in libnfs 4.0.

Every call returns 0 or ``-errno`` (libnfs maps NFS3ERR_* to errno values,
``nfsstat3_to_errno``); :meth:`Context.check` turns that into :class:`OSError`
and tells transport failures (timeouts, lost connections) apart from NFS
answers, because only the former make a context unusable.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import stat as stat_module
import time
from ctypes import POINTER, Structure, byref, c_char_p, c_int, c_uint32, c_uint64, c_void_p

from hostfs.backends.nfs.counts import CallCounter
from hostfs.core.modes import dirent_type

logger = logging.getLogger(__name__)

SONAME = "libnfs.so.13"
"""libnfs 4.0 (Debian 12 ``libnfs13``); the layouts below are that version's."""


class NfsStat64(Structure):
    """``struct nfs_stat_64``."""

    _fields_ = [
        (name, c_uint64)
        for name in (
            "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
            "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec", "used",
        )
    ]  # fmt: skip


class NfsStatvfs64(Structure):
    """``struct nfs_statvfs_64``."""

    _fields_ = [
        (name, c_uint64)
        for name in (
            "bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail",
            "fsid", "flag", "namemax",
        )
    ]  # fmt: skip


class NfsUrl(Structure):
    """``struct nfs_url``."""

    _fields_ = [("server", c_char_p), ("path", c_char_p), ("file", c_char_p)]


class NfsDirent(Structure):
    """The leading fields of ``struct nfsdirent`` (the rest are never read)."""


NfsDirent._fields_ = [
    ("next", POINTER(NfsDirent)),
    ("name", c_char_p),
    ("inode", c_uint64),
    ("type", c_uint32),
    ("mode", c_uint32),
]


class Nfsfh(Structure):
    """libnfs 4.0's ``struct nfsfh``, an open file, from ``include/libnfs-private.h``
    (not installed: the layout is that of the 4.0.0 source, 120 bytes on LP64).

    libnfs 4.0 has no call that opens a file by filehandle, and ``nfs_open``
    walks the path and sends ACCESS; a handle built here from a CREATE3 reply
    is what ``nfs_create`` itself builds from its extra LOOKUP3 (filehandle copied,
    sync/append flags, no page cache unless the URL asked for one).
    """

    _fields_ = [
        ("fh_len", c_int), ("fh_val", c_void_p), ("is_sync", c_int), ("is_append", c_int),
        ("is_dirty", c_int), ("offset", c_uint64), ("ra_fh_offset", c_uint64),
        ("ra_cur_ra", c_uint32), ("pagecache_entries", c_void_p),
        ("pagecache_num_entries", c_uint32), ("pagecache_ttl", ctypes.c_long),
        ("stateid", c_uint32 * 4), ("lock_seqid", c_uint32), ("lock_stateid", c_uint32 * 4),
    ]  # fmt: skip


class Timeval(Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


def _load() -> ctypes.CDLL:
    lib = ctypes.CDLL(SONAME, use_errno=False)
    ctx, nfsfh, path = c_void_p, c_void_p, c_char_p
    prototypes: dict[str, tuple[type | None, list[type]]] = {
        "nfs_init_context": (c_void_p, []),
        "nfs_destroy_context": (None, [ctx]),
        "nfs_parse_url_dir": (POINTER(NfsUrl), [ctx, c_char_p]),
        "nfs_destroy_url": (None, [POINTER(NfsUrl)]),
        "nfs_mount": (c_int, [ctx, c_char_p, c_char_p]),
        "nfs_get_error": (c_char_p, [ctx]),
        "nfs_set_timeout": (None, [ctx, c_int]),
        "nfs_set_dircache": (None, [ctx, c_int]),
        "nfs_get_readmax": (c_uint64, [ctx]),
        "nfs_get_writemax": (c_uint64, [ctx]),
        "nfs_lstat64": (c_int, [ctx, path, POINTER(NfsStat64)]),
        "nfs_fstat64": (c_int, [ctx, nfsfh, POINTER(NfsStat64)]),
        "nfs_statvfs64": (c_int, [ctx, path, POINTER(NfsStatvfs64)]),
        "nfs_open": (c_int, [ctx, path, c_int, POINTER(c_void_p)]),
        "nfs_create": (c_int, [ctx, path, c_int, c_int, POINTER(c_void_p)]),
        "nfs_close": (c_int, [ctx, nfsfh]),
        "nfs_pread": (c_int, [ctx, nfsfh, c_uint64, c_uint64, c_void_p]),
        "nfs_pwrite": (c_int, [ctx, nfsfh, c_uint64, c_uint64, c_void_p]),
        "nfs_fsync": (c_int, [ctx, nfsfh]),
        "nfs_ftruncate": (c_int, [ctx, nfsfh, c_uint64]),
        "nfs_truncate": (c_int, [ctx, path, c_uint64]),
        "nfs_mkdir2": (c_int, [ctx, path, c_int]),
        "nfs_rmdir": (c_int, [ctx, path]),
        "nfs_unlink": (c_int, [ctx, path]),
        "nfs_mknod": (c_int, [ctx, path, c_int, c_int]),
        "nfs_symlink": (c_int, [ctx, path, path]),
        "nfs_readlink2": (c_int, [ctx, path, POINTER(c_void_p)]),
        "nfs_rename": (c_int, [ctx, path, path]),
        "nfs_link": (c_int, [ctx, path, path]),
        "nfs_lchmod": (c_int, [ctx, path, c_int]),
        "nfs_fchmod": (c_int, [ctx, nfsfh, c_int]),
        "nfs_lchown": (c_int, [ctx, path, c_int, c_int]),
        "nfs_fchown": (c_int, [ctx, nfsfh, c_int, c_int]),
        "nfs_lutimes": (c_int, [ctx, path, POINTER(Timeval)]),
        "nfs_opendir": (c_int, [ctx, path, POINTER(c_void_p)]),
        "nfs_readdir": (POINTER(NfsDirent), [ctx, c_void_p]),
        "nfs_closedir": (None, [ctx, c_void_p]),
        "nfsstat3_to_errno": (c_int, [c_int]),
        "nfs_get_rpc_context": (c_void_p, [ctx]),
        "rpc_get_fd": (c_int, [c_void_p]),
    }
    for name, (restype, argtypes) in prototypes.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


lib = _load()
_libc = ctypes.CDLL(None)
_libc_free = _libc.free
_libc_free.argtypes = [c_void_p]
_libc_calloc = _libc.calloc
_libc_calloc.restype = c_void_p
_libc_calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]

TRANSPORT_ERRNOS = frozenset({errno.EINTR, errno.EFAULT})
"""What libnfs 4.0 reports for RPC_STATUS_TIMEOUT / _CANCEL (-EINTR) and
RPC_STATUS_ERROR (-EFAULT) in ``check_nfs3_error``: never an NFS answer."""


NFS3ERR_DQUOT = 69
"""RFC 1813 §2.6: quota exceeded; libnfs 4.0 maps it to ERANGE, Linux's NFS client to EDQUOT."""


def nfs_errno(nfsstat: int) -> int:
    """The errno an ``nfsstat3`` stands for, as the Linux NFS client answers it
    (``nfs_stat_to_errno``): libnfs's mapping but EDQUOT for NFS3ERR_DQUOT."""
    if nfsstat == NFS3ERR_DQUOT:
        return errno.EDQUOT
    return abs(lib.nfsstat3_to_errno(nfsstat)) or errno.EIO


class TransportError(OSError):
    """The RPC did not complete (timeout, connection lost): the context is unusable."""


class IoFailed(TransportError):
    """A READ or WRITE failed and libnfs 4.0 does not say why: ``nfs_pread``/``nfs_pwrite``
    report an NFS error (a removed file's ESTALE) and a lost connection alike as
    -EFAULT, with a garbled message.  The caller asks the server to tell them apart;
    left alone it counts as a transport failure."""


class WriteFailed(IoFailed):
    """An ``nfs_pwrite`` that failed: where, so the caller can send that WRITE itself
    and read the server's answer (:mod:`rpc3`), which libnfs 4.0 garbles."""

    def __init__(self, message: str, done: int, offset: int, address: int, count: int) -> None:
        super().__init__(errno.EIO, message)
        self.done = done
        """Bytes of this pwrite written before the failed piece."""
        self.offset, self.address, self.count = offset, address, count
        self.keep: object = None
        """What keeps ``address`` valid (a copy of a read-only buffer)."""


FTYPE3_TO_IFMT = (
    0, stat_module.S_IFREG, stat_module.S_IFDIR, stat_module.S_IFBLK, stat_module.S_IFCHR,
    stat_module.S_IFLNK, stat_module.S_IFSOCK, stat_module.S_IFIFO,
)  # fmt: skip
"""``ftype3`` (RFC 1813 §2.6: NF3REG=1 .. NF3FIFO=7) -> ``S_IF*``."""


def _dirent_type(nf3type: int) -> int:
    """``ftype3`` -> ``DT_*`` (DT_UNKNOWN for a type RFC 1813 does not name)."""
    return dirent_type(FTYPE3_TO_IFMT[nf3type]) if 0 < nf3type < 8 else 0


class Context:
    """One mounted ``struct nfs_context``: use it from one thread at a time."""

    def __init__(self, url: bytes, timeout_ms: int) -> None:
        self.counter: CallCounter | None = None
        """Where this context's calls are counted (set by its owner after mounting)."""
        self.pointer = lib.nfs_init_context()
        if not self.pointer:
            raise OSError(errno.ENOMEM, "nfs_init_context failed")
        self.timeout_ms = timeout_ms
        self.deadline: float | None = None
        """``time.monotonic()`` by which the current request must be done (see
        :meth:`armed`); None: each RPC gets ``timeout_ms``."""
        lib.nfs_set_timeout(self.pointer, timeout_ms)
        lib.nfs_set_dircache(self.pointer, 0)
        parsed = lib.nfs_parse_url_dir(self.pointer, url)
        try:
            if not parsed:
                raise OSError(errno.EINVAL, self.error())
            path = parsed.contents.path
            self.check(lib.nfs_mount(self.pointer, parsed.contents.server, path), "mount", path)
        except OSError:
            self.destroy()
            raise
        finally:
            if parsed:
                lib.nfs_destroy_url(parsed)
        self.readmax = int(lib.nfs_get_readmax(self.pointer))
        self.writemax = int(lib.nfs_get_writemax(self.pointer))

    def armed(self) -> int:
        """The context, its RPC timeout set to what is left until :attr:`deadline`.

        libnfs gives each PDU the context's timeout when it is queued
        (``rpc_queue_pdu``), so arming before each call holds a request that makes
        several of them to its one deadline.  ETIMEDOUT, with nothing sent, if
        the deadline has passed.
        """
        if self.deadline is None:
            timeout = self.timeout_ms
        else:
            timeout = int((self.deadline - time.monotonic()) * 1000)
            if timeout <= 0:
                raise OSError(errno.ETIMEDOUT, "the NFS request ran out of time")
        lib.nfs_set_timeout(self.pointer, timeout)
        return self.pointer

    def connection(self) -> tuple[int, ...]:
        """Which connection the context is on now (see :func:`connection_of`)."""
        return connection_of(lib.nfs_get_rpc_context(self.pointer))

    def destroy(self) -> None:
        if self.pointer:
            lib.nfs_destroy_context(self.pointer)
            self.pointer = None

    def error(self) -> str:
        message = lib.nfs_get_error(self.pointer)
        return message.decode(errors="replace") if message else "unknown libnfs error"

    def check(self, status: int, what: str, path: bytes | None = None) -> int:
        """``status`` when >= 0, else the matching OSError (TransportError for RPC failures)."""
        if self.counter is not None:
            self.counter.add(f"nfs_{what}")
        if status >= 0:
            return status
        code = -status
        message = self.error()
        filename = os.fsdecode(path) if path is not None else None
        nfs_answer = "NFS3ERR" in message or "NFS3" in message
        if code in TRANSPORT_ERRNOS or (code == errno.EIO and not nfs_answer):
            code = errno.ETIMEDOUT if "timed out" in message else errno.EIO
            raise TransportError(code, f"{what}: {message}", filename)
        if code == errno.ERANGE and "NFS3ERR_DQUOT" in message:
            code = errno.EDQUOT
        raise OSError(code, os.strerror(code), filename)

    # -- calls: thin, one per libnfs function -------------------------------

    def lstat(self, path: bytes) -> NfsStat64:
        st = NfsStat64()
        self.check(lib.nfs_lstat64(self.armed(), path, byref(st)), "lstat", path)
        return st

    def fstat(self, nfsfh: int) -> NfsStat64:
        st = NfsStat64()
        self.check(lib.nfs_fstat64(self.armed(), nfsfh, byref(st)), "fstat")
        return st

    def statvfs(self, path: bytes) -> NfsStatvfs64:
        st = NfsStatvfs64()
        self.check(lib.nfs_statvfs64(self.armed(), path, byref(st)), "statvfs", path)
        return st

    def open(self, path: bytes, flags: int) -> int:
        nfsfh = c_void_p()
        self.check(lib.nfs_open(self.armed(), path, flags, byref(nfsfh)), "open", path)
        return nfsfh.value or 0

    def create(self, path: bytes, flags: int, mode: int) -> int:
        nfsfh = c_void_p()
        self.check(lib.nfs_create(self.armed(), path, flags, mode, byref(nfsfh)), "create", path)
        return nfsfh.value or 0

    def close(self, nfsfh: int) -> None:
        self.check(lib.nfs_close(self.pointer, nfsfh), "close")

    def pread(self, nfsfh: int, offset: int, buffer: memoryview) -> int:
        """Fill ``buffer`` from ``offset`` in readmax-sized READs; short only at EOF."""
        total = 0
        size = buffer.nbytes
        address, _keep = _address(buffer)
        while total < size:
            count = min(size - total, self.readmax)
            status = lib.nfs_pread(self.armed(), nfsfh, offset + total, count, address + total)
            if status == -errno.EFAULT:
                raise IoFailed(errno.EIO, f"read failed: {self.error()}")
            got = self.check(status, "read")
            total += got
            if got < count:
                break
        return total

    def pwrite(self, nfsfh: int, offset: int, buffer: memoryview) -> int:
        total = 0
        size = buffer.nbytes
        address, _keep = _address(buffer)
        while total < size:
            count = min(size - total, self.writemax)
            status = lib.nfs_pwrite(self.armed(), nfsfh, offset + total, count, address + total)
            if status == -errno.EFAULT:
                failed = WriteFailed(
                    f"write failed: {self.error()}", total, offset + total, address + total, count
                )
                failed.keep = _keep
                raise failed
            put = self.check(status, "write")
            if put == 0:
                raise OSError(errno.EIO, "server accepted no bytes")
            total += put
        return total

    def fsync(self, nfsfh: int) -> None:
        self.check(lib.nfs_fsync(self.armed(), nfsfh), "fsync")

    def ftruncate(self, nfsfh: int, length: int) -> None:
        self.check(lib.nfs_ftruncate(self.armed(), nfsfh, length), "ftruncate")

    def truncate(self, path: bytes, length: int) -> None:
        self.check(lib.nfs_truncate(self.armed(), path, length), "truncate", path)

    def mkdir(self, path: bytes, mode: int) -> None:
        self.check(lib.nfs_mkdir2(self.armed(), path, mode), "mkdir", path)

    def rmdir(self, path: bytes) -> None:
        self.check(lib.nfs_rmdir(self.armed(), path), "rmdir", path)

    def unlink(self, path: bytes) -> None:
        self.check(lib.nfs_unlink(self.armed(), path), "unlink", path)

    def mknod(self, path: bytes, mode: int, rdev: int) -> None:
        self.check(lib.nfs_mknod(self.armed(), path, mode, rdev), "mknod", path)

    def symlink(self, target: bytes, path: bytes) -> None:
        self.check(lib.nfs_symlink(self.armed(), target, path), "symlink", path)

    def readlink(self, path: bytes) -> bytes:
        buffer = c_void_p()
        self.check(lib.nfs_readlink2(self.armed(), path, byref(buffer)), "readlink", path)
        try:
            return ctypes.string_at(buffer.value) if buffer.value else b""
        finally:
            _libc_free(buffer)

    def rename(self, old: bytes, new: bytes) -> None:
        self.check(lib.nfs_rename(self.armed(), old, new), "rename", old)

    def link(self, old: bytes, new: bytes) -> None:
        self.check(lib.nfs_link(self.armed(), old, new), "link", new)

    def chmod(self, path: bytes, mode: int) -> None:
        self.check(lib.nfs_lchmod(self.armed(), path, mode), "chmod", path)

    def fchmod(self, nfsfh: int, mode: int) -> None:
        self.check(lib.nfs_fchmod(self.armed(), nfsfh, mode), "fchmod")

    def chown(self, path: bytes, uid: int, gid: int) -> None:
        self.check(lib.nfs_lchown(self.armed(), path, uid, gid), "chown", path)

    def fchown(self, nfsfh: int, uid: int, gid: int) -> None:
        self.check(lib.nfs_fchown(self.armed(), nfsfh, uid, gid), "fchown")

    def utimes(self, path: bytes, times: tuple[int, int] | None) -> None:
        """``(atime_ns, mtime_ns)``, or None for the server's clock (SET_TO_SERVER_TIME).

        libnfs 4.0 has no utimensat: its SETATTR carries microseconds.
        """
        if times is None:
            pointer = None
        else:
            pair = (Timeval * 2)(*(Timeval(ns // 10**9, ns % 10**9 // 1000) for ns in times))
            pointer = ctypes.cast(pair, POINTER(Timeval))
        self.check(lib.nfs_lutimes(self.armed(), path, pointer), "utimes", path)

    def listdir(self, path: bytes) -> list[tuple[bytes, int, int]]:
        """``(name, fileid, DT_*)`` for every entry but ``.`` and ``..`` (one READDIRPLUS walk)."""
        directory = c_void_p()
        self.check(lib.nfs_opendir(self.armed(), path, byref(directory)), "opendir", path)
        entries = []
        try:
            while True:
                entry = lib.nfs_readdir(self.pointer, directory)
                if not entry:
                    break
                name = entry.contents.name
                if name not in (b".", b".."):
                    entries.append((name, entry.contents.inode, _dirent_type(entry.contents.type)))
        finally:
            lib.nfs_closedir(self.pointer, directory)
        return entries


def connection_of(rpc: int) -> tuple[int, ...]:
    """The fd and local address of an ``rpc_context``'s socket.

    When libnfs reconnects it sends the calls in flight again (same XIDs,
    ``rpc_reconnect_requeue``), and it dup2()s the new socket onto the old fd
    number, so the fd alone does not tell; the new socket's local port does
    (libnfs binds the next reserved port, or the kernel picks an ephemeral one).
    A change across a call means it was sent again.
    """
    fd = lib.rpc_get_fd(rpc)
    if fd < 0:
        return (fd,)
    sock = socket.socket(fileno=fd)
    try:
        return (fd, *sock.getsockname())
    except OSError:
        return (fd,)
    finally:
        sock.detach()


def open_handle(filehandle: bytes, flags: int) -> int:
    """A ``struct nfsfh *`` for a filehandle already known, made without an RPC.

    Allocated with libc, as libnfs allocates its own, so ``nfs_close`` or
    :func:`free_handle` frees it.
    """
    pointer = _libc_calloc(1, ctypes.sizeof(Nfsfh))
    value = _libc_calloc(1, len(filehandle))
    if not pointer or not value:
        _libc_free(pointer)
        _libc_free(value)
        raise MemoryError("cannot allocate an NFS file handle")
    ctypes.memmove(value, filehandle, len(filehandle))
    handle = Nfsfh.from_address(pointer)
    handle.fh_len, handle.fh_val = len(filehandle), value
    # As nfs_create/nfs_open set them: C's O_SYNC test matches O_DSYNC too.
    handle.is_sync = int(bool(flags & os.O_SYNC))
    handle.is_append = int(bool(flags & os.O_APPEND))
    return pointer


def filehandle_of(pointer: int) -> bytes:
    """The NFS filehandle inside an open ``struct nfsfh``."""
    handle = Nfsfh.from_address(pointer)
    return ctypes.string_at(handle.fh_val, handle.fh_len)


def free_handle(pointer: int) -> None:
    """What ``nfs_close`` does for a handle with nothing to COMMIT, without a context
    (so without a thread hop): free the filehandle copy, the page cache, the struct."""
    handle = Nfsfh.from_address(pointer)
    _libc_free(handle.fh_val)
    _libc_free(handle.pagecache_entries)
    _libc_free(pointer)


def _address(buffer: memoryview) -> tuple[int, object]:
    """The address of a contiguous buffer and the object that keeps it alive.

    Writable buffers (guest memory, bytearrays) are used in place; a read-only
    one (pyfuse3 hands writes over as bytes) is copied once, since ctypes only
    maps writable buffers (``tobytes`` and then a string buffer would copy twice).
    """
    if buffer.nbytes == 0:
        return 0, None
    if buffer.readonly:
        copy = (ctypes.c_char * buffer.nbytes).from_buffer_copy(buffer)
        return ctypes.addressof(copy), copy
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer)), buffer
