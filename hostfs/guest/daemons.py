"""The vhost-user-fs daemons a guest can boot with, as command lines.

hostfs takes virtiofsd's flags, so the same runner boots either one: hostfs
under test, QEMU's C virtiofsd as the reference it is compared with.
"""

from __future__ import annotations

import sys
from pathlib import Path

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
DAEMONS = ("hostfs", "virtiofsd")


def daemon_command(
    daemon: str, socket_path: Path, shared_dir: Path, cache: str = "auto", xattr: bool = True
) -> list[str]:
    """The command that serves ``shared_dir`` on ``socket_path`` with ``daemon``."""
    if daemon == "hostfs":
        command = [sys.executable, "-m", "hostfs", "serve"]
        command += ["--socket-path", str(socket_path), "--shared-dir", str(shared_dir)]
        return command + ["--cache", cache] + (["--xattr"] if xattr else [])
    if daemon == "virtiofsd":
        # The C daemon spells "never" as "none".
        options = [f"source={shared_dir}", f"cache={'none' if cache == 'never' else cache}"]
        options.append("xattr" if xattr else "no_xattr")
        return [VIRTIOFSD, f"--socket-path={socket_path}", "-o", ",".join(options)]
    raise ValueError(f"unknown daemon {daemon!r}; choose from {', '.join(DAEMONS)}")
