"""The command line libvirt 9.0 builds (qemu_virtiofs.c) starts a real ``hostfs serve``."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import trio

from hostfs.cli.compat import split_options
from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID, Opcode
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import GuestFuseClient
from tests.support.serve import SERVE

ASKED = abi.POSIX_LOCKS | abi.FLOCK_LOCKS | abi.HANDLE_KILLPRIV_V2 | abi.ASYNC_READ


async def init_flags(fuse: GuestFuseClient) -> int:
    """INIT asking for the flags the argv turns on and off; the flags granted."""
    args = abi.INIT_IN.pack(abi.KERNEL_VERSION, abi.KERNEL_MINOR_VERSION, 128 << 10, ASKED, 0)
    return abi.INIT_OUT.unpack_from(await fuse.ok(Opcode.INIT, 0, args))[3]


def escape_comma(path: str) -> str:
    """libvirt's virQEMUBuildBufferEscapeComma."""
    return path.replace(",", ",,")


async def test_libvirt_9_argv_serves_a_share_whose_path_has_commas(tmp_path: Path) -> None:
    share = tmp_path / "a,b,,c"
    share.mkdir()
    (share / "hello").write_text("hi")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "fs.sock"))
    listener.listen(1)
    fd = listener.fileno()
    words = f"source={escape_comma(str(share))},cache=none,sandbox=namespace,xattr,flock"
    argv = [f"--fd={fd}", "-o", f"{words},no_posix_lock", "--thread-pool-size=0", "-d", "-f"]
    process = subprocess.Popen([*SERVE, *argv], pass_fds=[fd], stderr=subprocess.PIPE, text=True)
    listener.close()
    try:
        async with Frontend.connect(str(tmp_path / "fs.sock")) as frontend:
            await frontend.realize()
            await frontend.start(2)
            fuse = GuestFuseClient(frontend)
            flags = await init_flags(fuse)
            assert flags & abi.FLOCK_LOCKS and not flags & abi.POSIX_LOCKS
            assert await fuse.lookup(ROOT_ID, b"hello")
            frontend.close_queues()
        _, stderr = await trio.to_thread.run_sync(process.communicate, None, 10)
        assert process.returncode == 0, stderr
        assert " DEBUG: " in stderr  # -d
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("source=/a,,b,cache=none", ["source=/a,b", "cache=none"]),
        ("source=/a,,,,b", ["source=/a,,b"]),
        ("source=/a,,,xattr", ["source=/a,", "xattr"]),
        ("xattr,,", ["xattr,"]),
        ("xattr,,flock,", ["xattr,flock"]),
        (",xattr,", ["xattr"]),
    ],
)
def test_double_comma_is_a_comma(text: str, words: list[str]) -> None:
    assert split_options(text) == words


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("cache=sometimes", "-o cache=sometimes: cache must be one of always, auto, metadata"),
        ("sandbox=jail", "-o sandbox=jail: sandbox must be one of namespace, chroot, none"),
        ("posix_acl", "-o posix_acl: POSIX ACLs are not implemented"),
        ("bogus", "-o bogus: unknown option"),
        ("source=", "-o source=: empty value"),
    ],
)
def test_bad_compat_words_are_named(tmp_path: Path, words: str, message: str) -> None:
    result = subprocess.run(
        [*SERVE, "--socket-path", str(tmp_path / "s"), "-o", f"source={tmp_path},{words}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
