"""ruff reads a file without an extension only when pyproject.toml names it: every
Python script in scripts/ must be named there, or CI's lint passes it over."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def python_scripts() -> set[str]:
    return {
        f"scripts/{path.name}"
        for path in (REPO / "scripts").iterdir()
        if not path.suffix and path.read_bytes().startswith(b"#!/usr/bin/env python3")
    }


def test_ruff_covers_every_extension_less_python_script() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    included = set(config["tool"]["ruff"]["extend-include"])
    scripts = python_scripts()
    assert "scripts/bench-device" in scripts  # the check sees the scripts at all
    assert scripts == included
