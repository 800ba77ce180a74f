"""Read a kernel module's ``.modinfo`` section, the way ``modinfo`` does.

The guest has no ``modprobe`` database, so the load order is computed on the
host from each module's ``depends=`` field. Debian may ship modules
compressed (``.ko.xz``); the guest's busybox ``insmod`` cannot decompress, so
:func:`module_image` also gives the plain ELF image that goes into the
initramfs.
"""

from __future__ import annotations

import gzip
import io
import lzma
from pathlib import Path

from elftools.elf.elffile import ELFFile

DECOMPRESSORS = {".xz": lzma.decompress, ".gz": gzip.decompress}


class ModuleFormatError(Exception):
    """A file that should be a kernel module is not one we can read."""


def module_name(path: Path) -> str:
    """``virtio_pci.ko.xz`` -> ``virtio_pci``; the kernel treats ``-`` as ``_``."""
    return path.name.split(".ko", 1)[0].replace("-", "_")


def module_image(path: Path) -> bytes:
    """The module's ELF bytes, decompressed if the file is ``.ko.xz``/``.ko.gz``."""
    data = path.read_bytes()
    if path.suffix == ".ko":
        return data
    decompress = DECOMPRESSORS.get(path.suffix)
    if decompress is None:
        raise ModuleFormatError(f"{path}: unsupported module compression {path.suffix!r}")
    return decompress(data)


def parse_modinfo(image: bytes) -> dict[str, list[str]]:
    """``key=value`` strings of ``.modinfo``; keys like ``alias`` repeat, hence lists."""
    elf = ELFFile(io.BytesIO(image))
    section = elf.get_section_by_name(".modinfo")
    if section is None:
        raise ModuleFormatError("no .modinfo section: not a kernel module")
    fields: dict[str, list[str]] = {}
    for entry in section.data().split(b"\0"):
        key, sep, value = entry.decode("utf-8", "replace").partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    return fields


def module_depends(image: bytes) -> list[str]:
    """Modules that must be loaded first (``depends=a,b``; empty when none)."""
    values = parse_modinfo(image).get("depends", [""])
    return [name.replace("-", "_") for name in values[0].split(",") if name]
