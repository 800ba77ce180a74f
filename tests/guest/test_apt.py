"""A private apt configuration for trixie leaves the host's apt alone."""

from __future__ import annotations

from pathlib import Path

from hostfs.guest.apt import has_lists, private_apt_options


def test_private_apt_reads_only_its_own_trixie_sources(tmp_path: Path):
    options = private_apt_options(tmp_path / "apt", "trixie")

    settings = dict(word.split("=", 1) for word in options if word != "-o")
    assert settings["Dir::Etc::SourceParts"] == "-"
    assert Path(settings["Dir::State"]).is_relative_to(tmp_path)
    sources = Path(settings["Dir::Etc::SourceList"]).read_text()
    assert " trixie main" in sources and "bookworm" not in sources
    assert not has_lists(tmp_path / "apt")
