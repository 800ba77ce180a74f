"""``--xattrmap``: virtiofsd's rule syntax (doc/xattr-mapping.md) parsed and applied."""

from __future__ import annotations

import errno
import os

import pytest

from hostfs.backends.local import LocalBackend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.options import FsOptions
from hostfs.core.xattrmap import PASS_THROUGH, Rule, XattrMap, XattrMapError
from tests.support.core import ROOT

# -- the parser -------------------------------------------------------------


def test_a_single_rule():
    rules = XattrMap.parse(":prefix:client:trusted.:user.virtiofs.:").rules
    assert rules == (Rule("prefix", True, False, b"trusted.", b"user.virtiofs."),)


def test_rules_follow_one_another_and_the_separator_is_each_rules_first_character():
    text = "  :prefix:all::user.virtiofs.:\n  /bad/server//trusted./ |ok|all|||  "
    assert XattrMap.parse(text).rules == (
        Rule("prefix", True, True, b"", b"user.virtiofs."),
        Rule("bad", False, True, b"", b"trusted."),
        Rule("ok", True, True, b"", b""),
    )


def test_map_with_a_key_expands_to_prefix_bad_ok():
    assert XattrMap.parse("/map/trusted./user.virtiofs./").rules == (
        Rule("prefix", True, True, b"trusted.", b"user.virtiofs."),
        Rule("bad", True, True, b"user.virtiofs.", b"trusted."),
        Rule("ok", True, True, b"", b""),
    )


def test_map_without_a_key_is_the_doc_example_1():
    assert XattrMap.parse(":map::user.virtiofs.:") == XattrMap.parse(
        ":prefix:all::user.virtiofs.::bad:all:::"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no rules"),
        ("   ", "no rules"),
        (":prefix:all:trusted.:user.vm.", "rule 1: missing the closing ':'"),
        (":ok:all:::/nope/all///", "rule 2: unknown type 'nope'"),
        (":ok:everywhere:::", "rule 1: unknown scope 'everywhere'"),
        (":map::user.virtiofs.::ok:all:::", "rule 1: 'map' must be the last rule"),
        (":map:a:b:\n:map:c:d:", "rule 1: 'map' must be the last rule"),
    ],
)
def test_malformed_rules(text, message):
    with pytest.raises(XattrMapError, match="^" + message):
        XattrMap.parse(text)


# -- the mapper: the examples of doc/xattr-mapping.md ---------------------------

EXAMPLE_1 = ":prefix:all::user.virtiofs.::bad:all:::"
EXAMPLE_2 = """/prefix/all/trusted./user.virtiofs./
               /bad/server//trusted./
               /bad/client/user.virtiofs.//
               /ok/all///"""
EXAMPLE_3 = """/bad/all/security./security./
               /ok/all///"""


def refusal(xattrmap: XattrMap, name: bytes, **kwargs) -> int:
    with pytest.raises(OSError) as failure:
        xattrmap.to_server(name, **kwargs)
    return failure.value.errno


def test_example_1_prefixes_every_name_and_hides_unprefixed_host_names():
    xattrmap = XattrMap.parse(EXAMPLE_1)
    assert xattrmap.to_server(b"security.selinux") == b"user.virtiofs.security.selinux"
    assert xattrmap.to_server(b"user.a") == b"user.virtiofs.user.a"
    host = [b"user.virtiofs.trusted.x", b"security.selinux", b"user.virtiofs.user.a"]
    assert xattrmap.to_client(host) == [b"trusted.x", b"user.a"]


def test_example_2_prefixes_trusted_and_passes_the_rest():
    xattrmap = XattrMap.parse(EXAMPLE_2)
    assert xattrmap.to_server(b"trusted.overlay.x") == b"user.virtiofs.trusted.overlay.x"
    assert xattrmap.to_server(b"user.a") == b"user.a"
    assert refusal(xattrmap, b"user.virtiofs.trusted.x") == errno.EPERM
    host = [b"user.virtiofs.trusted.overlay.x", b"trusted.host-only", b"user.a"]
    assert xattrmap.to_client(host) == [b"trusted.overlay.x", b"user.a"]


def test_example_2_and_its_map_shorthand_agree():
    long, short = XattrMap.parse(EXAMPLE_2), XattrMap.parse("/map/trusted./user.virtiofs./")
    names = [b"trusted.a", b"user.b", b"security.c", b"user.virtiofs.d"]
    for name in names:
        try:
            expected = long.to_server(name)
        except OSError as error:
            assert refusal(short, name) == error.errno
        else:
            assert short.to_server(name) == expected
    host = [b"user.virtiofs.trusted.a", b"trusted.b", b"user.c", b"security.d"]
    assert short.to_client(host) == long.to_client(host)


def test_example_3_hides_security_both_ways():
    xattrmap = XattrMap.parse(EXAMPLE_3)
    assert refusal(xattrmap, b"security.selinux") == errno.EPERM
    assert xattrmap.to_server(b"user.a") == b"user.a"
    assert xattrmap.to_client([b"security.selinux", b"user.a"]) == [b"user.a"]


def test_getxattr_of_a_bad_name_is_enodata_and_unsupported_is_enotsup():
    xattrmap = XattrMap.parse(":bad:client:trusted.:::unsupported:client:system.:::ok:all:::")
    assert refusal(xattrmap, b"trusted.a", refused=errno.ENODATA) == errno.ENODATA
    assert refusal(xattrmap, b"system.a") == errno.ENOTSUP
    assert refusal(xattrmap, b"system.a", refused=errno.ENODATA) == errno.ENOTSUP


def test_names_no_rule_matches_are_refused_and_hidden():
    xattrmap = XattrMap.parse(":ok:all:user.:user.:")
    assert refusal(xattrmap, b"trusted.a") == errno.EPERM
    assert xattrmap.to_client([b"trusted.a", b"user.b"]) == [b"user.b"]


def test_pass_through_changes_nothing():
    assert PASS_THROUGH.to_server(b"security.x") == b"security.x"
    assert PASS_THROUGH.to_client([b"a.b", b"c.d"]) == [b"a.b", b"c.d"]


# -- through the core, on a real directory ------------------------------------------


@pytest.fixture
async def mapped(share):
    options = FsOptions(xattr=True, xattrmap=XattrMap.parse(":map:security.:user.virtiofs.:"))
    core = FileSystem(LocalBackend.from_path(share), options)
    await core.start()
    yield core
    await core.close()


async def test_the_core_stores_guest_security_names_under_the_prefix(mapped, share):
    path = os.path.join(share, "f")
    open(path, "wb").close()
    os.setxattr(path, "security.host-only", b"h")
    nodeid = (await mapped.lookup(ROOT, ROOT_NODEID, b"f")).nodeid
    await mapped.setxattr(ROOT, nodeid, b"security.guest", b"g", 0)
    await mapped.setxattr(ROOT, nodeid, b"user.plain", b"p", 0)
    assert sorted(os.listxattr(path)) == [
        "security.host-only",
        "user.plain",
        "user.virtiofs.security.guest",
    ]
    assert os.getxattr(path, "user.virtiofs.security.guest") == b"g"
    assert await mapped.getxattr(ROOT, nodeid, b"security.guest") == b"g"
    assert sorted(await mapped.listxattr(ROOT, nodeid)) == [b"security.guest", b"user.plain"]
    with pytest.raises(OSError) as failure:
        await mapped.setxattr(ROOT, nodeid, b"user.virtiofs.security.forged", b"x", 0)
    assert failure.value.errno == errno.EPERM
    with pytest.raises(OSError) as failure:
        await mapped.getxattr(ROOT, nodeid, b"user.virtiofs.security.guest")
    assert failure.value.errno == errno.ENODATA
    await mapped.removexattr(ROOT, nodeid, b"security.guest")
    assert sorted(os.listxattr(path)) == ["security.host-only", "user.plain"]
