"""Every option of Rust virtiofsd 1.13.2 (``virtiofsd --help``) is taken or refused by name.

Each runs a real ``hostfs-vhost-user-fs`` with ``--print-capabilities`` after it:
an accepted option exits 0; a refused one exits 2 with one line naming it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.serve import SERVE

ACCEPTED = [
    ("--shared-dir", "{share}"),
    ("--tag", "myfs"),
    ("--socket", "{tmp}/fs.sock"),
    ("--socket-path", "{tmp}/fs.sock"),
    ("--socket-group", "root"),
    ("--fd", "3"),
    ("--thread-pool-size", "4"),
    ("--xattr",),
    ("--xattrmap", ":map::user.virtiofs.:"),
    ("--sandbox", "chroot"),
    ("--readonly",),
    ("--seccomp", "log"),
    ("--no-announce-submounts",),
    ("--inode-file-handles=never",),
    ("--inode-file-handles=prefer",),
    ("--inode-file-handles",),
    ("--cache", "metadata"),
    ("--allow-mmap",),
    ("--no-readdirplus",),
    ("--writeback",),
    ("--allow-direct-io",),
    ("--modcaps=-mknod",),
    ("--log-level", "trace"),
    ("--rlimit-nofile", "4096"),
    ("-o", "cache=none"),
    ("-d",),
    ("--no-killpriv-v2",),
    ("--killpriv-v2",),
    ("-f",),
    ("--translate-uid", "map:0:1000:1"),
    ("--translate-gid", "squash-guest:0:100:10"),
    ("--preserve-noatime",),
    ("--uid-map", ":0:100000:65536:"),
    ("--gid-map=:0:100000:65536:",),
    ("--migration-on-error", "guest-error"),
    ("--migration-mode", "find-paths"),
    ("--migration-confirm-paths",),
]

REFUSED = [
    (("--posix-acl",), "POSIX ACLs are not implemented"),
    (("--announce-submounts",), "submounts are not announced"),
    (("--syslog",), "stderr only"),
    (("--security-label",), "security labels"),
    (("--migration-mode", "file-handles"), "only find-paths is implemented"),
    (("--migration-verify-handles",), "no --migration-mode file-handles"),
]


def capabilities_after(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    words = [arg.format(tmp=tmp_path, share=share) for arg in argv]
    command = [*SERVE, "--shared-dir", str(share), *words, "--print-capabilities"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", ACCEPTED, ids=[argv[0] for argv in ACCEPTED])
def test_accepted(tmp_path: Path, argv: tuple[str, ...]) -> None:
    result = capabilities_after(tmp_path, *argv)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("argv", "reason"), REFUSED, ids=[argv[0] for argv, _ in REFUSED])
def test_refused_by_name(tmp_path: Path, argv: tuple[str, ...], reason: str) -> None:
    result = capabilities_after(tmp_path, *argv)
    assert result.returncode == 2
    option = argv[0].partition("=")[0]
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"error: {option}" in result.stderr and reason in result.stderr, result.stderr
