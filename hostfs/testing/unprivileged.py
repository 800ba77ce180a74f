"""``hostfs serve`` as an ordinary user.

Where the user can reach an interpreter and this checkout, the daemon is simply
exec'd as that user (``setpriv --reuid --regid --clear-groups``, as su(1) would
leave it): a fresh process of the user's, which is what an operator runs.

Where it cannot (the venv's interpreter under ``/root/.pyenv``, mode 0700, on the
development machines, and no system Python of the same minor version), the process
starts as root, imports hostfs (and what it imports late: importlib.metadata's
``email.parser``), and only then becomes the user with setresuid(2) (every uid: no
capability is left), before ``main`` reads a single argument.  A change of uid makes
a process undumpable, which would give its /proc files (``uid_map`` among them) to
root; a process the user started is dumpable, and so is this one again.
"""

from __future__ import annotations

import os
import shutil
import site
import stat
import subprocess
import sys
from pathlib import Path

import hostfs

_SERVE = """
import sys
from hostfs.cli.serve import main
sys.exit(main())
"""

_AS_USER = """
import ctypes, email.parser, os, sys
from hostfs.cli.serve import main
import hostfs.backends.local
uid, gid = int(sys.argv.pop(1)), int(sys.argv.pop(1))
os.setgroups([])
os.setresgid(gid, gid, gid)
os.setresuid(uid, uid, uid)
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
sys.exit(main())
"""

SYSTEM_PYTHON = "/usr/bin/python3"
"""Debian's interpreter: world-executable, the same minor version as the venv's here."""


def serve_as(uid: int, gid: int) -> list[str]:
    """The command, before its flags, of ``hostfs serve`` run by ``uid``:``gid`` with no
    supplementary groups (it takes ``hostfs-vhost-user-fs``'s flags)."""
    plain = plain_exec_as(uid, gid)
    if plain is not None:
        return [*plain, "-c", _SERVE]
    return [sys.executable, "-c", _AS_USER, str(uid), str(gid)]


def plain_exec_as(uid: int, gid: int) -> list[str] | None:
    """``setpriv ... python`` that ``uid`` can run with this checkout importable, or None."""
    setpriv = shutil.which("setpriv")
    python = _reachable_python()
    paths = [str(Path(hostfs.__file__).resolve().parents[1]), *site.getsitepackages()]
    if setpriv is None or python is None or not all(_world_reachable(Path(p)) for p in paths):
        return None
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "env",
        f"PYTHONPATH={os.pathsep.join(paths)}",
        python,
    ]


def _reachable_python() -> str | None:
    """This interpreter if anyone may run it, else the system's of the same version."""
    if _world_reachable(Path(sys.executable).resolve(), executable=True):
        return sys.executable
    if not _world_reachable(Path(SYSTEM_PYTHON).resolve(), executable=True):
        return None
    version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return SYSTEM_PYTHON if version == str(sys.version_info[:2]) else None


def _world_reachable(path: Path, executable: bool = False) -> bool:
    """Every directory above ``path`` searchable by others, ``path`` readable (and
    executable) by them: what a user with no groups in common needs."""
    try:
        for parent in path.parents:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(path).st_mode
    except OSError:
        return False
    wanted = stat.S_IXOTH if executable else stat.S_IROTH
    if stat.S_ISDIR(mode):
        wanted |= stat.S_IXOTH
    return bool(mode & wanted)
