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
from ctypes import POINTER, Structure, c_int, c_uint32, c_uint64

from hostfs.backends.nfs.libnfs_c import NfsStat64
from hostfs.backends.nfs.rpc3 import Access3Res, Fattr3, NfsFh3, PostOpAttr, PostOpFh3, _stat

Seen = list[tuple[bytes, NfsStat64]]
Observe = Callable[[int], Seen]


class WccAttr(Structure):
    """``wcc_attr``: size, mtime and ctime before the change."""

    _fields_ = [("size", c_uint64), ("mtime", c_uint32 * 2), ("ctime", c_uint32 * 2)]


class PreOpAttr(Structure):
    _fields_ = [("attributes_follow", c_uint32), ("attributes", WccAttr)]


class WccData(Structure):
    _fields_ = [("before", PreOpAttr), ("after", PostOpAttr)]


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


def _post_op(fh: bytes, attributes: PostOpAttr) -> Seen:
    return [(fh, _stat(attributes.attributes))] if attributes.attributes_follow else []


def after_lookup(directory: bytes) -> Observe:
    """The object's and the directory's attributes of a LOOKUP3 reply (§3.3.3)."""

    def observe(data: int) -> Seen:
        ok = ctypes.cast(data, POINTER(Lookup3Res)).contents.resok
        fh = ctypes.string_at(ok.object.data_val, ok.object.data_len)
        return _post_op(fh, ok.obj_attributes) + _post_op(directory, ok.dir_attributes)

    return observe


def after_create(directory: bytes) -> Observe:
    """The new object's and the directory's attributes of a CREATE3/MKDIR3 reply."""

    def observe(data: int) -> Seen:
        ok = ctypes.cast(data, POINTER(Create3Res)).contents
        seen = _post_op(directory, ok.dir_wcc.after)
        if ok.obj.handle_follows:
            fh = ctypes.string_at(ok.obj.handle.data_val, ok.obj.handle.data_len)
            seen += _post_op(fh, ok.obj_attributes)
        return seen

    return observe


def after_remove(directory: bytes) -> Observe:
    """The directory's attributes once REMOVE3 is done (§3.3.12)."""

    def observe(data: int) -> Seen:
        return _post_op(directory, ctypes.cast(data, POINTER(Remove3Res)).contents.dir_wcc.after)

    return observe


def after_access(fh: bytes) -> Observe:
    """The object's attributes in an ACCESS3 reply (§3.3.4)."""

    def observe(data: int) -> Seen:
        return _post_op(fh, ctypes.cast(data, POINTER(Access3Res)).contents.obj_attributes)

    return observe


def after_getattr(fh: bytes) -> Observe:
    def observe(data: int) -> Seen:
        return [(fh, _stat(ctypes.cast(data, POINTER(Getattr3Res)).contents.attributes))]

    return observe
