"""A serving daemon's umask is 0, so a new object needs no chmod to get its mode.

The mode in a FUSE CREATE, MKDIR or MKNOD is final: the client kernel has applied
the caller's umask already (hostfs never offers FUSE_DONT_MASK; fuse.h,
``fuse_create_in.umask``).  The host kernel applies the daemon's umask again at
open(2)/mkdir(2)/mknod(2), so a caller whose umask lets through bits the daemon's
does not (002 against 022: group write) made hostfs.backends.local put them back
with a chmod and a second fstat per new object.  Under umask 0 the host kernel
takes the mode as sent, and the backend's check finds nothing to fix (a default ACL
on the parent still applies, umask or not, and is still corrected).  Rust virtiofsd
sets umask(0) when it starts for the same reason.

Cleared once the CLI has made everything it makes under the invoking umask (the
vhost-user socket, bound before the sandbox), in the serving process only (not a
sandbox's supervisor), and before the seccomp filter, which does not allow umask(2).
"""

from __future__ import annotations

import os


def clear_umask() -> int:
    """Serve with umask 0 from now on; the umask this process had."""
    return os.umask(0)
