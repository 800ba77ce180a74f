"""Assemble the guest's initramfs: busybox, the virtio-fs modules, /init, a workload.

It is rebuilt for every boot (a fraction of a second) so that it always
matches the scripts in ``guest-images/``; only the kernel is cached.
"""

from __future__ import annotations

import gzip
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from elftools.elf.elffile import ELFFile

from hostfs.guest.cpio import CpioEntry, write_newc
from hostfs.guest.errors import GuestError
from hostfs.guest.kernel import GuestKernel
from hostfs.guest.modinfo import module_image
from hostfs.guest.modules import VIRTIOFS_MODULES, ModuleTree
from hostfs.guest.tools import GUEST_TOOLS, build_tool
from hostfs.progress import phase

GUEST_IMAGES = Path(__file__).resolve().parents[2] / "guest-images"
BUSYBOX = Path("/bin/busybox")
# Dynamic host programs worth having in the guest (busybox has no xattr applets, and
# Debian's busybox-static no flock); copied with the shared libraries they load, left
# out when the host lacks them.
HOST_PROGRAMS = ("setfattr", "getfattr", "flock")
WORKLOAD_PROGRAMS = {"bench": ("perl",)}
"""Host programs a workload needs besides: bench.sh's random 4 KiB I/O seeks, which no
busybox applet does in a loop, so it is one perl-base process (no modules needed)."""
ENV_FILE = "etc/hostfs-guest.env"


@dataclass(frozen=True, slots=True)
class GuestSetup:
    """What one guest run does: which share to mount, which script to run, how often."""

    workload: Path
    tag: str = "hostfs"
    boots: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    modules: tuple[str, ...] = ()
    """Kernel modules to load besides virtio-fs's, e.g. ``button``, ``evdev`` (ACPI power
    button, for ``virsh reboot``)."""
    programs: tuple[Path, ...] = ()
    """Static host binaries a workload needs, copied to the guest's /usr/bin by name."""


def workload_path(name_or_path: str) -> Path:
    """A workload by name (``guest-images/workloads/NAME.sh``) or a path to a script."""
    candidate = Path(name_or_path)
    if candidate.suffix != ".sh":
        candidate = GUEST_IMAGES / "workloads" / f"{name_or_path}.sh"
    if not candidate.is_file():
        raise FileNotFoundError(f"no workload script {candidate}")
    return candidate


def available_workloads() -> list[str]:
    return sorted(path.stem for path in (GUEST_IMAGES / "workloads").glob("*.sh"))


class ImageTree:
    """Archive members by path, parents created on demand so they precede children."""

    def __init__(self) -> None:
        self.entries: dict[str, CpioEntry] = {}

    def add(self, entry: CpioEntry) -> None:
        parent = PurePosixPath(entry.name).parent
        if str(parent) != "." and str(parent) not in self.entries:
            self.add(CpioEntry.directory(str(parent)))
        self.entries[entry.name] = entry

    def add_host_file(self, host_path: Path, perm: int = 0o755) -> None:
        self.add(CpioEntry.file(str(host_path).lstrip("/"), host_path.read_bytes(), perm))


def build_initramfs(kernel: GuestKernel, setup: GuestSetup) -> bytes:
    """The gzip-compressed ``newc`` archive to pass to QEMU's ``-initrd``."""
    tree = ImageTree()
    for directory in ("dev", "proc", "sys", "mnt", "tmp", "usr/bin"):
        tree.add(CpioEntry.directory(directory))
    tree.add(CpioEntry.char_device("dev/console", 5, 1))
    _add_busybox(tree)
    for program in (*HOST_PROGRAMS, *WORKLOAD_PROGRAMS.get(setup.workload.stem, ())):
        _add_host_program(tree, program)
    for tool in GUEST_TOOLS:
        binary = build_tool(tool)
        if binary is not None:
            tree.add(CpioEntry.file(f"usr/bin/{tool}", binary.read_bytes(), 0o755))
    for binary in setup.programs:
        tree.add(CpioEntry.file(f"usr/bin/{binary.name}", binary.read_bytes(), 0o755))
    with phase(f"guest image: resolving the modules of {kernel.release}"):
        modules = ModuleTree(kernel.modules_dir).load_order((*VIRTIOFS_MODULES, *setup.modules))
    for module in modules:
        tree.add(CpioEntry.file(f"lib/modules/{module.name}.ko", module_image(module.path)))
    environment = {
        "MODULES": " ".join(module.name for module in modules),
        "TAG": setup.tag,
        "BOOTS": str(setup.boots),
        **setup.environment,
    }
    env_lines = "".join(
        f"export {key}={shlex.quote(value)}\n" for key, value in environment.items()
    )
    tree.add(CpioEntry.file(ENV_FILE, env_lines.encode()))
    tree.add(CpioEntry.file("init", (GUEST_IMAGES / "init.sh").read_bytes(), 0o755))
    tree.add(CpioEntry.file("workload.sh", setup.workload.read_bytes(), 0o755))
    tree.add(CpioEntry.file("checks.sh", (GUEST_IMAGES / "checks.sh").read_bytes(), 0o644))
    with phase(f"guest image: packing {len(tree.entries)} files"):
        return gzip.compress(write_newc(list(tree.entries.values())), compresslevel=1)


def _add_busybox(tree: ImageTree) -> None:
    """Static busybox plus a symlink per applet, so /init needs no ``--install``."""
    if not BUSYBOX.exists():
        raise GuestError(f"{BUSYBOX} is missing: install busybox-static")
    with BUSYBOX.open("rb") as binary:
        if any(segment["p_type"] == "PT_INTERP" for segment in ELFFile(binary).iter_segments()):
            raise GuestError(f"{BUSYBOX} is dynamically linked: install busybox-static")
    tree.add_host_file(BUSYBOX)
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            tree.add(CpioEntry.symlink(f"bin/{applet}", "busybox"))


def _add_host_program(tree: ImageTree, name: str) -> None:
    program = shutil.which(name)
    if program is None:
        return
    tree.add(CpioEntry.file(f"usr/bin/{name}", Path(program).read_bytes(), 0o755))
    for library in _shared_libraries(program):
        if library.lstrip("/") not in tree.entries:
            tree.add_host_file(Path(library))


def _shared_libraries(program: str) -> list[str]:
    """Absolute paths ``ldd`` resolves for ``program`` (the loader included)."""
    output = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    return [word for line in output.splitlines() for word in line.split() if word.startswith("/")]
