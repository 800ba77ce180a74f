"""``--help`` of every command reads as text: no reST markup from the docstrings."""

from __future__ import annotations

import argparse

import pytest

from hostfs.cli import build_parser, serve
from hostfs.cli.common import ArgumentParser, plain_text


def _parsers() -> dict[str, argparse.ArgumentParser]:
    main = build_parser()
    found = {"hostfs": main}
    for action in main._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update({f"hostfs {name}": sub for name, sub in action.choices.items()})
    standalone = ArgumentParser(prog="hostfs-vhost-user-fs", description=serve.__doc__)
    found["hostfs-vhost-user-fs"] = standalone
    return found


PARSERS = _parsers()


def test_every_subcommand_is_covered() -> None:
    assert {"hostfs guest", "hostfs serve", "hostfs mount", "hostfs install-vhost-user"} <= set(
        PARSERS
    )


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_shows_no_rest_markup(name: str) -> None:
    text = PARSERS[name].format_help()
    assert "``" not in text and ":mod:`" not in text and ":class:`" not in text, text


def test_plain_text_keeps_the_words() -> None:
    assert plain_text("``hostfs guest``: see :mod:`hostfs.guest` and :class:`~a.B`") == (
        "hostfs guest: see hostfs.guest and a.B"
    )
