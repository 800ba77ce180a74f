"""The migration stream: what a guest's FUSE session depends on, as bytes. No I/O.

The stream comes from another host and is decoded as untrusted input: every
length and count is checked against what is left before anything is read or
allocated, every field is validated, and anything wrong is a
:class:`StateError` (a refused migration), never another exception.

Format, version 1 (all integers little endian)::

    header   "HOSTFSMS"  u32 version (1)  u32 flags (0)
    session  u8 initialized  u32 major  u32 minor  u64 init flags   (the FUSE_INIT agreement)
    counters u64 next_nodeid  u64 next_file_fh  u64 next_dir_fh
    nodes    u32 n, then n x { u64 nodeid  u64 generation  u64 nlookup  u32 mode
                                u16 len  path[len] }
    files    u32 n, then n x { u64 fh  u64 nodeid  u32 open flags }
    dirs     u32 n, then n x { u64 fh  u64 nodeid }
    posix    u32 n, then n x { u64 nodeid  u64 owner  u64 start  u64 end  u32 type  u32 pid }
    flocks   u32 n, then n x { u64 nodeid  u64 owner  u32 type }

and nothing after.  A node is found again by its ``path`` relative to the shared
directory or export (virtiofsd's ``--migration-mode find-paths``): components
separated by ``/``, none empty, ``.`` or ``..``.  The root (nodeid 1) is not
listed: it is the share itself.  Files, directories and locks name only the root
or a listed node.  A reader of version 1 refuses any other version.
"""

from __future__ import annotations

import fcntl
import struct
from dataclasses import dataclass, field

MAGIC = b"HOSTFSMS"
VERSION = 1

MAX_STATE_SIZE = 64 << 20
"""The longest stream accepted: 64 MiB holds ~300,000 nodes with 200-byte paths, more
than a guest's dentry cache keeps; the bound is what a hostile source can make the
destination allocate."""

PATH_MAX = 4096
"""``PATH_MAX`` (limits.h): the longest relative path carried."""
NAME_MAX = 255
"""``NAME_MAX``: the longest component."""

OFFSET_MAX = 0x7FFF_FFFF_FFFF_FFFF
"""The kernel's ``OFFSET_MAX``, the end of a lock that runs to end of file."""

ROOT_NODEID = 1
LOCK_TYPES = (fcntl.F_RDLCK, fcntl.F_WRLCK)

_HEADER = struct.Struct("<8sII")
_SESSION = struct.Struct("<BIIQ")
_COUNTERS = struct.Struct("<QQQ")
_COUNT = struct.Struct("<I")
_NODE = struct.Struct("<QQQIH")
_FILE = struct.Struct("<QQI")
_DIR = struct.Struct("<QQ")
_POSIX = struct.Struct("<QQQQII")
_FLOCK = struct.Struct("<QQI")


class StateError(Exception):
    """A stream that is not a valid version-1 state; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class SessionState:
    """The FUSE_INIT agreement: the destination never sees INIT, the guest did it once."""

    initialized: bool
    major: int = 0
    minor: int = 0
    flags: int = 0


@dataclass(frozen=True, slots=True)
class NodeState:
    nodeid: int
    generation: int
    nlookup: int
    mode: int
    path: bytes


@dataclass(frozen=True, slots=True)
class FileState:
    fh: int
    nodeid: int
    flags: int


@dataclass(frozen=True, slots=True)
class DirState:
    """An open directory; the READDIR offset comes with each request, so none is kept."""

    fh: int
    nodeid: int


@dataclass(frozen=True, slots=True)
class PosixLockState:
    nodeid: int
    owner: int
    start: int
    end: int
    type: int
    pid: int


@dataclass(frozen=True, slots=True)
class FlockState:
    nodeid: int
    owner: int
    type: int


@dataclass(frozen=True, slots=True)
class State:
    session: SessionState
    next_nodeid: int
    next_file_fh: int
    next_dir_fh: int
    nodes: list[NodeState] = field(default_factory=list)
    files: list[FileState] = field(default_factory=list)
    dirs: list[DirState] = field(default_factory=list)
    posix_locks: list[PosixLockState] = field(default_factory=list)
    flocks: list[FlockState] = field(default_factory=list)


def check_path(path: bytes) -> None:
    """A path relative to the share that cannot leave it: StateError otherwise."""
    if not path or len(path) > PATH_MAX:
        raise StateError(f"path of {len(path)} bytes")
    for name in path.split(b"/"):
        if not name or name in (b".", b"..") or b"\0" in name or len(name) > NAME_MAX:
            raise StateError(f"path {path[:64]!r} has a bad component")


def encode(state: State) -> bytes:
    """The stream for ``state``; StateError for a state the format cannot carry."""
    parts = [_HEADER.pack(MAGIC, VERSION, 0)]
    session = state.session
    parts.append(_SESSION.pack(session.initialized, session.major, session.minor, session.flags))
    parts.append(_COUNTERS.pack(state.next_nodeid, state.next_file_fh, state.next_dir_fh))
    parts.append(_COUNT.pack(len(state.nodes)))
    for node in state.nodes:
        check_path(node.path)
        parts.append(
            _NODE.pack(node.nodeid, node.generation, node.nlookup, node.mode, len(node.path))
        )
        parts.append(node.path)
    parts.append(_COUNT.pack(len(state.files)))
    parts.extend(_FILE.pack(f.fh, f.nodeid, f.flags) for f in state.files)
    parts.append(_COUNT.pack(len(state.dirs)))
    parts.extend(_DIR.pack(d.fh, d.nodeid) for d in state.dirs)
    parts.append(_COUNT.pack(len(state.posix_locks)))
    parts.extend(
        _POSIX.pack(lk.nodeid, lk.owner, lk.start, lk.end, lk.type, lk.pid)
        for lk in state.posix_locks
    )
    parts.append(_COUNT.pack(len(state.flocks)))
    parts.extend(_FLOCK.pack(lk.nodeid, lk.owner, lk.type) for lk in state.flocks)
    data = b"".join(parts)
    if len(data) > MAX_STATE_SIZE:
        raise StateError(f"state of {len(data)} bytes exceeds {MAX_STATE_SIZE}")
    decode(data)  # what we send must be what a destination accepts
    return data


class _Reader:
    """Bounds-checked reads from the stream."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def take(self, layout: struct.Struct, what: str) -> tuple[int, ...]:
        if len(self.data) - self.offset < layout.size:
            raise StateError(f"stream ends inside {what}")
        values = layout.unpack_from(self.data, self.offset)
        self.offset += layout.size
        return values

    def bytes(self, length: int, what: str) -> bytes:
        if len(self.data) - self.offset < length:
            raise StateError(f"stream ends inside {what}")
        value = bytes(self.data[self.offset : self.offset + length])
        self.offset += length
        return value

    def count(self, record: struct.Struct, what: str) -> int:
        """A record count, refused when the rest of the stream cannot hold that many."""
        (count,) = self.take(_COUNT, what)
        if count * record.size > len(self.data) - self.offset:
            raise StateError(
                f"{count} {what} do not fit in the {len(self.data) - self.offset} bytes left"
            )
        return count


def decode(data: bytes) -> State:
    """The state in ``data``, validated; StateError for anything else."""
    if len(data) > MAX_STATE_SIZE:
        raise StateError(f"state of {len(data)} bytes exceeds {MAX_STATE_SIZE}")
    reader = _Reader(data)
    magic, version, flags = reader.take(_HEADER, "header")
    if magic != MAGIC:
        raise StateError("not a hostfs migration stream")
    if version != VERSION:
        raise StateError(f"state version {version} (this hostfs reads {VERSION})")
    if flags:
        raise StateError(f"unknown header flags {flags:#x}")
    initialized, major, minor, init_flags = reader.take(_SESSION, "session")
    if initialized not in (0, 1):
        raise StateError(f"initialized = {initialized}")
    session = SessionState(bool(initialized), major, minor, init_flags)
    next_nodeid, next_file_fh, next_dir_fh = reader.take(_COUNTERS, "counters")
    if next_nodeid <= ROOT_NODEID or not next_file_fh or not next_dir_fh:
        raise StateError("counters start below their first values")

    nodes: list[NodeState] = []
    known = {ROOT_NODEID}
    for _ in range(reader.count(_NODE, "nodes")):
        nodeid, generation, nlookup, mode, length = reader.take(_NODE, "node")
        path = reader.bytes(length, "node path")
        if not ROOT_NODEID < nodeid < next_nodeid or nodeid in known:
            raise StateError(f"node {nodeid} repeated or outside 2..{next_nodeid - 1}")
        if not 0 < nlookup <= OFFSET_MAX:
            raise StateError(f"node {nodeid}: lookup count {nlookup}")
        check_path(path)
        known.add(nodeid)
        nodes.append(NodeState(nodeid, generation, nlookup, mode, path))

    def node_of(nodeid: int, what: str) -> int:
        if nodeid not in known:
            raise StateError(f"{what} on unknown node {nodeid}")
        return nodeid

    def handles(layout: struct.Struct, what: str, limit: int) -> list[tuple[int, ...]]:
        seen: set[int] = set()
        records = []
        for _ in range(reader.count(layout, what)):
            record = reader.take(layout, what)
            fh = record[0]
            if not 0 < fh < limit or fh in seen:
                raise StateError(f"{what} handle {fh} repeated or outside 1..{limit - 1}")
            seen.add(fh)
            node_of(record[1], what)
            records.append(record)
        return records

    files = [FileState(*r) for r in handles(_FILE, "files", next_file_fh)]
    dirs = [DirState(*r) for r in handles(_DIR, "directories", next_dir_fh)]
    posix = []
    for _ in range(reader.count(_POSIX, "POSIX locks")):
        nodeid, owner, start, end, lock_type, pid = reader.take(_POSIX, "POSIX lock")
        node_of(nodeid, "POSIX lock")
        if lock_type not in LOCK_TYPES or not start <= end <= OFFSET_MAX:
            raise StateError(f"POSIX lock type {lock_type} on [{start}, {end}]")
        posix.append(PosixLockState(nodeid, owner, start, end, lock_type, pid))
    flocks = []
    for _ in range(reader.count(_FLOCK, "flocks")):
        nodeid, owner, lock_type = reader.take(_FLOCK, "flock")
        node_of(nodeid, "flock")
        if lock_type not in LOCK_TYPES:
            raise StateError(f"flock type {lock_type}")
        flocks.append(FlockState(nodeid, owner, lock_type))
    if reader.offset != len(data):
        raise StateError(f"{len(data) - reader.offset} bytes after the state")
    return State(session, next_nodeid, next_file_fh, next_dir_fh, nodes, files, dirs, posix, flocks)
