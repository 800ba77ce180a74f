"""Both Debian kernels unpack to a boot image and a module tree the initramfs can use."""

from __future__ import annotations

import gzip
from pathlib import Path

from hostfs.guest.cpio import read_newc
from hostfs.guest.initramfs import GuestSetup, build_initramfs, workload_path
from hostfs.guest.kernel import _locate
from hostfs.guest.modules import VIRTIOFS_MODULES, ModuleTree


def test_trixie_kernel_is_6_12_with_virtiofs_built_in(guest_kernel_612):
    """Its modules sit under usr/lib/modules (merged /usr), xz-compressed; virtio-fs
    needs none of them."""
    assert guest_kernel_612.release.startswith("6.12.")
    assert guest_kernel_612.modules_dir.parent.parent.parent.name == "usr"
    tree = ModuleTree(guest_kernel_612.modules_dir)
    assert {"fuse", "virtiofs", "virtio_pci", "virtio_ring"} <= tree.builtin
    assert any(path.name.endswith(".ko.xz") for path in tree.paths.values())
    assert tree.load_order() == []


def test_initramfs_for_the_6_12_kernel_loads_no_modules(guest_kernel_612):
    setup = GuestSetup(workload_path("smoke"))
    entries = {
        e.name: e for e in read_newc(gzip.decompress(build_initramfs(guest_kernel_612, setup)))
    }
    assert "export MODULES=''\n" in entries["etc/hostfs-guest.env"].data.decode()
    assert not [name for name in entries if name.startswith("lib/modules/")]


def test_module_tree_is_found_under_lib_or_usr_lib(tmp_path: Path):
    for where in ("lib/modules", "usr/lib/modules"):
        root = tmp_path / where.replace("/", "-")
        (root / "boot").mkdir(parents=True)
        (root / "boot" / "vmlinuz-9.9").write_bytes(b"")
        (root / where / "9.9").mkdir(parents=True)
        builtin = "".join(f"kernel/x/{name}.ko\n" for name in VIRTIOFS_MODULES)
        (root / where / "9.9" / "modules.builtin").write_text(builtin)

        kernel = _locate("linux-image-9.9", root)

        assert kernel.modules_dir == root / where / "9.9"
        assert ModuleTree(kernel.modules_dir).load_order() == []
