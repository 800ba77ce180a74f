"""Take a FUSE session's state out of one daemon and rebuild it in another.

What the guest's kernel holds of the source daemon, and so what the destination
must answer to as the source would:

- the FUSE_INIT agreement (the guest never sends INIT again);
- every node it holds: nodeid and lookup count, found again by its path below
  the share (``Backend.path_of``; virtiofsd's ``--migration-mode find-paths``);
- every open file (re-opened with its flags, less O_CREAT/O_EXCL/O_TRUNC, which
  acted once already) and open directory (re-opened; READDIR offsets come with
  each request: the local backend's are the host file system's own, stable
  across opens; a listing the core snapshots is taken again);
- POSIX record locks and flocks with their owners, from the core's tables or,
  with ``--locks host``, from the host kernel (fdinfo) and taken again there.

What cannot be carried, and what the guest sees (``--migration-on-error``):

- a node with no path (a file removed while open, or renamed on the host so that
  its name now leads elsewhere), a path the destination cannot find, a file it
  cannot open, a lock it cannot take: with ``abort`` (the default, as virtiofsd)
  the migration fails and the guest runs on at the source; with ``guest-error``
  the item is dropped: the guest's next request on that node gets ESTALE, on that
  open file EBADF, and a dropped lock is simply no longer held.
- a SETLKW parked in a lock wait: the ring stop that precedes the save ends it
  with EINTR (hostfs.vhost.ring), so there is nothing to carry; the guest's
  fcntl(F_SETLKW) returns EINTR and a program that retries waits on the destination.

Host locks and the window: the source's OFD/flock descriptions belong to its
open files, so the destination cannot take the same lock while the source holds
it.  The source therefore drops its host locks once the state is written (the VM
is stopped: no guest request runs) and the destination takes them while loading.
In between another host process may take one: the destination then fails that
lock by ``--migration-on-error``.  If the migration fails after the save, the
source takes them back when its rings start again; one a host process took in
the meantime is lost to the guest (logged).
"""

from __future__ import annotations

import enum
import errno
import fcntl
import logging
import os
from typing import Protocol

from hostfs.core.backend import BackendObject
from hostfs.core.filesystem import FileSystem
from hostfs.core.handles import OpenDir, OpenFile
from hostfs.core.locks import OFFSET_MAX
from hostfs.core.nodes import ROOT_NODEID, Node, NodeTable
from hostfs.core.types import ROOT_CALLER, Lock, Stat
from hostfs.fuse import abi
from hostfs.fuse.init import Protocol as FuseProtocol
from hostfs.fuse.init import SessionConfig, offered_flags
from hostfs.fuse.session import Session
from hostfs.fuse.session import SessionState as FuseSessionState
from hostfs.migration.state import (
    DirState,
    FileState,
    FlockState,
    NodeState,
    PosixLockState,
    SessionState,
    State,
)

log = logging.getLogger(__name__)

_REOPEN_DROPPED = os.O_CREAT | os.O_EXCL | os.O_TRUNC
"""open(2) flags that acted at the first open; doing them again would lose data."""


class OnError(enum.Enum):
    """``--migration-on-error`` (virtiofsd 1.13's values and default)."""

    ABORT = "abort"
    GUEST_ERROR = "guest-error"


class MigrationError(Exception):
    """Migration refused: the text says which item and why."""


class SessionHolder(Protocol):
    """What the migration needs of a FUSE session (``hostfs.fuse.Dispatcher``)."""

    fs: FileSystem
    config: SessionConfig
    protocol: FuseProtocol
    session: Session


def _fail(policy: OnError, what: str) -> None:
    """Abort, or note the item dropped (the guest gets errors for it)."""
    if policy is OnError.ABORT:
        raise MigrationError(what)
    log.warning("migration: %s; dropped (--migration-on-error guest-error)", what)


# -- source ------------------------------------------------------------------


async def capture(session: SessionHolder, policy: OnError) -> State:
    """The state of ``session``'s file system, with the rings stopped."""
    fs = session.fs
    protocol = session.protocol
    initialized = session.session.state is FuseSessionState.RUNNING
    held = fs.nodes.held()
    paths = [await fs.backend.path_of(node.obj) for node in held]
    unnamed = [index for index, path in enumerate(paths) if path is None]
    if unnamed:
        searched = await fs.backend.find_paths([held[index].obj for index in unnamed])
        for index, path in zip(unnamed, searched, strict=True):
            paths[index] = path
    nodes: list[NodeState] = []
    for node, path in zip(held, paths, strict=True):
        if path is None:
            _fail(policy, f"node {node.nodeid} has no path on the share")
            continue
        nodes.append(NodeState(node.nodeid, NodeTable.GENERATION, node.nlookup, node.mode, path))
    carried = {ROOT_NODEID} | {node.nodeid for node in nodes}
    files = [
        FileState(fh, f.node.nodeid, f.flags)
        for fh, f in fs.files.items()
        if f.node.nodeid in carried
    ]
    dirs = [DirState(fh, d.node.nodeid) for fh, d in fs.dirs.items() if d.node.nodeid in carried]
    if fs.host_locks is not None:
        records, flock_list = fs.host_locks.held()
    else:
        records = list(fs.posix_locks.held())
        flock_list = list(fs.flocks.held())
    posix = [
        PosixLockState(key, owner, lock.start, lock.end, lock.type, lock.pid & 0xFFFF_FFFF)
        for key, owner, lock in records
        if key in carried
    ]
    flocks = [FlockState(key, owner, t) for key, owner, t in flock_list if key in carried]
    return State(
        SessionState(initialized, protocol.major, protocol.minor, protocol.flags),
        fs.nodes.next_nodeid,
        fs.files.next_fh,
        fs.dirs.next_fh,
        nodes,
        files,
        dirs,
        posix,
        flocks,
    )


def release_host_locks(fs: FileSystem) -> None:
    """The state is written: the destination takes the host locks next (see the module)."""
    if fs.host_locks is not None:
        fs.host_locks.release_all()


async def retake_host_locks(fs: FileSystem, saved: State) -> None:
    """The migration failed after the save and the source's rings start again: take the
    host locks back; one another process took meanwhile is lost (logged)."""
    if fs.host_locks is None:
        return
    await _restore_locks(fs, saved, OnError.GUEST_ERROR)


# -- destination ---------------------------------------------------------------


async def restore(session: SessionHolder, state: State, policy: OnError) -> None:
    """Rebuild ``state`` in ``session``, a fresh one (no INIT yet); MigrationError
    leaves it fresh again."""
    fs = session.fs
    if (
        session.session.state is FuseSessionState.RUNNING
        or len(fs.nodes) > 1
        or len(fs.files)
        or len(fs.dirs)
    ):
        raise MigrationError("the destination's session is in use")
    try:
        _restore_session(session, state.session)
        await _restore_nodes(fs, state, policy)
        await _restore_handles(fs, state, policy)
        await _restore_locks(fs, state, policy)
    except BaseException:
        session.session = Session()
        session.protocol = FuseProtocol()
        await fs.destroy()
        raise


def _restore_session(session: SessionHolder, agreed: SessionState) -> None:
    if not agreed.initialized:
        return
    fs = session.fs
    offered = abi.INIT_EXT | offered_flags(
        fs.options, session.config, supplementary_groups=fs.supplementary_groups
    )  # as negotiate() agrees them: INIT_EXT comes with any flag of flags2
    if (
        agreed.major != abi.KERNEL_VERSION
        or not abi.MIN_KERNEL_MINOR_VERSION <= agreed.minor <= abi.KERNEL_MINOR_VERSION
    ):
        raise MigrationError(f"FUSE {agreed.major}.{agreed.minor} is not spoken here")
    if agreed.flags & ~offered:
        raise MigrationError(
            f"INIT flags {agreed.flags & ~offered:#x} agreed at the source are not offered "
            "here (different options?)"
        )
    session.protocol = FuseProtocol(agreed.major, agreed.minor, agreed.flags)
    session.session.agreed()


async def _resolve(
    fs: FileSystem, path: bytes, found: dict[bytes, Node], held: set[int]
) -> tuple[BackendObject, Stat]:
    """Walk ``path`` from the deepest node already restored on it; release the objects
    passed on the way unless a node holds them (``held``: their ids)."""
    names = path.split(b"/")
    start = 0
    obj = fs.nodes.get(ROOT_NODEID).obj
    for depth in range(len(names) - 1, 0, -1):
        known = found.get(b"/".join(names[:depth]))
        if known is not None:
            obj, start = known.obj, depth
            break
    st: Stat | None = None
    for index in range(start, len(names)):
        child, st = await fs.backend.lookup(obj, names[index])
        if index > start and id(obj) not in held:
            fs.backend.forget(obj)
        obj = child
    assert st is not None
    return obj, st


async def _restore_nodes(fs: FileSystem, state: State, policy: OnError) -> None:
    found: dict[bytes, Node] = {}
    held = {id(fs.nodes.get(ROOT_NODEID).obj)}
    for node in sorted(state.nodes, key=lambda n: n.path.count(b"/")):
        if node.generation != NodeTable.GENERATION:
            _fail(policy, f"node {node.nodeid}: generation {node.generation}")
            continue
        try:
            obj, st = await _resolve(fs, node.path, found, held)
        except OSError as error:
            _fail(policy, f"node {node.nodeid} ({node.path!r}): {error.strerror}")
            continue
        mine = fs.nodes.adopt(node.nodeid, obj, st, node.nlookup)
        if (mine.mode ^ node.mode) & 0o170000:
            raise MigrationError(f"node {node.nodeid} ({node.path!r}) changed type")
        found[node.path] = mine
        held.add(id(obj))
    fs.nodes.continue_from(state.next_nodeid)


def _node(fs: FileSystem, nodeid: int) -> Node | None:
    try:
        return fs.nodes.get(nodeid)
    except OSError:
        return None  # dropped by guest-error


async def _restore_handles(fs: FileSystem, state: State, policy: OnError) -> None:
    for f in state.files:
        node = _node(fs, f.nodeid)
        if node is None:
            continue
        try:
            handle = await fs.backend.open(node.obj, f.flags & ~_REOPEN_DROPPED, ROOT_CALLER)
        except OSError as error:
            _fail(policy, f"file {f.fh} of node {f.nodeid}: {error.strerror}")
            continue
        fs.files.adopt(f.fh, OpenFile(node, handle, f.flags & ~_REOPEN_DROPPED))
    fs.files.continue_from(state.next_file_fh)
    for d in state.dirs:
        node = _node(fs, d.nodeid)
        if node is None:
            continue
        if not node.is_dir:
            raise MigrationError(f"directory handle {d.fh} on non-directory node {d.nodeid}")
        try:
            stream = await fs.backend.opendir(node.obj)
        except OSError as error:
            _fail(policy, f"directory {d.fh} of node {d.nodeid}: {error.strerror}")
            continue
        fs.dirs.adopt(d.fh, OpenDir(node, stream))
    fs.dirs.continue_from(state.next_dir_fh)


def _open_file_of(files: list[OpenFile], write: bool) -> OpenFile | None:
    """A handle of the node the lock can be taken through: a writable one for a write lock."""
    if write:
        files = sorted(files, key=lambda f: f.flags & os.O_ACCMODE == os.O_RDONLY)
    return files[0] if files else None


async def _restore_locks(fs: FileSystem, state: State, policy: OnError) -> None:
    by_node: dict[int, list[OpenFile]] = {}
    for _, open_file in fs.files.items():
        by_node.setdefault(open_file.node.nodeid, []).append(open_file)
    for lk in state.posix_locks:
        lock = Lock(lk.start, lk.end, lk.type, lk.pid)
        await _take(fs, by_node, lk.nodeid, lk.owner, lock, policy, flock=False)
    for fl in state.flocks:
        lock = Lock(0, OFFSET_MAX, fl.type)
        await _take(fs, by_node, fl.nodeid, fl.owner, lock, policy, flock=True)


async def _take(
    fs: FileSystem,
    by_node: dict[int, list[OpenFile]],
    nodeid: int,
    owner: int,
    lock: Lock,
    policy: OnError,
    *,
    flock: bool,
) -> None:
    what = f"{'flock' if flock else 'POSIX lock'} of owner {owner:#x} on node {nodeid}"
    if _node(fs, nodeid) is None:
        return
    try:
        if fs.host_locks is not None:
            open_file = _open_file_of(by_node.get(nodeid, []), lock.type == fcntl.F_WRLCK)
            if open_file is None:
                raise OSError(errno.EBADF, "no open file to hold it")
            take = fs.host_locks.flock if flock else fs.host_locks.setlk
            await take(nodeid, open_file.handle, owner, lock, False)
        else:
            table = fs.flocks if flock else fs.posix_locks
            await table.setlk(nodeid, owner, lock, False)
    except OSError as error:
        _fail(policy, f"{what}: {error.strerror}")
