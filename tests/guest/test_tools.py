"""guest-images/tools/*.c: built static once per source, reused from the cache."""

from __future__ import annotations

import subprocess
from pathlib import Path

from elftools.elf.elffile import ELFFile

from hostfs.guest.tools import GUEST_TOOLS, build_tool


def test_hostfs_io_is_static_cached_and_answers(tmp_path: Path) -> None:
    binary = build_tool("hostfs-io", cache_dir=tmp_path)
    assert binary is not None and "hostfs-io" in GUEST_TOOLS
    with binary.open("rb") as elf:  # the initramfs has no libc and no loader
        assert not any(s["p_type"] == "PT_INTERP" for s in ELFFile(elf).iter_segments())
    built = binary.stat().st_mtime_ns
    assert build_tool("hostfs-io", cache_dir=tmp_path) == binary
    assert binary.stat().st_mtime_ns == built  # not compiled again

    target = tmp_path / "f"
    target.write_bytes(bytes(4096))
    mapped = subprocess.run([binary, "mmap-write", target, "paged"], capture_output=True, text=True)
    assert mapped.stdout == "mapped\n" and target.read_bytes()[:5] == b"paged"
    assert subprocess.run([binary, "locks", target]).returncode == 0
    missing = subprocess.run([binary, "locks", tmp_path / "absent"], capture_output=True, text=True)
    assert (missing.returncode, missing.stdout) == (1, "FAIL open ENOENT\n")
    usage = subprocess.run([binary], capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: hostfs-io")
