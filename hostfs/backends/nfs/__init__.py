"""The NFS backend: a remote NFSv3 export through libnfs (what DOCA SNAP virtio-fs does on a DPU).

URL: ``nfs://SERVER/EXPORT[?OPTIONS]``.  libnfs's own options pass through
(``uid=``, ``gid=``, ``nfsport=``, ``mountport=``, ``version=3``...); hostfs adds

- ``contexts=N`` — connections used in parallel (default 4: the Linux client's
  ``nconnect`` allows up to 16; 4 already beats one context on metadata here
  and keeps the server's per-client load modest);
- ``timeout=SECONDS`` — how long an RPC may go unanswered before the request
  fails with ETIMEDOUT (default 10 s, libnfs rounds up to the next whole
  second; a Linux soft mount waits 60 s x 2 retransmissions, too long for a
  guest request).
"""

from __future__ import annotations

import errno
import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hostfs.backends import BackendUnavailable
from hostfs.backends.nfs import rpc3
from hostfs.backends.nfs.backend import NfsBackend, to_stat
from hostfs.backends.nfs.libnfs_c import TransportError
from hostfs.backends.nfs.loop import LoopRpc
from hostfs.backends.nfs.pool import ContextPool
from hostfs.core.types import Caller

__all__ = ["NfsBackend", "open_nfs_backend"]

DEFAULT_CONTEXTS = 4
DEFAULT_TIMEOUT = 10.0


def parse_url(url: str) -> tuple[str, int, float, Caller]:
    """Split hostfs's options off ``url``: (libnfs URL, contexts, timeout, owner)."""
    parts = urlsplit(url)
    libnfs_options = []
    contexts, timeout = DEFAULT_CONTEXTS, DEFAULT_TIMEOUT
    owner = Caller(os.getuid(), os.getgid(), 0)
    try:
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "contexts":
                contexts = int(value)
            elif key == "timeout":
                timeout = float(value)
            else:
                if key == "version" and value != "3":
                    raise BackendUnavailable(
                        f"NFS version {value} is not supported: libnfs 4.0 reports a 0-byte "
                        "readmax/writemax on NFSv4 mounts, so every read and write fails; "
                        "use NFSv3"
                    )
                if key == "uid":
                    owner = owner._replace(uid=int(value))
                elif key == "gid":
                    owner = owner._replace(gid=int(value))
                libnfs_options.append((key, value))
    except ValueError as error:
        raise BackendUnavailable(f"bad option in {url}: {error}") from None
    if contexts < 1 or timeout <= 0:
        raise BackendUnavailable(f"{url}: contexts must be >= 1 and timeout > 0")
    if not parts.hostname or not parts.path:
        raise BackendUnavailable(f"{url}: expected nfs://SERVER/EXPORT")
    query = urlencode(libnfs_options, safe="")
    return urlunsplit(parts._replace(query=query)), contexts, timeout, owner


async def open_nfs_backend(url: str) -> NfsBackend:
    """Mount the export once (bounded by the timeout) and return the backend.

    An unreachable server, a missing export or a refusal raises
    :class:`BackendUnavailable` with a one-line reason.
    """
    libnfs_url, contexts, timeout, owner = parse_url(url)
    pool = ContextPool(libnfs_url.encode(), contexts, int(timeout * 1000))

    try:
        root = await pool.run(lambda c: (c.lstat(b"/"), rpc3.root_filehandle(c)))
        fast = LoopRpc(libnfs_url.encode(), int(timeout * 1000))
        backend = NfsBackend(pool, fast, to_stat(root[0]), root[1], owner)
    except TransportError as error:
        pool.close()
        reason = f"server not reachable ({error.strerror})"
        raise BackendUnavailable(f"cannot mount {url}: {reason}") from None
    except OSError as error:
        pool.close()
        reason = error.strerror or os.strerror(error.errno or errno.EIO)
        raise BackendUnavailable(f"cannot mount {url}: {reason}") from None
    return backend
