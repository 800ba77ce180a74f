"""Options of Rust virtiofsd 1.13 that hostfs has no meaning for: refused, with the reason.

A virtiofsd user who types one gets one line naming it and exit status 2,
never a daemon that quietly does something else.  The list is
``virtiofsd --help`` of 1.13.2 minus what hostfs implements (README, "Flags
shared with virtiofsd").
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

MIGRATION = "there is no --migration-mode file-handles, whose handles it would verify"

REFUSED_SWITCHES = {
    "--posix-acl": "POSIX ACLs are not implemented (no FUSE_POSIX_ACL)",
    "--announce-submounts": "submounts are not announced (no FUSE_SUBMOUNTS); "
    "--no-announce-submounts is what hostfs does",
    "--security-label": "security labels on create are not implemented (no FUSE_SECURITY_CTX)",
    "--syslog": "hostfs logs to stderr only",
    "--migration-verify-handles": MIGRATION,
}

REFUSED_WITH_VALUE: dict[str, str] = {}


class Refuse(argparse.Action):
    """Stop parsing with ``OPTION: reason``."""

    def __init__(self, option_strings: Sequence[str], dest: str, reason: str, **kwargs) -> None:
        self.reason = reason
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error(f"{option_string}: {self.reason}")


def add_refused_options(parser: argparse.ArgumentParser) -> None:
    for option, reason in REFUSED_SWITCHES.items():
        parser.add_argument(option, action=Refuse, nargs=0, reason=reason, help=argparse.SUPPRESS)
    for option, reason in REFUSED_WITH_VALUE.items():
        parser.add_argument(option, action=Refuse, reason=reason, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-announce-submounts",
        action="store_true",
        help="no effect: hostfs never announces submounts (virtiofsd's default is to)",
    )
