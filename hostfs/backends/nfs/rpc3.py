"""Filehandle-level NFSv3 calls (LOOKUP, GETATTR, REMOVE, CREATE, MKDIR) on a context's
RPC channel.

libnfs 4.0's path API walks every component from the export root with a
LOOKUP per call (``nfs_lstat64("/a/b")`` = LOOKUP a, LOOKUP b, GETATTR), so a
node that remembers its filehandle saves all but one round trip: LOOKUP3
returns the child's handle *and* attributes (RFC 1813 §3.3.3), GETATTR3 and
REMOVE3 take a handle (§3.3.1, §3.3.12).  CREATE3 and MKDIR3 on the parent's
handle set mode and owner in the same call and return the new object's handle
and attributes (§3.3.8, §3.3.9), where ``nfs_create`` walks the path, creates,
LOOKUPs the name again and leaves the owner to a SETATTR.  These go through
libnfs's raw ``rpc_nfs3_*_async`` functions on ``nfs_get_rpc_context(nfs)``: a
:class:`Request` is waited for either by :func:`call` in a worker thread (the
way libnfs's own sync calls wait: poll the socket, ``rpc_service`` at least
every 100 ms, which also expires timed-out calls) or by the event loop
(:mod:`hostfs.backends.nfs.loop`).  The layouts are those of
``/usr/include/nfsc/libnfs-raw-nfs.h`` in libnfs 4.0.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
from collections.abc import Callable, Generator
from ctypes import POINTER, Structure, byref, c_char_p, c_int, c_uint32, c_uint64, c_void_p
from typing import Any, Generic, TypeVar

import outcome

from hostfs.backends.nfs.libnfs_c import (
    FTYPE3_TO_IFMT,
    Context,
    NfsStat64,
    TransportError,
    connection_of,
    lib,
    nfs_errno,
)
from hostfs.backends.nfs.listing import NameChange, Wcc

GUARDED = 1
"""``createmode3`` (RFC 1813 §3.3.8): fail with NFS3ERR_EXIST if the name exists."""

UNSTABLE = 0
"""``stable_how`` (RFC 1813 §3.3.7): what libnfs sends unless the file was opened O_SYNC."""

RPC_STATUS_SUCCESS, RPC_STATUS_ERROR, RPC_STATUS_CANCEL, RPC_STATUS_TIMEOUT = 0, 1, 2, 3
T = TypeVar("T")

POLL_MS = 100
"""libnfs-raw.h: call rpc_service() every 100 ms so timeouts fire."""

REPLY_POLL_NS = 50_000
"""How long the event loop waits in ``select(2)`` for a reply it expects before it sleeps
in epoll, where it cannot watch trio's epoll meanwhile (loop.py ``_poll``, idle.py).
50 us is the kernel's documented socket busy polling value (net.core.busy_read), as
the devfuse and io_uring sessions poll /dev/fuse and their ring
(hostfs.devfuse.session.POLL_NS)."""

NFS_BLKSIZE = 4096
"""What libnfs reports as st_blksize for every NFSv3 object."""


class NfsFh3(Structure):
    _fields_ = [("data_len", c_uint32), ("data_val", c_void_p)]


class Fattr3(Structure):
    _fields_ = [
        ("type", c_int), ("mode", c_uint32), ("nlink", c_uint32), ("uid", c_uint32),
        ("gid", c_uint32), ("size", c_uint64), ("used", c_uint64), ("rdev1", c_uint32),
        ("rdev2", c_uint32), ("fsid", c_uint64), ("fileid", c_uint64),
        ("atime", c_uint32), ("atime_nsec", c_uint32), ("mtime", c_uint32),
        ("mtime_nsec", c_uint32), ("ctime", c_uint32), ("ctime_nsec", c_uint32),
    ]  # fmt: skip


class PostOpAttr(Structure):
    _fields_ = [("attributes_follow", c_uint32), ("attributes", Fattr3)]


class Diropargs3(Structure):
    """``LOOKUP3args`` and ``REMOVE3args`` alike."""

    _fields_ = [("dir", NfsFh3), ("name", c_char_p)]


class Lookup3Resok(Structure):
    _fields_ = [("object", NfsFh3), ("obj_attributes", PostOpAttr)]


class Lookup3Res(Structure):
    _fields_ = [("status", c_int), ("resok", Lookup3Resok)]


class SetU32(Structure):
    """``set_mode3``, ``set_uid3``, ``set_gid3``: a discriminated optional 32-bit value."""

    _fields_ = [("set_it", c_uint32), ("value", c_uint32)]


class SetU64(Structure):
    _fields_ = [("set_it", c_uint32), ("value", c_uint64)]


class SetTime(Structure):
    """``set_atime``/``set_mtime``: ``time_how`` and an ``nfstime3``."""

    _fields_ = [("set_it", c_int), ("seconds", c_uint32), ("nseconds", c_uint32)]


class Sattr3(Structure):
    """``sattr3`` (RFC 1813 §2.6): the attributes a CREATE, MKDIR or SETATTR sets."""

    _fields_ = [
        ("mode", SetU32), ("uid", SetU32), ("gid", SetU32), ("size", SetU64),
        ("atime", SetTime), ("mtime", SetTime),
    ]  # fmt: skip


class Create3Args(Structure):
    """``CREATE3args``: ``where`` + ``createhow3`` (its union read as ``sattr3``; the
    EXCLUSIVE verifier arm is never sent)."""

    _fields_ = [("where", Diropargs3), ("how_mode", c_int), ("attributes", Sattr3)]


class Mkdir3Args(Structure):
    _fields_ = [("where", Diropargs3), ("attributes", Sattr3)]


class PostOpFh3(Structure):
    _fields_ = [("handle_follows", c_uint32), ("handle", NfsFh3)]


class Create3Res(Structure):
    """``CREATE3res`` and ``MKDIR3res`` alike: the leading fields of ``resok`` (the
    directory's ``wcc_data`` after them is never read)."""

    _fields_ = [("status", c_int), ("obj", PostOpFh3), ("obj_attributes", PostOpAttr)]


class WccAttr(Structure):
    """``wcc_attr`` (RFC 1813 §2.6): size, mtime and ctime before the change."""

    _fields_ = [("size", c_uint64), ("mtime", c_uint32 * 2), ("ctime", c_uint32 * 2)]


class PreOpAttr(Structure):
    _fields_ = [("attributes_follow", c_uint32), ("attributes", WccAttr)]


class WccData(Structure):
    _fields_ = [("before", PreOpAttr), ("after", PostOpAttr)]


class Write3Args(Structure):
    """``WRITE3args`` (RFC 1813 §3.3.7)."""

    _fields_ = [
        ("file", NfsFh3), ("offset", c_uint64), ("count", c_uint32), ("stable", c_int),
        ("data_len", c_uint32), ("data_val", c_void_p),
    ]  # fmt: skip


class Write3Res(Structure):
    """``WRITE3res``: status, then ``WRITE3resok``'s ``file_wcc`` and ``count``."""

    _fields_ = [("status", c_int), ("file_wcc", WccData), ("count", c_uint32)]


class Getattr3Res(Structure):
    _fields_ = [("status", c_int), ("attributes", Fattr3)]


class NfsFh(Structure):
    """libnfs's own ``struct nfs_fh`` (what ``nfs_get_rootfh`` points at)."""

    _fields_ = [("len", c_int), ("val", c_void_p)]


RpcCb = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_void_p)

for _name, _restype, _argtypes in (
    ("nfs_get_rpc_context", c_void_p, [c_void_p]),
    ("nfs_get_rootfh", POINTER(NfsFh), [c_void_p]),
    ("rpc_get_fd", c_int, [c_void_p]),
    ("rpc_which_events", c_int, [c_void_p]),
    ("rpc_service", c_int, [c_void_p, c_int]),
    ("nfs_set_autoreconnect", None, [c_void_p, c_int]),
    ("rpc_get_error", c_char_p, [c_void_p]),
    ("rpc_set_next_xid", None, [c_void_p, c_uint32]),
    ("nfsstat3_to_errno", c_int, [c_int]),
    ("rpc_nfs3_lookup_async", c_int, [c_void_p, RpcCb, POINTER(Diropargs3), c_void_p]),
    ("rpc_nfs3_getattr_async", c_int, [c_void_p, RpcCb, POINTER(NfsFh3), c_void_p]),
    ("rpc_nfs3_remove_async", c_int, [c_void_p, RpcCb, POINTER(Diropargs3), c_void_p]),
    ("rpc_nfs3_create_async", c_int, [c_void_p, RpcCb, POINTER(Create3Args), c_void_p]),
    ("rpc_nfs3_mkdir_async", c_int, [c_void_p, RpcCb, POINTER(Mkdir3Args), c_void_p]),
    ("rpc_nfs3_access_async", c_int, [c_void_p, RpcCb, c_void_p, c_void_p]),
    ("rpc_nfs3_write_async", c_int, [c_void_p, RpcCb, POINTER(Write3Args), c_void_p]),
):
    getattr(lib, _name).restype = _restype
    getattr(lib, _name).argtypes = _argtypes


def root_filehandle(context: Context) -> bytes:
    """The filehandle of the mounted directory (MNT's answer)."""
    filehandle = lib.nfs_get_rootfh(context.pointer).contents
    return ctypes.string_at(filehandle.val, filehandle.len)


class Request(Generic[T]):
    """One NFSv3 call on a libnfs ``rpc_context``: queued by :meth:`start`, finished
    when its callback runs (inside ``rpc_service``); the result is read there,
    since libnfs frees the decoded reply when the callback returns."""

    __slots__ = (
        "_handler", "args", "change", "connection", "done", "name", "observe", "parse",
        "read_wcc", "resent", "rpc", "seen", "send", "what",
    )  # fmt: skip

    def __init__(
        self,
        send: Callable[..., int],
        args: Structure,
        parse: Callable[[int], T],
        what: str,
        name: bytes | None = None,
    ) -> None:
        self.send, self.args, self.parse, self.what, self.name = send, args, parse, what, name
        self.done: outcome.Outcome | None = None
        self.observe: Callable[[int], list[tuple[bytes, NfsStat64]]] | None = None
        """Reads the post-op attributes a successful reply carries (:mod:`.postop`)."""
        self.seen: list[tuple[bytes, NfsStat64]] = []
        """(filehandle, attributes) pairs ``observe`` found in the reply."""
        self.change: NameChange | None = None
        """A call that adds or removes a name: its ``wcc`` a successful reply sets
        (through :attr:`read_wcc`)."""
        self.read_wcc: Callable[[int], Wcc] | None = None
        """Reads the directory's ``wcc_data`` from a successful reply."""
        self.rpc = 0
        self.connection: tuple[int, ...] | None = None
        """Where the call went out, for a call whose resending matters (:meth:`watch`)."""
        self.resent = False
        """The reply came on another connection than the call went out on: libnfs
        reconnected meanwhile and sent the call again (``rpc_reconnect_requeue``
        requeues it as encoded, same XID)."""
        self._handler = RpcCb(self._callback)

    @property
    def procedure(self) -> str:
        """The NFSv3 procedure sent (RFC 1813 §3.3), as :mod:`counts` names it."""
        return "REMOVE3" if self.what == "unlink" else f"{self.what.upper()}3"

    def watch(self) -> Request[T]:
        """Note whether the call is sent again on a new connection (:attr:`resent`):
        for the calls that are not idempotent."""
        self.connection = ()
        return self

    def again(self) -> Request[T]:
        """The same call, unsent, to send once more (under the same XID, see loop.py)."""
        request = Request(self.send, self.args, self.parse, self.what, self.name)
        request.observe, request.read_wcc = self.observe, self.read_wcc
        request.change = self.change
        request.connection = None if self.connection is None else ()
        return request

    def start(self, rpc: int) -> None:
        """Queue the call (libnfs encodes ``args`` now and writes it on POLLOUT)."""
        self.rpc = rpc
        if self.connection is not None:
            self.connection = connection_of(rpc)
        if self.send(rpc, self._handler, byref(self.args), None) != 0:
            raise TransportError(errno.EIO, f"{self.what}: {rpc_error(rpc)}")

    def result(self) -> T:
        assert self.done is not None
        return self.done.unwrap()

    def _callback(self, _rpc: int, status: int, data: int, _private: int) -> None:
        if self.connection is not None:
            self.resent = connection_of(self.rpc) != self.connection
        if status != RPC_STATUS_SUCCESS:
            code = errno.ETIMEDOUT if status == RPC_STATUS_TIMEOUT else errno.EIO
            # CANCEL comes from nfs_destroy_context: no error text to ask for then.
            why = "cancelled" if status == RPC_STATUS_CANCEL else rpc_error(self.rpc)
            self.done = outcome.Error(TransportError(code, f"{self.what}: {why}"))
        elif nfsstat := ctypes.cast(data, POINTER(c_int)).contents.value:
            code = nfs_errno(nfsstat)
            filename = os.fsdecode(self.name) if self.name is not None else None
            self.done = outcome.Error(OSError(code, os.strerror(code), filename))
        else:
            self.done = outcome.capture(self.parse, data)
            if self.observe is not None:
                self.seen = self.observe(data)
            if self.change is not None and self.read_wcc is not None:
                self.change.wcc = self.read_wcc(data)


def lookup_request(directory: bytes, name: bytes) -> Request[tuple[bytes, NfsStat64 | None]]:
    """LOOKUP3: the child's filehandle and (optional, RFC 1813 §2.6) attributes."""

    def parse(data: int) -> tuple[bytes, NfsStat64 | None]:
        ok = ctypes.cast(data, POINTER(Lookup3Res)).contents.resok
        filehandle = ctypes.string_at(ok.object.data_val, ok.object.data_len)
        follow = ok.obj_attributes.attributes_follow
        return filehandle, _stat(ok.obj_attributes.attributes) if follow else None

    args = Diropargs3(_fh3(directory), name)
    return Request(lib.rpc_nfs3_lookup_async, args, parse, "lookup", name)


def getattr_request(filehandle: bytes) -> Request[NfsStat64]:
    """GETATTR3 on a filehandle."""

    def parse(data: int) -> NfsStat64:
        return _stat(ctypes.cast(data, POINTER(Getattr3Res)).contents.attributes)

    return Request(lib.rpc_nfs3_getattr_async, _fh3(filehandle), parse, "getattr")


def remove_request(directory: bytes, name: bytes) -> Request[None]:
    """REMOVE3 of ``name`` in ``directory``."""
    args = Diropargs3(_fh3(directory), name)
    return Request(lib.rpc_nfs3_remove_async, args, lambda _data: None, "unlink", name).watch()


ACCESS3_READ, ACCESS3_MODIFY = 0x0001, 0x0004
"""``ACCESS3args.access`` bits (RFC 1813 §3.3.4) that ``nfs_open`` asks for."""


class Access3Args(Structure):
    _fields_ = [("object", NfsFh3), ("access", c_uint32)]


class Access3Res(Structure):
    _fields_ = [("status", c_int), ("obj_attributes", PostOpAttr), ("access", c_uint32)]


def access_request(filehandle: bytes, access: int) -> Request[int]:
    """ACCESS3 (RFC 1813 §3.3.4): which of the ``access`` bits the server grants."""

    def parse(data: int) -> int:
        return int(ctypes.cast(data, POINTER(Access3Res)).contents.access)

    args = Access3Args(_fh3(filehandle), access)
    return Request(lib.rpc_nfs3_access_async, args, parse, "access")


def create_request(
    directory: bytes, name: bytes, mode: int, uid: int | None, gid: int | None
) -> Request[tuple[bytes | None, NfsStat64 | None]]:
    """CREATE3 GUARDED (RFC 1813 §3.3.8) of a regular file with these permission bits and,
    unless None, owner: the new handle and attributes (both optional in the reply).

    GUARDED, not UNCHECKED: an existing file must be neither truncated nor
    given our sattr3; the caller learns of it from EEXIST.
    """
    args = Create3Args(Diropargs3(_fh3(directory), name), GUARDED, _sattr(mode, uid, gid))
    return Request(lib.rpc_nfs3_create_async, args, _parse_created, "create", name).watch()


def mkdir_request(
    directory: bytes, name: bytes, mode: int, uid: int | None, gid: int | None
) -> Request[tuple[bytes | None, NfsStat64 | None]]:
    """MKDIR3 (RFC 1813 §3.3.9), attributes as for :func:`create_request`."""
    args = Mkdir3Args(Diropargs3(_fh3(directory), name), _sattr(mode, uid, gid))
    return Request(lib.rpc_nfs3_mkdir_async, args, _parse_created, "mkdir", name).watch()


def write_request(filehandle: bytes, offset: int, address: int, count: int) -> Request[int]:
    """WRITE3 UNSTABLE (RFC 1813 §3.3.7) of ``count`` bytes at ``address``: the bytes
    the server took, or its refusal as itself (NFS3ERR_NOSPC -> ENOSPC, _DQUOT -> EDQUOT)."""

    def parse(data: int) -> int:
        return int(ctypes.cast(data, POINTER(Write3Res)).contents.count)

    args = Write3Args(_fh3(filehandle), offset, count, UNSTABLE, count, address)
    return Request(lib.rpc_nfs3_write_async, args, parse, "write")


def _sattr(mode: int, uid: int | None, gid: int | None) -> Sattr3:
    """Mode always; uid/gid only when given (the server then uses the RPC's credentials)."""
    return Sattr3(
        mode=SetU32(1, mode),
        uid=SetU32(0, 0) if uid is None else SetU32(1, uid),
        gid=SetU32(0, 0) if gid is None else SetU32(1, gid),
    )


def _parse_created(data: int) -> tuple[bytes | None, NfsStat64 | None]:
    """``post_op_fh3`` and ``post_op_attr`` of a CREATE3/MKDIR3 reply: each may be absent."""
    ok = ctypes.cast(data, POINTER(Create3Res)).contents
    filehandle = ok.obj.handle
    handle = (
        ctypes.string_at(filehandle.data_val, filehandle.data_len)
        if ok.obj.handle_follows
        else None
    )
    follow = ok.obj_attributes.attributes_follow
    return handle, _stat(ok.obj_attributes.attributes) if follow else None


def call(context: Context, request: Request[T]) -> T:
    """Run ``request`` to completion in this thread, as libnfs's own sync calls wait
    (its timeout: what is left of the context's deadline, :meth:`Context.armed`)."""
    rpc = lib.nfs_get_rpc_context(context.armed())
    if context.counter is not None:
        context.counter.add(request.procedure)
    request.start(rpc)
    poller = select.poll()
    while request.done is None:
        fd = lib.rpc_get_fd(rpc)
        poller.register(fd, lib.rpc_which_events(rpc))
        revents = dict(poller.poll(POLL_MS)).get(fd, 0)
        poller.unregister(fd)
        if lib.rpc_service(rpc, revents) < 0 and request.done is None:
            raise TransportError(errno.EIO, f"{request.what}: {rpc_error(rpc)}")
    return request.result()


Steps = Generator["Request[Any]", Any, T]
"""Calls that depend on each other's replies: each Request yielded is sent, and
its result sent back in.  Written once, driven by :func:`run` in a thread and by
the event loop (:mod:`.loop`) alike."""

ObserveOf = Callable[[bytes], Callable[[int], list[tuple[bytes, NfsStat64]]]]
"""Given the filehandle a call is about, what reads its reply's post-op attributes."""


def lookup_steps(
    directory: bytes,
    name: bytes,
    observe_lookup: ObserveOf | None = None,
    observe_getattr: ObserveOf | None = None,
) -> Steps[tuple[bytes, NfsStat64]]:
    """LOOKUP3, plus GETATTR3 if the server sent no attributes (ganesha always does)."""
    request = lookup_request(directory, name)
    request.observe = observe_lookup(directory) if observe_lookup else None
    filehandle, attributes = yield request
    if attributes is None:
        again = getattr_request(filehandle)
        again.observe = observe_getattr(filehandle) if observe_getattr else None
        attributes = yield again
    return filehandle, attributes


def run(context: Context, steps: Steps[T]) -> T:
    """Drive ``steps`` to the end with :func:`call`s in this thread."""
    try:
        request = next(steps)
        while True:
            request = steps.send(call(context, request))
    except StopIteration as finished:
        result: T = finished.value
        return result


def lookup(context: Context, directory: bytes, name: bytes) -> tuple[bytes, NfsStat64]:
    """:func:`lookup_steps` in this thread."""
    return run(context, lookup_steps(directory, name))


def getattr_(context: Context, filehandle: bytes) -> NfsStat64:
    return call(context, getattr_request(filehandle))


def _fh3(filehandle: bytes) -> NfsFh3:
    return NfsFh3(len(filehandle), ctypes.cast(c_char_p(filehandle), c_void_p))


def _stat(attributes: Fattr3) -> NfsStat64:
    """``fattr3`` -> ``struct nfs_stat_64`` as libnfs 4.0's nfs_stat64 fills it."""
    a = attributes
    return NfsStat64(
        dev=a.fsid, ino=a.fileid, mode=FTYPE3_TO_IFMT[a.type] | a.mode, nlink=a.nlink,
        uid=a.uid, gid=a.gid, rdev=os.makedev(a.rdev1, a.rdev2), size=a.size,
        blksize=NFS_BLKSIZE, blocks=(a.used + 511) // 512, atime=a.atime, mtime=a.mtime,
        ctime=a.ctime, atime_nsec=a.atime_nsec, mtime_nsec=a.mtime_nsec,
        ctime_nsec=a.ctime_nsec, used=a.used,
    )  # fmt: skip


def rpc_error(rpc: int) -> str:
    message = lib.rpc_get_error(rpc)
    return message.decode(errors="replace") if message else "RPC failed"
