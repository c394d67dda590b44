"""The pure fetch-session cache (KIP-227) of the KAFKA listener: coordinator/kafka_fetch_sessions.py."""

from __future__ import annotations

import itertools

import pytest
from rillet.coordinator import kafka_fetch_sessions as S


def _ids(start: int = 100):
    counter = itertools.count(start)
    return lambda: next(counter)


def _parts(n: int, topic: str = "t", offset: int = 0):
    return [((topic, p), S.CachedPartition(offset, 1 << 20)) for p in range(n)]


def _answer(records: bool = False, hw: int = 10, error: int = 0) -> S.PartitionAnswer:
    return S.PartitionAnswer(records, error, hw, hw, 0)


def test_final_epoch_is_sessionless_and_closes_the_named_session() -> None:
    cache = S.FetchSessionCache(10)
    opened = cache.new_context(0, S.INITIAL_EPOCH, _parts(2), (), 0, _ids())
    assert opened.session_id == 100 and opened.full and len(cache) == 1
    ctx = cache.new_context(100, S.FINAL_EPOCH, _parts(3), (), 1, _ids())
    assert ctx.session_id == 0 and ctx.session is None and ctx.full
    assert list(ctx.partitions) == [("t", 0), ("t", 1), ("t", 2)]
    assert len(cache) == 0  # closed


def test_incremental_fetches_update_offsets_forget_and_advance_the_epoch() -> None:
    cache = S.FetchSessionCache(10)
    sid = cache.new_context(0, 0, _parts(3), (), 0, _ids()).session_id
    ctx = cache.new_context(sid, 1, [(("t", 1), S.CachedPartition(7, 99))], [("t", 2)], 5, _ids())
    assert not ctx.full and ctx.error == S.NONE and ctx.session_id == sid
    assert {k: (c.fetch_offset, c.partition_max_bytes) for k, c in ctx.partitions.items()} == {
        ("t", 0): (0, 1 << 20), ("t", 1): (7, 99)}
    assert cache.get(sid).epoch == 2
    # a new partition joins the session with its offset
    ctx = cache.new_context(sid, 2, [(("u", 0), S.CachedPartition(3, 5))], (), 6, _ids())
    assert set(ctx.partitions) == {("t", 0), ("t", 1), ("u", 0)}


def test_session_errors_are_kafkas() -> None:
    cache = S.FetchSessionCache(10)
    sid = cache.new_context(0, 0, _parts(1), (), 0, _ids()).session_id
    assert cache.new_context(sid + 1, 1, (), (), 0, _ids()).error == S.FETCH_SESSION_ID_NOT_FOUND
    assert cache.new_context(0, 3, (), (), 0, _ids()).error == S.FETCH_SESSION_ID_NOT_FOUND
    bad = cache.new_context(sid, 2, _parts(1, offset=9), (), 0, _ids())
    assert bad.error == S.INVALID_FETCH_SESSION_EPOCH
    # the refused request changed nothing: epoch 1 is still the next one, offset still 0
    ok = cache.new_context(sid, 1, (), (), 0, _ids())
    assert ok.error == S.NONE and ok.partitions[("t", 0)].fetch_offset == 0
    assert cache.new_context(sid, 1, (), (), 0, _ids()).error == S.INVALID_FETCH_SESSION_EPOCH


def test_epoch_wraps_to_one() -> None:
    cache = S.FetchSessionCache(10)
    sid = cache.new_context(0, 0, _parts(1), (), 0, _ids()).session_id
    cache.get(sid).epoch = S.MAX_EPOCH
    assert cache.new_context(sid, S.MAX_EPOCH, (), (), 0, _ids()).error == S.NONE
    assert cache.get(sid).epoch == 1


def test_initial_epoch_with_an_id_replaces_that_session() -> None:
    cache = S.FetchSessionCache(10)
    sid = cache.new_context(0, 0, _parts(1), (), 0, _ids(100)).session_id
    again = cache.new_context(sid, 0, _parts(2), (), 1, _ids(200))
    assert again.session_id == 200 and cache.get(sid) is None and len(cache) == 1


def test_session_ids_in_use_or_not_positive_are_drawn_again() -> None:
    cache = S.FetchSessionCache(10)
    draws = iter([5, 5, -3, 0, 6])
    first = cache.new_context(0, 0, _parts(1), (), 0, lambda: next(draws)).session_id
    second = cache.new_context(0, 0, _parts(1), (), 0, lambda: next(draws)).session_id
    assert (first, second) == (5, 6)


def test_incremental_answers_only_what_changed() -> None:
    cache = S.FetchSessionCache(10)
    full = cache.new_context(0, 0, _parts(3), (), 0, _ids())
    session = full.session
    key0, key1, key2 = ("t", 0), ("t", 1), ("t", 2)
    # the full fetch answers everything and remembers what it told
    assert all(session.must_answer(k, _answer(), full=True) for k in (key0, key1, key2))
    cache.new_context(full.session_id, 1, (), (), 1, _ids())
    assert not session.must_answer(key0, _answer(), full=False)  # nothing new
    assert session.must_answer(key1, _answer(records=True), full=False)  # records
    assert session.must_answer(key2, _answer(hw=11), full=False)  # the high watermark moved
    assert not session.must_answer(key2, _answer(hw=11), full=False)  # told already
    assert session.must_answer(key0, _answer(error=6), full=False)  # an error, always
    assert session.must_answer(key0, S.PartitionAnswer(False, 0, 10, 10, 4), full=False)
    # a partition the request named that the session does not hold (an unknown topic id)
    assert session.must_answer(("gone", 0), _answer(error=100), full=False)


def test_partitions_answered_with_records_rotate_to_the_end() -> None:
    cache = S.FetchSessionCache(10)
    full = cache.new_context(0, 0, _parts(3), (), 0, _ids())
    for key in list(full.session.partitions):
        full.session.must_answer(key, _answer(), full=True)
    ctx = cache.new_context(full.session_id, 1, (), (), 1, _ids())
    assert ctx.session.must_answer(("t", 0), _answer(records=True), full=False)
    assert list(cache.new_context(full.session_id, 2, (), (), 2, _ids()).partitions) == [
        ("t", 1), ("t", 2), ("t", 0)]


def test_full_cache_evicts_an_idle_session_first() -> None:
    cache = S.FetchSessionCache(2, eviction_ms=1000)
    a = cache.new_context(0, 0, _parts(5), (), 0, _ids(1)).session_id
    b = cache.new_context(0, 0, _parts(5), (), 100, _ids(2)).session_id
    # not idle long enough and not bigger: no session (full fetches go on)
    none = cache.new_context(0, 0, _parts(5), (), 500, _ids(3))
    assert none.session_id == 0 and none.session is None and none.full and len(none.partitions) == 5
    cache.new_context(a, 1, (), (), 900, _ids())  # a used again: b is the least recent
    c = cache.new_context(0, 0, _parts(1), (), 1200, _ids(4)).session_id
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None
    assert cache.evictions == 1
    # the evicted session's next incremental fetch: the client must start again
    assert cache.new_context(b, 1, (), (), 1200, _ids()).error == S.FETCH_SESSION_ID_NOT_FOUND


def test_full_cache_evicts_the_smallest_session_for_a_bigger_one() -> None:
    cache = S.FetchSessionCache(2, eviction_ms=10_000)
    small = cache.new_context(0, 0, _parts(2), (), 0, _ids(1)).session_id
    big = cache.new_context(0, 0, _parts(8), (), 0, _ids(2)).session_id
    bigger = cache.new_context(0, 0, _parts(5), (), 10, _ids(3)).session_id
    assert bigger == 3 and cache.get(small) is None and cache.get(big) is not None


def test_zero_slots_means_no_sessions_and_negative_is_refused() -> None:
    cache = S.FetchSessionCache(0)
    ctx = cache.new_context(0, 0, _parts(2), (), 0, _ids())
    assert ctx.session_id == 0 and len(cache) == 0 and len(ctx.partitions) == 2
    with pytest.raises(ValueError):
        S.FetchSessionCache(-1)


def test_slots_config_is_validated() -> None:
    from rillet.actors.configs import ConfigError, validate_broker_configs

    assert validate_broker_configs({})["max.incremental.fetch.session.cache.slots"] == "1000"
    assert validate_broker_configs(
        {"max.incremental.fetch.session.cache.slots": "0"})["max.incremental.fetch.session.cache.slots"] == "0"
    with pytest.raises(ConfigError):
        validate_broker_configs({"max.incremental.fetch.session.cache.slots": "-1"})
