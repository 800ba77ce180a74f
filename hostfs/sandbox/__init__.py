"""The barriers around ``hostfs serve``, as virtiofsd puts them around itself.

Three of them, set up in this order before the daemon serves anything
(virtiofsd's ``main.rs``: sandbox, then capabilities, then seccomp):

- ``namespaces``: the daemon's root becomes the shared directory (pivot_root
  in new mount, pid and network namespaces, or chroot), so no path it can name
  lies outside the share;
- ``capabilities``: only the capabilities a file server needs stay;
- ``seccomp``: only the system calls the daemon was measured to make are
  allowed (``allowlist``).
"""

from __future__ import annotations

SANDBOX_MODES = ("namespace", "chroot", "none")
"""virtiofsd's ``--sandbox`` values; ``namespace`` is its default."""
