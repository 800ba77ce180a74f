"""A non-idempotent call whose reply was lost with its connection is sent again under
the same XID, and its outcome is what the first one did: no spurious EEXIST/ENOENT."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hostfs.backends.nfs import NfsBackend, open_nfs_backend
from hostfs.core.types import Caller
from tests.support.nfs_server import GaneshaServer
from tests.support.rpc_proxy import NFSPROC3, RpcProxy

ME = Caller(os.getuid(), os.getgid(), os.getpid())


@pytest.fixture
def proxy(nfs_server: GaneshaServer) -> Iterator[RpcProxy]:
    relay = RpcProxy(nfs_server.nfs_port)
    yield relay
    relay.close()


@pytest.fixture
async def proxied(nfs_url: str, proxy: RpcProxy) -> AsyncIterator[NfsBackend]:
    """A backend whose NFS connections go through ``proxy`` (MOUNT goes straight)."""
    url = nfs_url.replace(f"nfsport={proxy.target_port}", f"nfsport={proxy.port}")
    nfs = await open_nfs_backend(url + "&timeout=5")
    yield nfs
    await nfs.close()


def sent_again(proxy: RpcProxy, procedure: str) -> None:
    """The lost call reached the server, and went again, same XID, on a new connection."""
    (lost,) = proxy.lost
    assert lost.procedure == NFSPROC3[procedure]
    again = [c for c in proxy.calls if c.xid == lost.xid and c.procedure == lost.procedure]
    assert len(again) == 2 and again[1].connection != lost.connection, proxy.calls


async def test_create_whose_reply_was_lost(
    proxied: NfsBackend, proxy: RpcProxy, nfs_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "hostfs.backends.nfs")
    root, _ = await proxied.root()
    proxy.lose_reply("CREATE")
    _, attr, handle = await proxied.create(root, b"new", os.O_RDWR | os.O_EXCL, 0o640, ME)
    sent_again(proxy, "CREATE")
    assert stat.S_ISREG(attr.mode) and attr.mode & 0o777 == 0o640
    assert await proxied.write(handle, 0, [memoryview(bytearray(b"data"))]) == 4
    await proxied.release(handle)
    assert (nfs_dir / "new").read_bytes() == b"data"


async def test_mkdir_whose_reply_was_lost(
    proxied: NfsBackend, proxy: RpcProxy, nfs_dir: Path
) -> None:
    root, _ = await proxied.root()
    proxy.lose_reply("MKDIR")
    _, attr = await proxied.mkdir(root, b"dir", 0o750, ME)
    sent_again(proxy, "MKDIR")
    assert stat.S_ISDIR(attr.mode) and (nfs_dir / "dir").is_dir()


async def test_remove_whose_reply_was_lost(
    proxied: NfsBackend, proxy: RpcProxy, nfs_dir: Path
) -> None:
    root, _ = await proxied.root()
    _, _, handle = await proxied.create(root, b"doomed", os.O_RDWR, 0o644, ME)
    await proxied.release(handle)
    proxy.lose_reply("REMOVE")
    await proxied.unlink(root, b"doomed")
    sent_again(proxy, "REMOVE")
    assert os.listdir(nfs_dir) == []


async def test_a_real_eexist_stays(proxied: NfsBackend, proxy: RpcProxy, nfs_dir: Path) -> None:
    """Someone else's file of another mode is not taken for the one we made."""
    (nfs_dir / "theirs").write_bytes(b"not ours")
    root, _ = await proxied.root()
    proxy.lose_reply("CREATE")
    with pytest.raises(FileExistsError):
        await proxied.create(root, b"theirs", os.O_RDWR | os.O_EXCL, 0o600, ME)
    assert (nfs_dir / "theirs").read_bytes() == b"not ours"


async def test_rmdir_rename_link_whose_replies_were_lost(
    proxied: NfsBackend, proxy: RpcProxy, nfs_dir: Path
) -> None:
    """The path API's calls (libnfs reconnects and resends them itself)."""
    root, _ = await proxied.root()
    node, _, handle = await proxied.create(root, b"a", os.O_RDWR, 0o644, ME)
    await proxied.release(handle)
    await proxied.mkdir(root, b"dir", 0o755, ME)

    proxy.lose_reply("RENAME")
    await proxied.rename(root, b"a", root, b"b", 0)
    sent_again(proxy, "RENAME")
    proxy.lost.clear()

    proxy.lose_reply("LINK")
    await proxied.link(node, root, b"c", ME)
    sent_again(proxy, "LINK")
    proxy.lost.clear()

    proxy.lose_reply("RMDIR")
    await proxied.rmdir(root, b"dir")
    sent_again(proxy, "RMDIR")
    assert sorted(os.listdir(nfs_dir)) == ["b", "c"]
    assert (nfs_dir / "b").stat().st_ino == (nfs_dir / "c").stat().st_ino


async def test_symlink_and_mknod_whose_replies_were_lost(
    proxied: NfsBackend, proxy: RpcProxy, nfs_dir: Path
) -> None:
    root, _ = await proxied.root()
    proxy.lose_reply("SYMLINK")
    await proxied.symlink(root, b"link", b"target", ME)
    sent_again(proxy, "SYMLINK")
    proxy.lost.clear()

    proxy.lose_reply("MKNOD")
    await proxied.mknod(root, b"fifo", stat.S_IFIFO | 0o600, 0, ME)
    sent_again(proxy, "MKNOD")
    assert os.readlink(nfs_dir / "link") == "target"
    assert stat.S_ISFIFO((nfs_dir / "fifo").lstat().st_mode)


async def test_a_create_sent_again_in_a_known_directory_is_found(
    proxied: NfsBackend, proxy: RpcProxy
) -> None:
    """In a directory whose every name the backend knows (hostfs.backends.nfs.listing),
    a CREATE whose reply was lost still ends with the name known or the knowledge
    dropped: never a LOOKUP answered "missing" for what the first call made."""
    proxied.trust_names_for(60.0)
    root, _ = await proxied.root()
    directory, _ = await proxied.mkdir(root, b"known", 0o755, ME)
    with pytest.raises(FileNotFoundError):
        await proxied.lookup(directory, b"new")
    proxy.lose_reply("CREATE")
    _, _, handle = await proxied.create(directory, b"new", os.O_RDWR, 0o644, ME)
    await proxied.release(handle)
    sent_again(proxy, "CREATE")
    _, attr = await proxied.lookup(directory, b"new")
    assert stat.S_ISREG(attr.mode)
