"""``--xattrmap``: the guest's extended attribute names as stored on the host.

The rule syntax and meaning are virtiofsd's (doc/xattr-mapping.md of
virtiofsd 1.13), so a virtiofsd command line works unchanged.  A rule is
``:type:scope:key:prepend:`` where the first character (``:`` here) is the
rule's separator; rules follow one another, white space between them allowed:

- ``prefix``: a client name starting with ``key`` is stored as
  ``prepend + name``; a server name starting with ``prepend`` is listed
  with ``prepend`` stripped;
- ``ok``: the name passes unchanged;
- ``bad``: a client name is refused (EPERM; ENODATA for getxattr), a
  server name is hidden from listxattr;
- ``unsupported``: as ``bad``, but the client gets ENOTSUP;
- ``map:key:prepend``: shorthand, only as the last rule, for
  ``prefix`` + (``bad`` for the prepended names and the unprefixed host ones
  + ``ok`` for the rest, or just ``bad`` when ``key`` is empty).

The scope is ``client`` (match ``key`` against names in get/set/removexattr),
``server`` (match ``prepend`` against names from listxattr) or ``all``.  The
first matching rule decides.  A name no rule matches is refused or hidden
(virtiofsd aborts the daemon there; the guest must not be able to do that).
Sans-I/O: names in, names or errno out.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["PASS_THROUGH", "Rule", "XattrMap", "XattrMapError"]

_TYPES = ("prefix", "ok", "bad", "unsupported", "map")
_SCOPES = {"client": (True, False), "server": (False, True), "all": (True, True)}
_REFUSALS = {"bad": errno.EPERM, "unsupported": errno.ENOTSUP}


class XattrMapError(ValueError):
    """A malformed rule string; the message is one line naming the rule."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One expanded rule: ``kind`` is prefix, ok, bad or unsupported."""

    kind: str
    client: bool
    server: bool
    key: bytes
    prepend: bytes


@dataclass(frozen=True, slots=True)
class XattrMap:
    """An ordered rule list; :meth:`parse` reads virtiofsd's syntax."""

    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, text: str) -> XattrMap:
        rules: list[Rule] = []
        rest = text.strip()
        number = 0
        while rest:
            number += 1
            fields, rest = _split_rule(rest, number)
            kind = fields[0]
            if kind == "map":
                if rest:
                    raise XattrMapError(f"rule {number}: 'map' must be the last rule")
                rules.extend(_expand_map(fields[1], fields[2]))
            else:
                _, scope, key, prepend = fields
                if scope not in _SCOPES:
                    raise XattrMapError(
                        f"rule {number}: unknown scope {scope!r} (client, server or all)"
                    )
                rules.append(Rule(kind, *_SCOPES[scope], os.fsencode(key), os.fsencode(prepend)))
            rest = rest.lstrip()
        if not rules:
            raise XattrMapError("no rules")
        return cls(tuple(rules))

    def to_server(self, name: bytes, *, refused: int = errno.EPERM) -> bytes:
        """The host's name for the guest's ``name``, or OSError for a refused one.

        ``refused`` is the errno of a ``bad`` match: EPERM, except getxattr,
        which virtiofsd answers with ENODATA (the name does not exist for the guest).
        """
        rule = next((r for r in self.rules if r.client and name.startswith(r.key)), None)
        if rule is None or rule.kind in _REFUSALS:
            code = refused if rule is None or rule.kind == "bad" else _REFUSALS[rule.kind]
            raise OSError(code, f"extended attribute {name!r} is refused (--xattrmap)")
        return rule.prepend + name if rule.kind == "prefix" else name

    def to_client(self, names: Iterable[bytes]) -> list[bytes]:
        """The guest's view of a host listxattr: names renamed, hidden ones dropped."""
        shown = []
        for name in names:
            rule = next((r for r in self.rules if r.server and name.startswith(r.prepend)), None)
            if rule is None or rule.kind in _REFUSALS:
                continue
            shown.append(name[len(rule.prepend) :] if rule.kind == "prefix" else name)
        return shown


PASS_THROUGH = XattrMap((Rule("ok", True, True, b"", b""),))
"""No ``--xattrmap``: every name as the guest spells it, as virtiofsd."""


def _split_rule(text: str, number: int) -> tuple[list[str], str]:
    """``text`` starts a rule: its fields up to the separator closing the last
    one a rule of its type has, and the text after it."""
    separator, text = text[0], text[1:]
    fields: list[str] = []
    while True:
        field, found, text = text.partition(separator)
        if not found:
            raise XattrMapError(f"rule {number}: missing the closing {separator!r}")
        fields.append(field)
        if fields[0] not in _TYPES:
            raise XattrMapError(
                f"rule {number}: unknown type {fields[0]!r} (prefix, ok, bad, unsupported, map)"
            )
        if len(fields) == (3 if fields[0] == "map" else 4):
            return fields, text


def _expand_map(key: str, prepend: str) -> list[Rule]:
    """``:map:key:prepend:`` as the rules doc/xattr-mapping.md says it stands for."""
    key_b, prepend_b = os.fsencode(key), os.fsencode(prepend)
    rules = [Rule("prefix", True, True, key_b, prepend_b)]
    if key_b:
        # Hide host names that look like guest ones; keep the guest off the prefix.
        rules.append(Rule("bad", True, True, prepend_b, key_b))
        rules.append(Rule("ok", True, True, b"", b""))
    else:
        rules.append(Rule("bad", True, True, b"", b""))
    return rules
