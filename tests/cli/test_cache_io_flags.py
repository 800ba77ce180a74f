"""``--allow-direct-io``, ``--allow-mmap`` and ``--cache metadata`` through a real mount.

virtiofsd's meanings: O_DIRECT from the guest is dropped unless --allow-direct-io
(then it reaches the host file, and unaligned buffers are bounced); a direct-I/O
file (--cache never|metadata) may be mapped shared only with --allow-mmap
(FUSE_DIRECT_IO_ALLOW_MMAP); metadata caches names and attributes, not data.
"""

from __future__ import annotations

import errno
import mmap
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.mounts import Mount, hostfs_mount

ENGINES = {
    "devfuse": ("devfuse", ("--no-passthrough",)),
    "pyfuse3": ("pyfuse3", ()),
}


@contextmanager
def mounted(tmp_path: Path, engine: str, *flags: str) -> Iterator[Mount]:
    share, mountpoint = tmp_path / "share", tmp_path / "mnt"
    share.mkdir()
    mountpoint.mkdir()
    name, engine_flags = ENGINES[engine]
    with hostfs_mount(
        name, str(share), str(mountpoint), str(share), "local", (*engine_flags, *flags)
    ) as mount:
        yield mount


def dd(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dd", *argv], capture_output=True, text=True, timeout=60)


def host_fd_flags(mount: Mount, host_file: Path) -> int:
    """``flags:`` of the daemon's descriptor of ``host_file`` (proc(5), fdinfo)."""
    fd_dir = f"/proc/{mount.process.pid}/fd"
    for fd in os.listdir(fd_dir):
        if os.readlink(f"{fd_dir}/{fd}") == str(host_file):
            for line in Path(f"/proc/{mount.process.pid}/fdinfo/{fd}").read_text().splitlines():
                if line.startswith("flags:"):
                    return int(line.split()[1], 8)
    raise AssertionError(f"the daemon holds no descriptor of {host_file}")


@pytest.mark.parametrize("engine", ["devfuse", "pyfuse3"])
@pytest.mark.parametrize("flags", [(), ("--allow-direct-io",)], ids=["default", "allow-direct-io"])
def test_dd_direct(tmp_path: Path, engine: str, flags: tuple[str, ...]) -> None:
    with mounted(tmp_path, engine, *flags) as mount:
        target = f"{mount.path}/f"
        written = dd("if=/dev/urandom", f"of={target}", "bs=4096", "count=16", "oflag=direct")
        assert written.returncode == 0, written.stderr
        read = dd(f"if={target}", "of=/dev/null", "bs=4096", "iflag=direct")
        assert read.returncode == 0, read.stderr
        assert "65536 bytes" in read.stderr
        with open(target, "rb") as guest, open(f"{mount.host_dir}/f", "rb") as host:
            assert guest.read() == host.read()


@pytest.mark.parametrize("flags", [(), ("--allow-direct-io",)], ids=["default", "allow-direct-io"])
def test_o_direct_reaches_the_host_only_when_allowed(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    with mounted(tmp_path, "devfuse", *flags) as mount:
        fd = os.open(f"{mount.path}/f", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
        try:
            host_flags = host_fd_flags(mount, Path(mount.host_dir) / "f")
        finally:
            os.close(fd)
        assert bool(host_flags & os.O_DIRECT) == bool(flags)


def map_shared(path: str) -> None:
    with open(path, "r+b") as file, mmap.mmap(file.fileno(), 4096, mmap.MAP_SHARED) as mapped:
        mapped[:5] = b"paged"
        mapped.flush()


@pytest.mark.parametrize("cache", ["never", "metadata"])
def test_shared_mmap_needs_allow_mmap(tmp_path: Path, cache: str) -> None:
    """Passthrough off: with it the kernel maps the host file itself, flag or not."""
    engine = "devfuse"
    with mounted(tmp_path, engine, "--cache", cache) as mount:
        Path(mount.path, "f").write_bytes(bytes(4096))
        with pytest.raises(OSError) as refused:
            map_shared(f"{mount.path}/f")
        assert refused.value.errno == errno.ENODEV
    os.rmdir(tmp_path / "mnt")
    os.unlink(tmp_path / "share" / "f")
    os.rmdir(tmp_path / "share")
    with mounted(tmp_path, engine, "--cache", cache, "--allow-mmap") as mount:
        Path(mount.path, "f").write_bytes(bytes(4096))
        map_shared(f"{mount.path}/f")
        assert Path(mount.host_dir, "f").read_bytes()[:5] == b"paged"


def test_allow_mmap_is_refused_with_pyfuse3(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "hostfs", "mount", "--engine", "pyfuse3", "--allow-mmap"]
    command += ["--shared-dir", str(tmp_path), str(tmp_path / "absent")]  # never mounts
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--allow-mmap needs --engine devfuse" in result.stderr


@pytest.mark.parametrize(("cache", "stale"), [("metadata", True), ("never", False)])
def test_metadata_caches_attributes_not_data(tmp_path: Path, cache: str, stale: bool) -> None:
    with mounted(tmp_path, "devfuse", "--cache", cache) as mount:
        guest, host = Path(mount.path, "f"), Path(mount.host_dir, "f")
        guest.write_bytes(b"old!")
        assert guest.stat().st_size == 4
        host.write_bytes(b"new!, and longer")
        assert guest.stat().st_size == (4 if stale else 16)  # one day of attribute cache
        with open(guest, "rb") as file:
            assert file.read(4) == b"new!"  # data is never cached: direct I/O
