"""--readonly, --xattrmap: virtiofsd's spellings reach FsOptions; bad ones are usage errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hostfs.cli import common
from hostfs.core.xattrmap import PASS_THROUGH, XattrMap


def options(*argv: str):
    parser = common.ArgumentParser(prog="hostfs test")
    common.add_filesystem_options(parser)
    return common.filesystem_options(parser.parse_args(["--shared-dir", "/srv", *argv]))


def test_defaults_change_nothing():
    fs_options = options()
    assert not fs_options.readonly and fs_options.xattrmap is PASS_THROUGH
    assert not fs_options.xattr


def test_readonly():
    assert options("--readonly").readonly


@pytest.mark.parametrize(
    "argv",
    [("--xattrmap", ":map::user.virtiofs.:"), ("-o", "xattrmap=:map::user.virtiofs.:,cache=auto")],
    ids=["flag", "-o"],
)
def test_xattrmap_forms_and_implied_xattr(argv):
    fs_options = options(*argv)
    assert fs_options.xattrmap == XattrMap.parse(":map::user.virtiofs.:")
    assert fs_options.xattr  # as virtiofsd: a map turns extended attributes on


def hostfs_mount(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hostfs", "mount", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--xattrmap", ":prefix:all:trusted.:user.vm."), "--xattrmap: rule 1: missing"),
        (("--xattrmap", ":ok:all:::/nope/all///"), "--xattrmap: rule 2: unknown type 'nope'"),
        (("--xattrmap", ":ok:both:::"), "--xattrmap: rule 1: unknown scope 'both'"),
        (("--xattrmap", ""), "--xattrmap: no rules"),
        (("-o", "xattrmap=:map:a:b::ok:all:::"), "'map' must be the last rule"),
    ],
    ids=["unterminated", "type", "scope", "empty", "map-not-last"],
)
def test_usage_errors(tmp_path, argv, message):
    result = hostfs_mount("--shared-dir", str(tmp_path), *argv, str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
