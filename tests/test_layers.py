"""Each layer knows only the ones below it (DESIGN.md, "Layers"): the core never imports
a backend or a transport (the backend contract is the core's, hostfs.core.backend),
the FUSE codec and its transport seam no transport, the vhost device no migration.
A cycle would come back as one forgotten import; this reads every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HOSTFS = Path(__file__).resolve().parent.parent / "hostfs"

FORBIDDEN = {
    "core": ["backends", "fuse", "vhost", "devfuse", "uring", "libfuse", "cli", "migration"],
    "fuse": ["backends", "vhost", "devfuse", "uring", "libfuse", "cli", "migration"],
    "vhost": ["backends", "devfuse", "uring", "libfuse", "cli", "migration"],
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "hostfs":
            names.update(f"hostfs.{alias.name}" for alias in node.names)  # from hostfs import x
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    modules = sorted((HOSTFS / layer).glob("*.py"))
    assert modules
    above = tuple(f"hostfs.{name}" for name in FORBIDDEN[layer])
    wrong = {
        f"{path.name}: {name}"
        for path in modules
        for name in imported(path)
        if name in above or name.startswith(tuple(f"{a}." for a in above))
    }
    assert not wrong
