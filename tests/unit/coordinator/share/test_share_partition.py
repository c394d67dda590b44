"""The share-partition core (coordinator/share/partition.py): per-record semantics against an
injected clock, and properties checked over random operation sequences (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator.share.backoff import backoff_ms, nominal_backoff_ms
from rillet.coordinator.share.inflight import (
    ACKNOWLEDGED,
    ACQUIRED,
    ARCHIVED,
    AVAILABLE,
    DEAD_LETTER_PENDING,
)
from rillet.coordinator.share.partition import (
    ACK_ACCEPT,
    ACK_GAP,
    ACK_REJECT,
    ACK_RELEASE,
    ACK_RENEW,
    Ack,
    Acquired,
    SharePartition,
    SharePartitionConfig,
    ShareStateError,
    StateBatch,
)

CFG = SharePartitionConfig(record_lock_duration_ms=1000, delivery_count_limit=3,
                           max_record_locks=50, retry_backoff_ms=100,
                           retry_backoff_multiplier=2.0, retry_backoff_max_ms=1000,
                           dead_letter_topic="t.dlq")


def sp(start: int = 0, cfg: SharePartitionConfig = CFG, batches=()) -> SharePartition:
    return SharePartition("g", "t", 0, cfg, start, tuple(batches))


def states(p: SharePartition) -> dict[int, tuple[int, int]]:
    """offset -> (state, delivery count) for every offset in flight."""
    return {o: (r.state, r.delivery_count) for r in p.ranges.items
            for o in range(r.first, r.last + 1)}


def test_acquire_new_records_up_to_the_high_watermark_and_max_records():
    p = sp(10)
    assert p.acquire("a", 15, 100, 0) == [Acquired(10, 14, 1)]
    assert p.acquire("b", 15, 100, 0) == []  # nothing else below the HW
    assert p.acquire("b", 30, 3, 0) == [Acquired(15, 17, 1)]
    assert p.end_offset == 18


def test_batch_optimized_acquires_to_the_end_of_the_batch_the_budget_ends_in():
    p = sp()
    ends = [4, 10, 12]  # stored batches [0, 4), [4, 10), [10, 12)
    # 5 asked: batch [4, 10) is finished
    assert p.acquire("a", 12, 5, 0, batch_ends=ends) == [Acquired(0, 9, 1)]
    # 2 asked, ending exactly on a batch end: nothing added
    assert p.acquire("b", 12, 2, 0, from_offset=10, batch_ends=ends) == [Acquired(10, 11, 1)]
    q = sp()
    assert q.acquire("a", 8, 5, 0, batch_ends=ends) == [Acquired(0, 7, 1)]
    # never past the high watermark, even inside a batch


def test_accept_moves_the_start_offset_and_is_never_acquired_again():
    p = sp()
    p.acquire("a", 10, 10, 0)
    ch = p.acknowledge("a", [Ack(0, 4, (ACK_ACCEPT,))], 5, 0.0)
    assert ch.dirty and not ch.dead_letters
    assert p.start_offset == 5
    p.expire_locks(10_000)  # 5..9 come back, 0..4 never
    got = p.acquire("b", 10, 100, 10_001)
    assert got == [Acquired(5, 9, 2)]


def test_release_at_once_delayed_and_with_backoff_never_early():
    p = sp()
    p.acquire("a", 3, 10, 0)
    p.acknowledge("a", [Ack(0, 0, (ACK_RELEASE,), delay_ms=0),
                        Ack(1, 1, (ACK_RELEASE,), delay_ms=500),
                        Ack(2, 2, (ACK_RELEASE,), delay_ms=-1)], 1000, 0.5)
    assert p.acquire("b", 3, 10, 1000) == [Acquired(0, 0, 2)]
    # offset 2: back-off of delivery 1 = 100 ms, +10% jitter = 110 ms
    assert p.acquire("b", 3, 10, 1109) == []
    assert p.acquire("b", 3, 10, 1110) == [Acquired(2, 2, 2)]
    assert p.acquire("b", 3, 10, 1499) == []
    assert p.acquire("b", 3, 10, 1500) == [Acquired(1, 1, 2)]


def test_reject_and_delivery_limit_dead_letter_then_archive():
    p = sp()
    p.acquire("a", 2, 10, 0)
    ch = p.acknowledge("a", [Ack(0, 0, (ACK_REJECT,), reason="bad url")], 1, 0.0)
    assert [(d.first_offset, d.reason) for d in ch.dead_letters] == [(0, "bad url")]
    assert states(p)[0] == (DEAD_LETTER_PENDING, 1)
    assert p.start_offset == 0  # the SPSO waits for the dead-letter write
    assert p.to_state()[1][0].reason == "bad url"
    for now in (2000, 4000):  # offset 1: lock expires twice more (delivery 2, 3)
        p.expire_locks(now)
        assert p.acquire("a", 2, 10, now)[0].first_offset == 1
    ch = p.expire_locks(9000)
    assert [(d.first_offset, d.delivery_count, d.reason) for d in ch.dead_letters] == [
        (1, 3, "delivery count limit reached")]
    assert p.dead_lettered(0, 1).dirty
    assert p.start_offset == 2 and not p.ranges.items


def test_no_dead_letter_topic_archives_directly():
    from dataclasses import replace

    p = sp(cfg=replace(CFG, dead_letter_topic=""))
    p.acquire("a", 1, 10, 0)
    assert not p.acknowledge("a", [Ack(0, 0, (ACK_REJECT,))], 1, 0).dead_letters
    assert p.start_offset == 1


def test_renew_restarts_the_lock():
    p = sp()
    p.acquire("a", 1, 10, 0)
    p.acknowledge("a", [Ack(0, 0, (ACK_RENEW,))], 900, 0)
    assert p.expire_locks(1500) == p.expire_locks(1500)  # nothing expired at 1500
    assert states(p)[0] == (ACQUIRED, 1)
    assert p.expire_locks(1900).released


def test_bad_acknowledgements_change_nothing():
    p = sp()
    p.acquire("a", 4, 2, 0)
    p.acquire("b", 4, 2, 0)
    before = p.to_state(), states(p)
    cases = [
        ([Ack(0, 2, (ACK_ACCEPT,))], "INVALID_RECORD_STATE"),  # 2 is b's
        ([Ack(0, 0, (ACK_ACCEPT,)), Ack(3, 3, (ACK_ACCEPT,))], "INVALID_RECORD_STATE"),
        ([Ack(9, 9, (ACK_ACCEPT,))], "INVALID_RECORD_STATE"),  # never acquired
        ([Ack(0, 1, (ACK_RELEASE,), delay_ms=-5)], "INVALID_REQUEST"),
        ([Ack(0, 1, (7,))], "INVALID_REQUEST"),
        ([Ack(0, 1, (1, 1, 1))], "INVALID_REQUEST"),
        ([Ack(0, 1, (1,)), Ack(1, 1, (1,))], "INVALID_REQUEST"),
    ]
    for acks, code in cases:
        with pytest.raises(ShareStateError) as e:
            p.acknowledge("a", acks, 1, 0)
        assert e.value.code == code
        assert (p.to_state(), states(p)) == before


def test_per_offset_types_split_a_range_and_gaps_archive():
    p = sp()
    p.acquire("a", 5, 10, 0)
    p.acknowledge("a", [Ack(0, 4, (ACK_ACCEPT, ACK_RELEASE, ACK_GAP, ACK_ACCEPT, ACK_RELEASE),
                            delay_ms=0)], 1, 0)
    s = states(p)
    assert s == {1: (AVAILABLE, 1), 2: (ARCHIVED, 1), 3: (ACKNOWLEDGED, 1), 4: (AVAILABLE, 1)}
    assert p.start_offset == 1


def test_max_record_locks_bounds_the_end_offset():
    p = sp()
    assert p.acquire("a", 1000, 1000, 0) == [Acquired(0, 49, 1)]
    p.acknowledge("a", [Ack(0, 9, (ACK_ACCEPT,))], 1, 0)
    assert p.acquire("a", 1000, 1000, 0) == [Acquired(50, 59, 1)]


def test_state_round_trip_keeps_counts_delays_and_pending_dead_letters():
    p = sp()
    p.acquire("a", 6, 10, 0)
    p.acknowledge("a", [Ack(0, 5, (ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_RENEW, ACK_ACCEPT,
                                   ACK_RELEASE), delay_ms=5000, reason="r")], 10, 0)
    start, batches = p.to_state()
    q = SharePartition.from_state("g", "t", 0, CFG, start, batches)
    assert q.start_offset == 1 and q.end_offset == 6
    s = states(q)
    assert s[1] == (AVAILABLE, 1) and s[2] == (DEAD_LETTER_PENDING, 1)
    assert s[3] == (AVAILABLE, 1)  # was acquired: a new leader offers it again
    assert [d.first_offset for d in q.dead_letter_pending()] == [2]
    assert q.acquire("b", 6, 10, 4000) == [Acquired(3, 3, 2)]  # 1 and 5 delayed to 5010
    assert q.acquire("b", 6, 10, 5010) == [Acquired(1, 1, 2), Acquired(5, 5, 2)]


def test_loaded_state_fills_gaps_and_ignores_offsets_below_the_start():
    q = sp(5, batches=[StateBatch(0, 6, ACKNOWLEDGED, 1), StateBatch(9, 9, AVAILABLE, 2)])
    assert q.start_offset == 7
    assert states(q) == {7: (AVAILABLE, 0), 8: (AVAILABLE, 0), 9: (AVAILABLE, 2)}


def test_reset_refused_while_records_are_held():
    p = sp()
    p.acquire("a", 3, 10, 0)
    with pytest.raises(ShareStateError):
        p.reset(100)
    p.release_member("a")
    p.reset(100)
    assert (p.start_offset, p.end_offset, len(p.ranges)) == (100, 100, 0)


def test_describe_counts():
    p = sp()
    p.acquire("a", 10, 6, 0)
    p.acknowledge("a", [Ack(0, 3, (ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_RELEASE),
                            delay_ms=100)], 0, 0)
    d = p.describe(10, 50)
    assert (d.start_offset, d.end_offset, d.acquired, d.delayed, d.dead_lettered) == (
        1, 6, 2, 2, 1)
    assert d.available == 4 and d.lag == 9


def test_backoff_grows_caps_and_jitter_only_adds():
    assert [nominal_backoff_ms(n, 1000, 2.0, 60_000) for n in (1, 2, 3, 7, 100)] == [
        1000, 2000, 4000, 60_000, 60_000]
    assert backoff_ms(1, 1000, 2.0, 60_000, 0.0) == 1000
    assert backoff_ms(1, 1000, 2.0, 60_000, 0.999) <= 1200
    assert backoff_ms(10_000, 1000, 2.0, 60_000, 0.5) == 66_000


# ------------------------------------------------------------------------------ properties

MEMBERS = ("a", "b", "c")
ACQUIRE = st.tuples(st.just("acquire"), st.sampled_from(MEMBERS), st.integers(1, 8))
ACK = st.tuples(st.just("ack"), st.sampled_from(MEMBERS), st.integers(0, 4),
                st.sampled_from((-1, 0, 30, 300)), st.integers(0, 3))
op = st.one_of(
    ACQUIRE, ACK, ACQUIRE, ACK,
    st.tuples(st.just("expire")),
    st.tuples(st.just("leave"), st.sampled_from(MEMBERS)),
    st.tuples(st.just("dlq")),
    st.tuples(st.just("reload")),
    st.tuples(st.just("hw"), st.integers(0, 5)),
    st.tuples(st.just("time"), st.sampled_from((1, 40, 100, 500))),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, min_size=10, max_size=80), st.floats(0, 0.999))
def test_properties(ops, jitter):
    cfg = SharePartitionConfig(record_lock_duration_ms=400, delivery_count_limit=3,
                               max_record_locks=12, retry_backoff_ms=50,
                               retry_backoff_multiplier=2.0, retry_backoff_max_ms=200,
                               dead_letter_topic="t.dlq")
    p = SharePartition("g", "t", 0, cfg, 0)
    now, hw = 0, 0
    holder: dict[int, str] = {}  # offset -> member holding it (our model)
    accepted: set[int] = set()
    counts: dict[int, int] = {}
    not_before: dict[int, int] = {}  # offset -> earliest time it may be acquired again
    for o in ops:
        kind = o[0]
        if kind == "acquire":
            for a in p.acquire(o[1], hw, o[2], now):
                for off in range(a.first_offset, a.last_offset + 1):
                    assert off not in holder, "two members hold one offset"
                    assert off not in accepted, "an accepted offset was acquired again"
                    assert off < hw
                    assert now >= not_before.get(off, 0), "back-off delivered early"
                    assert a.delivery_count > counts.get(off, 0)
                    counts[off] = a.delivery_count
                    holder[off] = o[1]
        elif kind == "ack":
            idx, delay, t = o[2], o[3], o[4]
            held = sorted(holder)
            if not held:
                continue
            off = held[idx % len(held)]
            member = holder[off]
            if o[1] != member:  # someone else's record: refused, nothing changes
                before = p.to_state()
                with pytest.raises(ShareStateError):
                    p.acknowledge(o[1], [Ack(off, off, (ACK_ACCEPT,))], now, jitter)
                assert p.to_state() == before
            ack_type = (ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_RENEW)[t]
            p.acknowledge(member, [Ack(off, off, (ack_type,), delay_ms=delay)], now, jitter)
            if ack_type == ACK_ACCEPT:
                accepted.add(off)
            if ack_type != ACK_RENEW:
                del holder[off]
            if ack_type == ACK_RELEASE and delay != 0:
                floor = delay if delay > 0 else 50 * 2 ** (counts[off] - 1)
                not_before[off] = now + min(floor, 200 if delay < 0 else floor)
        elif kind == "expire":
            p.expire_locks(now)
            for off in list(holder):
                if not any(r.first <= off <= r.last and r.state == ACQUIRED
                           for r in p.ranges.items):
                    del holder[off]
        elif kind == "leave":
            p.release_member(o[1])
            for off in [off for off, m in holder.items() if m == o[1]]:
                del holder[off]
        elif kind == "dlq":
            for d in p.dead_letter_pending():
                p.dead_lettered(d.first_offset, d.last_offset)
        elif kind == "reload":  # a new leader: acquired records are offered again
            start, batches = p.to_state()
            p = SharePartition.from_state("g", "t", 0, cfg, start, batches)
            holder.clear()
        elif kind == "hw":
            hw += o[1]
        else:
            now += o[1]
        # invariants after every step
        items = p.ranges.items
        for a, b in zip(items, items[1:], strict=False):
            assert a.last + 1 == b.first, "ranges must be contiguous"
        if items:
            assert items[0].first == p.start_offset and items[-1].last + 1 == p.end_offset
            assert items[0].state not in (ACKNOWLEDGED, ARCHIVED), "SPSO behind a done prefix"
        assert p.end_offset - p.start_offset <= cfg.max_record_locks
        for r in items:
            for off in range(r.first, r.last + 1):
                assert r.delivery_count >= counts.get(off, 0) - 0, "delivery count shrank"
                if r.state == ACQUIRED:
                    assert holder.get(off) == r.member_id
        for off in accepted:
            assert off < p.start_offset or any(
                r.first <= off <= r.last and r.state == ACKNOWLEDGED for r in items)
        # SPSO never passes an unfinished record: every offset below it is accepted/archived
        for off in range(p.start_offset):
            assert off not in holder


def test_neighbouring_acknowledgements_of_one_kind_are_applied_as_one_range():
    p = sp()
    p.acquire("a", 6, 10, 0)
    acks = [Ack(0, 0, (ACK_ACCEPT,)), Ack(1, 1, (ACK_ACCEPT,)), Ack(2, 3, (ACK_RELEASE, ACK_ACCEPT),
            delay_ms=0), Ack(4, 4, (ACK_RELEASE,), delay_ms=0), Ack(5, 5, (ACK_RELEASE,))]
    p.acknowledge("a", acks, 1, 0.0)
    assert states(p) == {2: (AVAILABLE, 1), 3: (ACKNOWLEDGED, 1), 4: (AVAILABLE, 1),
                         5: (AVAILABLE, 1)}
    assert p.ranges.items[-1].available_at_ms > 0 and p.ranges.items[-2].available_at_ms == 0
    assert [a.first_offset for a in p.acquire("b", 6, 10, 1)] == [2, 4]
    with pytest.raises(ShareStateError):  # overlapping batches are still refused
        p.acknowledge("b", [Ack(2, 2, (ACK_ACCEPT,)), Ack(2, 2, (ACK_ACCEPT,))], 2, 0.0)


def test_a_reason_longer_than_the_state_store_keeps_is_refused():
    p = sp()
    p.acquire("a", 1, 1, 0)
    with pytest.raises(ShareStateError) as e:
        p.acknowledge("a", [Ack(0, 0, (ACK_REJECT,), reason="x" * 1025)], 1, 0.0)
    assert e.value.code == "INVALID_REQUEST"
    assert p.acknowledge("a", [Ack(0, 0, (ACK_REJECT,), reason="x" * 1024)], 1, 0.0).dead_letters


def test_records_gone_from_the_log_are_skipped_whatever_their_state():
    p = sp()
    p.acquire("a", 10, 10, 0)
    p.acknowledge("a", [Ack(2, 2, (ACK_REJECT,)), Ack(3, 3, (ACK_RELEASE,), delay_ms=0)], 0, 0)
    assert p.skip_to(5).dirty
    assert (p.start_offset, p.end_offset) == (5, 10)
    assert min(states(p)) == 5 and not p.dead_letter_pending()
    with pytest.raises(ShareStateError):
        p.acknowledge("a", [Ack(4, 4, (ACK_ACCEPT,))], 1, 0)
    assert p.skip_to(20).dirty and (p.start_offset, p.end_offset, len(p.ranges)) == (20, 20, 0)
    assert p.acquire("b", 22, 10, 1) == [Acquired(20, 21, 1)]
    assert not p.skip_to(3).dirty


def test_acquire_takes_nothing_below_where_the_leaders_read_started():
    # the leader read from offset 5 (nothing was available below); before it acquires, the
    # lock of 0..4 expires: those records are not in the bytes it read, so it leaves them
    p = sp()
    p.acquire("a", 5, 10, 0)
    p.expire_locks(10_000)
    assert p.acquire("b", 8, 10, 10_000, from_offset=5) == [Acquired(5, 7, 1)]
    assert p.acquire("b", 8, 10, 10_000, from_offset=3) == [Acquired(3, 4, 2)]
    assert p.acquire("b", 8, 10, 10_000, from_offset=0) == [Acquired(0, 2, 2)]
