"""The system calls ``hostfs serve`` makes once it serves (placeholder, being measured)."""

from __future__ import annotations

ALLOWED: tuple[str, ...] = ()
