"""The history checker must find each anomaly it names, and pass a clean history."""

from __future__ import annotations

import pytest

from tests.history import History, check


def _clean() -> History:
    h = History()
    for i in range(6):
        v = f"v{i}".encode()
        h.send("p1", v)
        h.ack(v, partition=i % 2, offset=i // 2)
    for i in range(6):
        h.read("c1", i % 2, i // 2, f"v{i}".encode())
    h.drain(0)
    h.drain(1)
    return h


def test_clean_history_passes() -> None:
    report = check(_clean())
    assert report.ok, report.summary()
    assert (report.acked, report.read_values) == (6, 6)


def test_lost_acknowledged_record() -> None:
    h = _clean()
    h.reads["c1"] = [r for r in h.reads["c1"] if r[2] != b"v2"]
    report = check(h, assign_mode=False)
    assert report.lost == [b"v2"]
    assert not report.ok


def test_unread_ack_beyond_the_reads_is_not_lost_without_a_drain() -> None:
    h = History()
    h.send("p", b"a")
    h.ack(b"a", 0, 0)
    h.send("p", b"b")
    h.ack(b"b", 0, 1)
    h.read("c", 0, 0, b"a")
    assert check(h).ok
    h.drain(0)
    assert check(h).lost == [b"b"]


def test_duplicate_value_at_two_offsets() -> None:
    h = _clean()
    h.read("c2", 0, 3, b"v0")
    report = check(h)
    assert set(report.duplicate) == {b"v0"}
    assert report.duplicate[b"v0"] == [(0, 0), (0, 3)]


def test_inconsistent_offset() -> None:
    h = _clean()
    h.read("c2", 1, 0, b"v3")
    assert (1, 0) in check(h).inconsistent


def test_reordered_sends() -> None:
    h = History()
    for v in (b"a", b"b", b"c"):
        h.send("p", v)
    h.ack(b"a", 0, 0)
    h.ack(b"b", 0, 2)
    h.ack(b"c", 0, 1)
    report = check(h)
    assert report.reordered == [("p", 0, b"b", b"c")]


def test_unexpected_and_aborted_reads() -> None:
    h = History()
    h.send("p", b"a")
    h.fail(b"a")
    h.send("p", b"b")
    h.info(b"b")
    h.read("c", 0, 0, b"a")
    h.read("c", 0, 1, b"b")
    h.read("c", 0, 2, b"zzz")
    report = check(h)
    assert report.aborted_read == [b"a"]
    assert report.unexpected == [b"zzz"]
    assert not report.lost  # an info send may or may not be present


def test_nonmonotonic_poll_and_skip() -> None:
    h = _clean()
    h.reads["c2"] = [(0, 0, b"v0"), (0, 2, b"v4"), (0, 1, b"v2")]
    report = check(h)
    assert report.nonmonotonic_poll == [("c2", 0, 0, 2), ("c2", 0, 2, 1)]
    assert check(h, assign_mode=False).ok


def test_values_must_be_unique() -> None:
    h = History()
    h.send("p", b"a")
    with pytest.raises(ValueError):
        h.send("q", b"a")
