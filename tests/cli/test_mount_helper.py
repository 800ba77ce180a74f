"""``mount -t fuse.hostfs`` and fstab lines through the real mount(8) (util-linux 2.38).

``hostfs install-mount-helper`` writes /sbin/mount.fuse.hostfs for the module's tests
and removes it after; mount(8) runs it, it starts ``hostfs mount`` and returns once the
mount is up; ``umount`` must end that server.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostfs.cli.mount_helper import translate
from tests.support.mounts import is_mounted

HOSTFS = [sys.executable, "-m", "hostfs"]
HELPER = Path("/sbin/mount.fuse.hostfs")
EXIT_TIMEOUT = 30.0
"""A guard against a server that never exits, not a measurement."""


@pytest.fixture(scope="module", autouse=True)
def helper() -> Iterator[None]:
    subprocess.run([*HOSTFS, "install-mount-helper"], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([*HOSTFS, "install-mount-helper", "--uninstall"], check=True)


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    source, mountpoint = tmp_path / "src", tmp_path / "mnt"
    source.mkdir()
    mountpoint.mkdir()
    (source / "hello").write_text("from the host\n")
    yield source, mountpoint
    if is_mounted(str(mountpoint)):
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def servers(mountpoint: Path) -> list[int]:
    """``hostfs mount`` processes serving ``mountpoint``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"hostfs" in argv[2:3] and b"mount" in argv and str(mountpoint).encode() in argv:
                found.append(int(entry))
    return found


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120)


def umount_ends_the_server(mountpoint: Path) -> None:
    pids = servers(mountpoint)
    assert len(pids) == 1, pids
    result = run("umount", str(mountpoint))
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + EXIT_TIMEOUT
    while servers(mountpoint):
        assert time.monotonic() < deadline, "the server outlived umount"
        time.sleep(0.05)
    assert not is_mounted(str(mountpoint))


@pytest.mark.parametrize("engine", ["devfuse", "pyfuse3"])
def test_mount_t_fuse_hostfs(dirs: tuple[Path, Path], engine: str) -> None:
    source, mountpoint = dirs
    options = f"cache=never,engine={engine}"
    result = run("mount", "-t", "fuse.hostfs", str(source), str(mountpoint), "-o", options)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (mountpoint / "hello").read_text() == "from the host\n"
    (source / "hello").write_text("changed on the host, longer\n")
    assert (mountpoint / "hello").stat().st_size == 28  # cache=never: no attribute cache
    umount_ends_the_server(mountpoint)


def test_fstab_line(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    source, mountpoint = dirs
    fstab = tmp_path / "fstab"
    words = "ro,noauto,nofail,_netdev,x-systemd.automount,noatime,engine=devfuse,cache=auto"
    fstab.write_text(f"# a comment\n{source} {mountpoint} fuse.hostfs {words} 0 0\n")
    result = run("mount", "-T", str(fstab), str(mountpoint))
    assert result.returncode == 0, result.stderr
    assert (mountpoint / "hello").read_text() == "from the host\n"
    with pytest.raises(OSError) as refused:  # ro: hostfs --readonly
        (mountpoint / "new").write_text("x")
    assert refused.value.errno == errno.EROFS
    umount_ends_the_server(mountpoint)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("bogus", "-o bogus: unknown option"),
        ("cache=sometimes", "-o cache=sometimes: cache must be one of"),
        ("engine=pyfuse3,allow_mmap", "allow_mmap needs engine=devfuse"),
    ],
)
def test_a_bad_option_is_one_line(dirs: tuple[Path, Path], words: str, message: str) -> None:
    source, mountpoint = dirs
    result = run("mount", "-t", "fuse.hostfs", str(source), str(mountpoint), "-o", words)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not is_mounted(str(mountpoint)) and servers(mountpoint) == []


def test_a_server_that_cannot_start_gives_its_line(dirs: tuple[Path, Path]) -> None:
    _, mountpoint = dirs
    result = run("mount", "-t", "fuse.hostfs", "/nonexistent/share", str(mountpoint))
    assert result.returncode == 32  # mount(8)'s "mount failure"
    assert result.stderr.count("\n") == 1 and "/nonexistent/share" in result.stderr
    assert not is_mounted(str(mountpoint)) and servers(mountpoint) == []


def test_install_prefix_and_uninstall(tmp_path: Path) -> None:
    installed = run(*HOSTFS, "install-mount-helper", "--prefix", str(tmp_path))
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / "sbin" / "mount.fuse.hostfs"
    assert os.access(script, os.X_OK)
    assert f"exec {sys.executable} -m hostfs.cli.mount_helper" in script.read_text()
    usage = run(str(script), "only-one-argument")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
    assert run(*HOSTFS, "install-mount-helper", "--prefix", str(tmp_path), "--uninstall")
    assert not script.exists()


def test_words_become_hostfs_mount_flags() -> None:
    words = ["rw", "nosuid", "x-systemd.requires=net", "ro", "engine=pyfuse3", "cache=none"]
    words += ["no_xattr", "thread_pool_size=2", "allow_mmap", "no_passthrough", "log=/tmp/l"]
    argv, log = translate("/srv/a,b", "/mnt", words)
    assert argv == [
        "mount", "--shared-dir", "/srv/a,b", "--readonly", "--engine", "pyfuse3",
        "-o", "cache=none", "-o", "no_xattr", "--thread-pool-size", "2", "--allow-mmap",
        "--no-passthrough", "/mnt",
    ]  # fmt: skip
    assert log == "/tmp/l"


def test_a_relative_source_is_served_from_where_mount_ran(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    _, mountpoint = dirs
    result = subprocess.run(
        ["mount", "-t", "fuse.hostfs", "src", "mnt"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (mountpoint / "hello").read_text() == "from the host\n"
    umount_ends_the_server(mountpoint)


def test_sloppy_drops_unknown_words_and_fake_mounts_nothing(dirs: tuple[Path, Path]) -> None:
    source, mountpoint = dirs
    fake = run(
        "mount", "-f", "-s", "-t", "fuse.hostfs", str(source), str(mountpoint), "-o", "bogus"
    )
    assert fake.returncode == 0, fake.stderr
    assert not is_mounted(str(mountpoint)) and servers(mountpoint) == []
    helper = run(str(HELPER), str(source), str(mountpoint), "-f", "-s", "-v", "-o", "bogus,ro")
    assert helper.returncode == 0, helper.stderr
    assert (
        helper.stdout
        == f"mount.fuse.hostfs: hostfs mount --shared-dir {source} --readonly {mountpoint}\n"
    )
    assert not is_mounted(str(mountpoint))
