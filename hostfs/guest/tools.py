"""Build the guest's small C helpers (``guest-images/tools/*.c``) once, static.

Busybox has no program that maps a file, holds an ``O_DIRECT`` descriptor or
waits for the ACPI power button; ``hostfs-io`` does.  Nor one that holds a
POSIX record lock around a command (``flock(1)`` takes flock(2) locks only);
``posixlock`` does.  Each is compiled with the
host's ``gcc -static`` (``gcc`` and ``libc6-dev`` are in ``scripts/setup``) into
the kernel cache, keyed by a hash of the source, so an edit rebuilds it and an
unchanged source is compiled once per machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hostfs.guest.errors import GuestError
from hostfs.guest.kernel import default_cache_dir

TOOLS = Path(__file__).resolve().parents[2] / "guest-images" / "tools"
GUEST_TOOLS = ("hostfs-io", "posixlock")


def build_tool(name: str, cache_dir: Path | None = None) -> Path | None:
    """The static binary for ``TOOLS/name.c``; None when the host has no C compiler."""
    compiler = shutil.which("gcc")
    if compiler is None:
        return None
    source = TOOLS / f"{name}.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    binary = (cache_dir or default_cache_dir()) / "tools" / f"{name}-{digest}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent, prefix=".build-") as scratch:
        output = Path(scratch) / name
        result = subprocess.run(
            [compiler, "-static", "-Os", "-Wall", "-o", str(output), str(source)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise GuestError(f"gcc -static {source} failed: {result.stderr.strip()}")
        os.replace(output, binary)  # concurrent builders each rename a whole file
    return binary
