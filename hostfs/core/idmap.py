"""``--translate-uid`` / ``--translate-gid``: guest ids as the host knows them.

Syntax and meaning are virtiofsd 1.13's (``--help``; src/soft_idmap/): each
flag is ``TYPE:A:B:COUNT`` (``forbid-guest:A:COUNT``), repeatable:

- ``guest:G:H:N``         guest ids G..G+N-1 act as host ids H..H+N-1;
- ``host:H:G:N``          host ids H..H+N-1 are shown to the guest as G..G+N-1;
- ``squash-guest:G:H:N``  guest ids G..G+N-1 all act as host id H;
- ``squash-host:H:G:N``   host ids H..H+N-1 are all shown as guest id G;
- ``map:G:H:N``           both ``guest:G:H:N`` and ``host:H:G:N``;
- ``forbid-guest:G:N``    guest ids G..G+N-1 may not act on the share: EPERM.

An id no range covers maps to itself; ranges of one direction may not overlap.
The separator is the first character after the type word, as in virtiofsd.
Sans-I/O: ids in, ids or errno out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hostfs.core.types import Caller, SetattrChanges, Stat

__all__ = [
    "ACTING",
    "IDENTITY",
    "HostCaller",
    "IdMap",
    "IdMapError",
    "IdMapping",
    "translate_callers",
]

_ID_LIMIT = 1 << 32
"""uid_t and gid_t are 32 bits wide."""


class IdMapError(ValueError):
    """A malformed ``--translate-*`` value; the message is one line."""


@dataclass(frozen=True, slots=True)
class Span:
    """Ids ``start .. start+count-1`` go to ``target`` (+offset, or all to it if ``squash``);
    ``target`` None forbids them."""

    start: int
    count: int
    target: int | None
    squash: bool = False

    def apply(self, value: int) -> int:
        if self.target is None:
            raise OSError(errno.EPERM, f"id {value} is forbidden (forbid-guest)")
        return self.target if self.squash else self.target + value - self.start


_TYPES = {
    # type: (directions it fills, numbers it takes, squash)
    "guest": (("to_host",), 3, False),
    "host": (("to_guest",), 3, False),
    "squash-guest": (("to_host",), 3, True),
    "squash-host": (("to_guest",), 3, True),
    "map": (("to_host", "to_guest"), 3, False),
    "forbid-guest": (("to_host",), 2, False),
}


@dataclass(frozen=True, slots=True)
class IdMap:
    """One kind of id (uids or gids) in both directions."""

    to_host: tuple[Span, ...] = ()
    to_guest: tuple[Span, ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> IdMap:
        spans: dict[str, list[Span]] = {"to_host": [], "to_guest": []}
        for spec in specs:
            kind, numbers = _split(spec)
            if kind not in _TYPES:
                raise IdMapError(f"{spec!r}: unknown type {kind!r} ({', '.join(_TYPES)})")
            directions, fields, squash = _TYPES[kind]
            if len(numbers) != fields:
                raise IdMapError(f"{spec!r}: {kind} takes {fields} numbers, not {len(numbers)}")
            if kind == "forbid-guest":
                (start, count), target = numbers, None
            else:
                start, target, count = numbers
            for direction in directions:
                if direction == "to_guest" and kind == "map":
                    assert target is not None  # only forbid-guest has none, and it is one-way
                    span = Span(target, count, start)  # the reverse of the guest range
                else:
                    span = Span(start, count, target, squash)
                _check(spec, span, spans[direction])
                spans[direction].append(span)
        return cls(tuple(spans["to_host"]), tuple(spans["to_guest"]))

    def host(self, guest_id: int) -> int:
        """The host id a guest id acts as (OSError EPERM for a forbidden one)."""
        return _lookup(self.to_host, guest_id)

    def guest(self, host_id: int) -> int:
        """The id the guest is shown for a host id."""
        return _lookup(self.to_guest, host_id)


class HostCaller(Caller):
    """A :class:`Caller` already translated to host ids (never translated twice)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class IdMapping:
    """uids and gids together: what the core applies to callers, chowns and attributes."""

    uids: IdMap = IdMap()
    gids: IdMap = IdMap()
    is_identity: bool = dataclasses.field(init=False, repr=False, compare=False)
    """No id changes in either direction: read on every entry and attribute reply, so
    worked out once, not a property (a call the attribute read enters from C)."""

    def __post_init__(self) -> None:
        identity = not (
            self.uids.to_host or self.uids.to_guest or self.gids.to_host or self.gids.to_guest
        )
        object.__setattr__(self, "is_identity", identity)

    def caller_to_host(self, caller: Caller) -> HostCaller:
        if isinstance(caller, HostCaller):
            return caller
        groups = tuple(self._host_groups(caller.groups))
        return HostCaller(
            self.uids.host(caller.uid), self.gids.host(caller.gid), caller.pid, groups
        )

    def _host_groups(self, groups: Iterable[int]) -> Iterator[int]:
        """Supplementary groups as the host knows them; a forbidden one is left out (it
        could only grant access, never take any away)."""
        for group in groups:
            with contextlib.suppress(OSError):
                yield self.gids.host(group)

    def changes_to_host(self, changes: SetattrChanges) -> SetattrChanges:
        """chown(2) to guest ids is a chown to the host ids they act as."""
        if changes.uid is not None:
            changes.uid = self.uids.host(changes.uid)
        if changes.gid is not None:
            changes.gid = self.gids.host(changes.gid)
        return changes

    def stat_to_guest(self, st: Stat) -> Stat:
        if self.is_identity:
            return st
        return st._replace(uid=self.uids.guest(st.uid), gid=self.gids.guest(st.gid))


IDENTITY = IdMapping()
"""No ``--translate-*``: ids pass unchanged, as virtiofsd."""


ACTING = frozenset({"symlink", "mknod", "mkdir", "create", "open", "setattr", "access"})
"""The core operations that hand their caller to the backend or judge permissions
by it: there, and only there, the caller is translated (a forbidden one gets
EPERM), as virtiofsd switches credentials only to create and to change owners.
Other requests (reads, FORGET, RELEASE) never fail for who sent them."""


def translate_callers(fs: object, mapping: IdMapping) -> None:
    """Put the caller (and a chown's ids) translation in front of ``fs``'s ACTING operations."""
    for name in ACTING:
        setattr(fs, name, _translated(mapping, getattr(fs, name), chown=name == "setattr"))


def _translated(
    mapping: IdMapping, operation: Callable[..., Awaitable[object]], *, chown: bool
) -> Callable[..., Awaitable[object]]:
    # args are the operation's own: a setattr's first is its SetattrChanges.
    async def translated(caller: Caller, nodeid: int, *args: Any, **kwargs: object) -> object:
        if chown and not isinstance(caller, HostCaller):
            args = (mapping.changes_to_host(args[0]), *args[1:])
        return await operation(mapping.caller_to_host(caller), nodeid, *args, **kwargs)

    return translated


def _split(spec: str) -> tuple[str, list[int]]:
    """``type<sep>n<sep>n...``: the type word is letters, digits, ``-`` and ``_``."""
    match = re.fullmatch(r"([A-Za-z0-9_-]*)(\W)(.*)", spec, re.DOTALL)
    if match is None or match.group(2) in "-_":
        raise IdMapError(f"{spec!r}: expected TYPE:FIRST:TARGET:COUNT")
    kind, separator, rest = match.groups()
    numbers = []
    for field in rest.split(separator):
        if not field.isdigit() or int(field) >= _ID_LIMIT:
            raise IdMapError(f"{spec!r}: {field!r} is not an id (0 .. {_ID_LIMIT - 1})")
        numbers.append(int(field))
    return kind.lower(), numbers


def _check(spec: str, span: Span, others: list[Span]) -> None:
    if span.count == 0:
        raise IdMapError(f"{spec!r}: the count must be at least 1")
    ends = [span.start + span.count]
    if span.target is not None and not span.squash:
        ends.append(span.target + span.count)
    if max(ends) > _ID_LIMIT:
        raise IdMapError(f"{spec!r}: the range goes past {_ID_LIMIT - 1}")
    for other in others:
        if span.start < other.start + other.count and other.start < span.start + span.count:
            raise IdMapError(f"{spec!r}: overlaps another range of the same direction")


def _lookup(spans: tuple[Span, ...], value: int) -> int:
    for span in spans:
        if span.start <= value < span.start + span.count:
            return span.apply(value)
    return value
