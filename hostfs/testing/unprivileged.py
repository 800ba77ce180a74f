"""``hostfs serve`` as an ordinary user, from a process that starts as root.

A test (or the guest runner) that wants the unprivileged daemon cannot always just
exec it as that user: the interpreter may live where the user cannot reach
(``/root/.pyenv`` on the development machines).  So the process starts as root,
imports hostfs (and what it imports late: importlib.metadata's ``email.parser``), and
only then becomes the user with setresuid(2) (every uid: no capability is left),
before ``main`` reads a single argument.  A change of uid makes a process undumpable,
which would give its /proc files (``uid_map`` among them) to root; a process the user
started is dumpable, and so is this one again.
"""

from __future__ import annotations

import sys

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


def serve_as(uid: int, gid: int) -> list[str]:
    """The command, before its flags, of ``hostfs serve`` run by ``uid``:``gid`` with no
    supplementary groups (it takes ``hostfs-vhost-user-fs``'s flags)."""
    return [sys.executable, "-c", _AS_USER, str(uid), str(gid)]
