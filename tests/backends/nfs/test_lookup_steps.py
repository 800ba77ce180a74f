"""LOOKUP3 plus GETATTR3 only when the server sent no attributes: one rule, both drivers."""

from __future__ import annotations

from hostfs.backends.nfs import rpc3
from hostfs.backends.nfs.libnfs_c import NfsStat64


def test_attributes_in_the_reply_need_no_getattr() -> None:
    steps = rpc3.lookup_steps(b"dir", b"name")
    assert next(steps).procedure == "LOOKUP3"
    st = NfsStat64(ino=7)
    try:
        steps.send((b"fh", st))
    except StopIteration as finished:
        assert finished.value == (b"fh", st)
    else:
        raise AssertionError("a GETATTR3 was sent")


def test_a_reply_without_attributes_costs_a_getattr() -> None:
    seen: list[bytes] = []
    steps = rpc3.lookup_steps(
        b"dir",
        b"name",
        observe_getattr=lambda filehandle: seen.append(filehandle) or (lambda _data: []),
    )
    next(steps)
    assert steps.send((b"fh", None)).procedure == "GETATTR3"
    assert seen == [b"fh"]
    st = NfsStat64(ino=7)
    try:
        steps.send(st)
    except StopIteration as finished:
        assert finished.value == (b"fh", st)
    else:
        raise AssertionError("the lookup did not end after its GETATTR3")
