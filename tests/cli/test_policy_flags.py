"""Policy flags (virtiofsd's spellings) reach FsOptions; bad values are usage errors."""

from __future__ import annotations

import pytest

from hostfs.cli import common
from hostfs.core.idmap import IDENTITY, IdMap
from hostfs.core.xattrmap import PASS_THROUGH, XattrMap
from tests.support.cli import hostfs_mount


def options(*argv: str):
    parser = common.ArgumentParser(prog="hostfs test")
    common.add_filesystem_options(parser)
    return common.filesystem_options(parser.parse_args(["--shared-dir", "/srv", *argv]))


def test_defaults_change_nothing():
    fs_options = options()
    assert not fs_options.readonly and fs_options.xattrmap is PASS_THROUGH
    assert not fs_options.xattr
    assert fs_options.ids == IDENTITY


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


def test_translate_flags_repeat():
    argv = ["--translate-uid", "map:0:1000:1", "--translate-uid", "forbid-guest:5:1"]
    fs_options = options(*argv, "--translate-gid", "squash-guest:0:100:10")
    assert fs_options.ids.uids == IdMap.parse(["map:0:1000:1", "forbid-guest:5:1"])
    assert fs_options.ids.gids == IdMap.parse(["squash-guest:0:100:10"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--xattrmap", ":prefix:all:trusted.:user.vm."), "--xattrmap: rule 1: missing"),
        (("--xattrmap", ":ok:all:::/nope/all///"), "--xattrmap: rule 2: unknown type 'nope'"),
        (("--xattrmap", ":ok:both:::"), "--xattrmap: rule 1: unknown scope 'both'"),
        (("--xattrmap", ""), "--xattrmap: no rules"),
        (("-o", "xattrmap=:map:a:b::ok:all:::"), "'map' must be the last rule"),
        (("--translate-uid", "both:0:1:1"), "--translate-uid: 'both:0:1:1': unknown type"),
        (("--translate-gid", "guest:0:1"), "--translate-gid: 'guest:0:1': guest takes 3"),
        (("--translate-uid", "map:0:1:x"), "--translate-uid: 'map:0:1:x': 'x' is not an id"),
        (
            ("--translate-gid", "map:0:100:10", "--translate-gid", "guest:5:0:1"),
            "--translate-gid: 'guest:5:0:1': overlaps",
        ),
    ],
    ids=[
        "unterminated",
        "type",
        "scope",
        "empty",
        "map-not-last",
        "idmap-type",
        "idmap-count",
        "idmap-number",
        "idmap-overlap",
    ],
)
def test_usage_errors(tmp_path, argv, message):
    result = hostfs_mount("--shared-dir", str(tmp_path), *argv, str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
