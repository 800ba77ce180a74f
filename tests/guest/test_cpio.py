"""The newc writer and reader agree with each other and with GNU cpio."""

from __future__ import annotations

import stat
import subprocess

import pytest

from hostfs.guest.cpio import CpioEntry, read_newc, write_newc

ENTRIES = [
    CpioEntry.directory("bin"),
    CpioEntry.file("bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
    CpioEntry.symlink("bin/alias", "tool"),
    CpioEntry.directory("dev"),
    CpioEntry.char_device("dev/console", 5, 1),
    # name and data lengths around the 4-byte padding boundary
    *(CpioEntry.file("x" * n, b"y" * n) for n in range(1, 9)),
]


def test_round_trip():
    assert read_newc(write_newc(ENTRIES)) == ENTRIES


def test_gnu_cpio_lists_our_archive():
    listing = subprocess.run(
        ["cpio", "-itv"], input=write_newc(ENTRIES), capture_output=True, check=True
    ).stdout.decode()
    lines = listing.splitlines()

    assert [line.split()[-1] for line in lines if "->" not in line] == [
        entry.name for entry in ENTRIES if not stat.S_ISLNK(entry.mode)
    ]
    assert any(line.endswith("bin/alias -> tool") for line in lines)
    assert any(line.startswith("crw-------") and "5,   1" in line for line in lines)


def test_we_read_gnu_cpio_archives(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "file").write_bytes(b"content")
    archive = subprocess.run(
        ["cpio", "-o", "-H", "newc"],
        input=b"a\na/file\n",
        cwd=tmp_path,
        capture_output=True,
        check=True,
    ).stdout

    entries = {entry.name: entry for entry in read_newc(archive)}

    assert stat.S_ISDIR(entries["a"].mode)
    assert entries["a/file"].data == b"content"


def test_garbage_is_rejected():
    with pytest.raises(ValueError, match="magic"):
        read_newc(b"not a cpio archive")
