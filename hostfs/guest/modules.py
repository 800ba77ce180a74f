"""Find a kernel release's modules and order them for ``insmod``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hostfs.guest.modinfo import module_depends, module_image, module_name

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")

# The PCI transport is not a dependency of virtiofs, but the QEMU device is PCI.
VIRTIOFS_MODULES = ("virtio_pci", "virtiofs")


@dataclass(frozen=True, slots=True)
class KernelModule:
    name: str
    path: Path
    depends: tuple[str, ...]


class ModuleTree:
    """``lib/modules/<release>``: module files by name, and the built-in list."""

    def __init__(self, modules_dir: Path) -> None:
        self.modules_dir = modules_dir
        self.paths = {
            module_name(path): path
            for path in sorted(modules_dir.rglob("*.ko*"))
            if path.name.endswith(MODULE_SUFFIXES)
        }
        builtin = modules_dir / "modules.builtin"
        self.builtin = (
            {module_name(Path(line)) for line in builtin.read_text().split()}
            if builtin.exists()
            else set()
        )

    def module(self, name: str) -> KernelModule:
        path = self.paths.get(name)
        if path is None:
            raise LookupError(f"kernel module {name!r} not found under {self.modules_dir}")
        return KernelModule(name, path, tuple(module_depends(module_image(path))))

    def load_order(self, wanted: tuple[str, ...] = VIRTIOFS_MODULES) -> list[KernelModule]:
        """Every module needed for ``wanted``, each after the modules it depends on.

        Built-in modules need no loading and are left out.
        """
        order: list[KernelModule] = []
        done: set[str] = set()
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in done or name in self.builtin:
                return
            if name in visiting:
                raise ValueError(f"kernel module dependency cycle through {name!r}")
            visiting.add(name)
            module = self.module(name)
            for dependency in module.depends:
                visit(dependency)
            visiting.discard(name)
            done.add(name)
            order.append(module)

        for name in wanted:
            visit(name)
        return order
