"""``hostfs guest`` rejects wrong input with a one-line usage error before booting."""

from __future__ import annotations

import pytest

from hostfs.cli import common, guest


def parse(*argv: str):
    parser = common.ArgumentParser(prog="hostfs")
    guest.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["guest", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "--shared-dir"),
        (("--shared-dir", "/nonexistent/dir"), "not a directory"),
        (("--shared-dir", "nfs://127.0.0.1/x", "--daemon", "virtiofsd"), "only hostfs"),
        (("--shared-dir", "{tmp}", "--workload", "no-such-workload"), "no workload script"),
        (("--shared-dir", "{tmp}", "--boots", "0"), "--boots"),
        (("--shared-dir", "{tmp}", "--env", "NOEQUALS"), "KEY=VALUE"),
        (("--shared-dir", "{tmp}", "--num-request-queues", "0"), "hostfs serves 1..1023"),
        (
            ("--shared-dir", "{tmp}", "--daemon", "virtiofsd", "--num-request-queues", "2"),
            "virtiofsd serves 1..1",
        ),
    ],
    ids=["no-share", "missing-dir", "nfs-virtiofsd", "workload", "boots", "env", "queues", "peer"],
)
def test_usage_errors(tmp_path, argv, message):
    args = parse(*(word.format(tmp=tmp_path) for word in argv))

    with pytest.raises(common.UsageError, match=message):
        guest.run(args)
