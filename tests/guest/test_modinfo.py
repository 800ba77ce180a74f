"""Reading .modinfo with pyelftools, on the real Debian cloud kernel's modules."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest

from hostfs.guest.modinfo import (
    ModuleFormatError,
    module_depends,
    module_image,
    module_name,
    parse_modinfo,
)
from hostfs.guest.modules import ModuleTree

RECIPE_ORDER = [
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "fuse",
    "virtiofs",
]


def test_virtiofs_modinfo_names_its_dependencies(guest_kernel):
    tree = ModuleTree(guest_kernel.modules_dir)
    info = parse_modinfo(module_image(tree.paths["virtiofs"]))

    assert info["name"] == ["virtiofs"]
    assert info["vermagic"][0].startswith(guest_kernel.release)
    assert sorted(module_depends(module_image(tree.paths["virtiofs"]))) == [
        "fuse",
        "virtio",
        "virtio_ring",
    ]
    assert "fs-virtiofs" in info["alias"]


def test_load_order_puts_every_module_after_its_dependencies(guest_kernel):
    order = ModuleTree(guest_kernel.modules_dir).load_order()

    assert sorted(module.name for module in order) == sorted(RECIPE_ORDER)
    loaded: set[str] = set()
    for module in order:
        assert set(module.depends) <= loaded, module.name
        loaded.add(module.name)


def copy_module(guest_kernel, name: str, destination: Path) -> Path:
    source = ModuleTree(guest_kernel.modules_dir).paths[name]
    destination.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(source, destination))


def test_xz_compressed_modules_are_found_and_decompressed(guest_kernel, tmp_path):
    plain = copy_module(guest_kernel, "virtio_ring", tmp_path / "kernel")
    compressed = plain.with_name("virtio_ring.ko.xz")
    compressed.write_bytes(lzma.compress(plain.read_bytes(), format=lzma.FORMAT_XZ))
    plain.unlink()

    tree = ModuleTree(tmp_path)

    assert tree.paths == {"virtio_ring": compressed}
    assert module_image(compressed)[:4] == b"\x7fELF"
    assert tree.load_order(("virtio_ring",))[0].depends == ()


def test_builtin_modules_are_not_loaded(guest_kernel, tmp_path):
    copy_module(guest_kernel, "virtio_ring", tmp_path / "kernel")
    copy_module(guest_kernel, "virtio", tmp_path / "kernel")
    (tmp_path / "modules.builtin").write_text("kernel/drivers/virtio/virtio_ring.ko\n")

    order = ModuleTree(tmp_path).load_order(("virtio",))

    assert [module.name for module in order] == ["virtio"]


def test_missing_module_is_a_lookup_error(tmp_path):
    with pytest.raises(LookupError, match="virtiofs"):
        ModuleTree(tmp_path).load_order(("virtiofs",))


def test_module_names_use_underscores():
    assert module_name(Path("virtio-rng.ko.xz")) == "virtio_rng"
    assert module_name(Path("fuse.ko")) == "fuse"


def test_elf_without_modinfo_is_rejected():
    with pytest.raises(ModuleFormatError):
        parse_modinfo(Path("/bin/busybox").read_bytes())


def test_unknown_compression_is_rejected(tmp_path):
    module = tmp_path / "fuse.ko.zst"
    module.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(ModuleFormatError, match="zst"):
        module_image(module)
