"""The rules of hostfs.backends.nfs.listing, with no server: when a directory's
every name is known, and what ends that."""

from __future__ import annotations

from hostfs.backends.nfs import listing
from hostfs.backends.nfs.libnfs_c import NfsStat64
from hostfs.backends.nfs.listing import Listings, NameChange, verifier_of

TTL = 1_000_000_000
D = b"dir-handle"


def attrs(size: int, tick: int) -> NfsStat64:
    return NfsStat64(size=size, mtime=tick, mtime_nsec=5, ctime=tick, ctime_nsec=7)


def made(now: int = 0) -> tuple[Listings, NfsStat64]:
    listings = Listings(TTL)
    st = attrs(0, 100)
    listings.made(D, st, now)
    return listings, st


def test_a_directory_made_here_has_no_names() -> None:
    listings, _ = made()
    assert listings.missing_for(D, b"anything", 10) == TTL - 10
    assert listings.missing_for(b"another-dir", b"anything", 10) == 0


def test_each_matching_change_is_followed_and_renews_the_knowledge() -> None:
    listings, st = made()
    after = attrs(20, 101)
    listings.changed(NameChange(D, b"a", True, (verifier_of(st), after)), 500)
    assert listings.missing_for(D, b"a", 600) == 0
    assert listings.missing_for(D, b"b", 600) == TTL - 100
    gone = attrs(0, 102)
    listings.changed(NameChange(D, b"a", False, (verifier_of(after), gone)), 700)
    assert listings.missing_for(D, b"a", 800) == TTL - 100


def test_a_change_by_someone_else_in_between_ends_it() -> None:
    listings, _ = made()
    theirs = attrs(20, 101)  # another client added a name: our "before" is its "after"
    listings.changed(NameChange(D, b"mine", True, (verifier_of(theirs), attrs(40, 102))), 500)
    assert listings.missing_for(D, b"theirs", 600) == 0
    assert len(listings) == 0


def test_a_change_without_wcc_ends_it() -> None:
    for wcc in (None, (None, attrs(20, 101)), (verifier_of(attrs(0, 100)), None)):
        listings, _ = made()
        listings.changed(NameChange(D, b"a", True, wcc), 500)
        assert listings.missing_for(D, b"b", 600) == 0


def test_it_runs_out_after_the_entry_timeout() -> None:
    listings, st = made()
    assert listings.missing_for(D, b"a", TTL) == 0
    listings, st = made()
    # A matching change after the time ran out does not bring it back.
    listings.changed(NameChange(D, b"a", True, (verifier_of(st), attrs(20, 101))), TTL + 1)
    assert listings.missing_for(D, b"b", TTL + 2) == 0


def test_no_entry_timeout_keeps_nothing() -> None:
    listings = Listings(0)
    listings.made(D, attrs(0, 100), 0)
    assert listings.missing_for(D, b"a", 1) == 0


def test_a_listing_that_differs_ends_it() -> None:
    listings, _ = made()
    listings.listed(D, set())
    assert listings.missing_for(D, b"a", 1) > 0
    listings.listed(D, {b"behind-our-back"})
    assert listings.missing_for(D, b"a", 1) == 0


def test_forget() -> None:
    listings, _ = made()
    listings.forget(D)
    listings.forget(None)
    assert listings.missing_for(D, b"a", 1) == 0


def test_bounded(monkeypatch) -> None:
    monkeypatch.setattr(listing, "MAX_DIRECTORIES", 3)
    monkeypatch.setattr(listing, "MAX_NAMES", 2)
    listings = Listings(TTL)
    for index in range(5):
        listings.made(b"d%d" % index, attrs(0, 100), 0)
    assert len(listings) == 3
    assert listings.missing_for(b"d0", b"a", 1) == 0  # the oldest went first
    assert listings.missing_for(b"d4", b"a", 1) > 0
    before = attrs(0, 100)
    for index in range(3):
        after = attrs(index + 1, 101 + index)
        listings.changed(NameChange(b"d4", b"n%d" % index, True, (verifier_of(before), after)), 2)
        before = after
    assert listings.missing_for(b"d4", b"zz", 3) == 0  # passed MAX_NAMES: forgotten
    # The budget is for all directories together, and forgetting gives it back.
    listings.made(b"d5", attrs(0, 100), 0)
    before = attrs(0, 100)
    for index in range(2):
        after = attrs(index + 1, 101 + index)
        listings.changed(NameChange(b"d5", b"n%d" % index, True, (verifier_of(before), after)), 2)
        before = after
    assert listings.missing_for(b"d5", b"n0", 3) == 0
    assert listings.missing_for(b"d5", b"zz", 3) > 0
