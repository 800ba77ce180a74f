"""The attributes NFSv3 replies carry besides their answer, for the kernel's next GETATTR.

RFC 1813 §2.6: LOOKUP3 returns the directory's ``post_op_attr`` beside the
object's; CREATE3, MKDIR3 and REMOVE3 return the directory's ``wcc_data``,
whose ``after`` is its attributes once the change is done.  The kernel asks
for exactly those right after: it invalidates a directory's attributes on
every create and unlink in it (``fuse_dir_changed``), and with
``default_permissions`` it GETATTRs the directory before the next permission
check.  Reading them here answers that GETATTR without a round trip, as the
Linux NFS client refreshes its attribute cache from post-op attributes
(``nfs_post_op_update_inode``).

Each function returns an ``observe`` for :attr:`rpc3.Request.observe`; the
layouts are those of ``/usr/include/nfsc/libnfs-raw-nfs.h`` in libnfs 4.0.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import POINTER, Structure, c_int, c_uint32

from hostfs.backends.nfs.libnfs_c import NfsStat64, lib
from hostfs.backends.nfs.listing import Verifier, Wcc
from hostfs.backends.nfs.rpc3 import (
    Access3Res,
    Fattr3,
    NfsFh3,
    PostOpAttr,
    PostOpFh3,
    Request,
    Sattr3,
    SetTime,
    SetU32,
    SetU64,
    WccData,
    _fh3,
    _stat,
)

Seen = list[tuple[bytes, NfsStat64]]
Observe = Callable[[int], Seen]


class Lookup3Resok(Structure):
    _fields_ = [
        ("object", NfsFh3), ("obj_attributes", PostOpAttr), ("dir_attributes", PostOpAttr),
    ]  # fmt: skip


class Lookup3Res(Structure):
    _fields_ = [("status", c_int), ("resok", Lookup3Resok)]


class Create3Res(Structure):
    """``CREATE3res`` and ``MKDIR3res``: the whole ``resok``."""

    _fields_ = [
        ("status", c_int), ("obj", PostOpFh3), ("obj_attributes", PostOpAttr),
        ("dir_wcc", WccData),
    ]  # fmt: skip


class Remove3Res(Structure):
    _fields_ = [("status", c_int), ("dir_wcc", WccData)]


class Getattr3Res(Structure):
    _fields_ = [("status", c_int), ("attributes", Fattr3)]


class SattrGuard3(Structure):
    """``sattrguard3``: never checked here (``check`` 0)."""

    _fields_ = [("check", c_uint32), ("seconds", c_uint32), ("nseconds", c_uint32)]


class Setattr3Args(Structure):
    _fields_ = [("object", NfsFh3), ("new_attributes", Sattr3), ("guard", SattrGuard3)]


class Setattr3Res(Structure):
    _fields_ = [("status", c_int), ("obj_wcc", WccData)]


DONT_CHANGE, SET_TO_SERVER_TIME, SET_TO_CLIENT_TIME = 0, 1, 2
"""``time_how`` (RFC 1813 §2.6)."""

lib.rpc_nfs3_setattr_async.restype = c_int
lib.rpc_nfs3_setattr_async.argtypes = [ctypes.c_void_p] * 4


def _set_time(change: int | str | None) -> SetTime:
    if change is None:
        return SetTime(DONT_CHANGE, 0, 0)
    if change == "now":
        return SetTime(SET_TO_SERVER_TIME, 0, 0)
    assert isinstance(change, int)
    return SetTime(SET_TO_CLIENT_TIME, change // 10**9, change % 10**9)


def setattr_request(
    filehandle: bytes,
    mode: int | None,
    uid: int | None,
    gid: int | None,
    size: int | None,
    atime: int | str | None,
    mtime: int | str | None,
) -> Request[NfsStat64 | None]:
    """SETATTR3 (RFC 1813 §3.3.2) of every given attribute at once (None = unchanged;
    a time is "now" for the server's clock or nanoseconds): the object's attributes
    after it, from ``obj_wcc`` (absent if the server sent none)."""

    def optional(value: int | None) -> SetU32:
        return SetU32(0, 0) if value is None else SetU32(1, value)

    attributes = Sattr3(
        mode=optional(mode), uid=optional(uid), gid=optional(gid),
        size=SetU64(0, 0) if size is None else SetU64(1, size),
        atime=_set_time(atime), mtime=_set_time(mtime),
    )  # fmt: skip

    def parse(data: int) -> NfsStat64 | None:
        after = ctypes.cast(data, POINTER(Setattr3Res)).contents.obj_wcc.after
        return _stat(after.attributes) if after.attributes_follow else None

    args = Setattr3Args(_fh3(filehandle), attributes, SattrGuard3(0, 0, 0))
    return Request(lib.rpc_nfs3_setattr_async, args, parse, "setattr")


def _post_op(filehandle: bytes, attributes: PostOpAttr) -> Seen:
    return [(filehandle, _stat(attributes.attributes))] if attributes.attributes_follow else []


def after_lookup(directory: bytes) -> Observe:
    """The object's and the directory's attributes of a LOOKUP3 reply (§3.3.3)."""

    def observe(data: int) -> Seen:
        ok = ctypes.cast(data, POINTER(Lookup3Res)).contents.resok
        filehandle = ctypes.string_at(ok.object.data_val, ok.object.data_len)
        return _post_op(filehandle, ok.obj_attributes) + _post_op(directory, ok.dir_attributes)

    return observe


def after_create(directory: bytes) -> Observe:
    """The new object's and the directory's attributes of a CREATE3/MKDIR3 reply."""

    def observe(data: int) -> Seen:
        ok = ctypes.cast(data, POINTER(Create3Res)).contents
        seen = _post_op(directory, ok.dir_wcc.after)
        if ok.obj.handle_follows:
            filehandle = ctypes.string_at(ok.obj.handle.data_val, ok.obj.handle.data_len)
            seen += _post_op(filehandle, ok.obj_attributes)
        return seen

    return observe


def after_remove(directory: bytes) -> Observe:
    """The directory's attributes once REMOVE3 is done (§3.3.12)."""

    def observe(data: int) -> Seen:
        return _post_op(directory, ctypes.cast(data, POINTER(Remove3Res)).contents.dir_wcc.after)

    return observe


def _wcc(data: WccData) -> Wcc:
    before = data.before
    verifier = None
    if before.attributes_follow:
        attrs = before.attributes
        verifier = Verifier(
            attrs.size,
            attrs.mtime[0] * 10**9 + attrs.mtime[1],
            attrs.ctime[0] * 10**9 + attrs.ctime[1],
        )
    after = data.after
    return verifier, _stat(after.attributes) if after.attributes_follow else None


def created_wcc(data: int) -> Wcc:
    """The directory's ``wcc_data`` in a CREATE3/MKDIR3 reply (for :mod:`.listing`)."""
    return _wcc(ctypes.cast(data, POINTER(Create3Res)).contents.dir_wcc)


def removed_wcc(data: int) -> Wcc:
    """The directory's ``wcc_data`` in a REMOVE3 reply (for :mod:`.listing`)."""
    return _wcc(ctypes.cast(data, POINTER(Remove3Res)).contents.dir_wcc)


def after_access(filehandle: bytes) -> Observe:
    """The object's attributes in an ACCESS3 reply (§3.3.4)."""

    def observe(data: int) -> Seen:
        return _post_op(filehandle, ctypes.cast(data, POINTER(Access3Res)).contents.obj_attributes)

    return observe


def after_getattr(filehandle: bytes) -> Observe:
    def observe(data: int) -> Seen:
        return [(filehandle, _stat(ctypes.cast(data, POINTER(Getattr3Res)).contents.attributes))]

    return observe
