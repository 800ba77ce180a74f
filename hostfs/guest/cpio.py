"""The ``newc`` cpio format the kernel unpacks as an initramfs, without I/O.

Writing the archive ourselves (instead of packing a staging directory with
``cpio``) lets it hold ``/dev/console`` and root-owned files without root
privileges or a scratch tree; reading it back is for tests.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

MAGIC = b"070701"
HEADER_FIELDS = 13  # after the magic: ino mode uid gid nlink mtime filesize
# devmajor devminor rdevmajor rdevminor namesize check, 8 hex digits each
HEADER_SIZE = len(MAGIC) + HEADER_FIELDS * 8
TRAILER = "TRAILER!!!"


@dataclass(frozen=True, slots=True)
class CpioEntry:
    """One archive member; ``data`` is file content or a symlink's target."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)

    @classmethod
    def directory(cls, name: str, perm: int = 0o755) -> CpioEntry:
        return cls(name, stat.S_IFDIR | perm)

    @classmethod
    def file(cls, name: str, data: bytes, perm: int = 0o644) -> CpioEntry:
        return cls(name, stat.S_IFREG | perm, data)

    @classmethod
    def symlink(cls, name: str, target: str) -> CpioEntry:
        return cls(name, stat.S_IFLNK | 0o777, target.encode())

    @classmethod
    def char_device(cls, name: str, major: int, minor: int, perm: int = 0o600) -> CpioEntry:
        return cls(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _member(ino: int, entry: CpioEntry) -> bytes:
    name = entry.name.encode() + b"\0"
    fields = (ino, entry.mode, 0, 0, 1, 0, len(entry.data), 0, 0, *entry.rdev, len(name), 0)
    header = MAGIC + b"".join(b"%08x" % value for value in fields)
    return header + name + _pad4(HEADER_SIZE + len(name)) + entry.data + _pad4(len(entry.data))


def write_newc(entries: list[CpioEntry]) -> bytes:
    """The archive: each entry, then the trailer. Parents must precede children."""
    members = [_member(ino, entry) for ino, entry in enumerate(entries, start=1)]
    members.append(_member(0, CpioEntry(TRAILER, 0)))
    return b"".join(members)


def read_newc(archive: bytes) -> list[CpioEntry]:
    """Parse a ``newc`` archive back into entries (up to the trailer)."""
    entries: list[CpioEntry] = []
    offset = 0
    while True:
        if archive[offset : offset + len(MAGIC)] != MAGIC:
            raise ValueError(f"bad cpio magic at offset {offset}")
        fields = [
            int(archive[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(HEADER_FIELDS)
        ]
        mode, filesize, rdev, namesize = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        name_start = offset + HEADER_SIZE
        name = archive[name_start : name_start + namesize - 1].decode()
        data_start = name_start + namesize + len(_pad4(HEADER_SIZE + namesize))
        data = archive[data_start : data_start + filesize]
        offset = data_start + filesize + len(_pad4(filesize))
        if name == TRAILER:
            return entries
        entries.append(CpioEntry(name, mode, data, rdev))
