"""Each store kind, in memory and on SQLite, against a plain-Python reference model over
hypothesis-generated operation sequences; and the changelog each writes, restored into a
fresh store, rebuilds the same contents."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rillet.streams.api import Window, Windowed

from .stores_support import Collector, opened

BACKENDS = ["memory", "sqlite", "sqlite-tiny-cache"]
keys = st.text(alphabet="abcé\x00", max_size=3)
values = st.integers(-(2**63), 2**63 - 1)
times = st.integers(0, 60)


def by_bytes(key: str) -> bytes:
    return key.encode()


# ------------------------------------------------------------------------------ key-value

kv_ops = st.lists(st.one_of(
    st.tuples(st.just("put"), keys, st.one_of(st.none(), values)),
    st.tuples(st.just("delete"), keys, st.none()),
    st.tuples(st.just("range"), keys, keys),
), max_size=60)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60)
@given(ops=kv_ops)
def test_kv_store_matches_a_dict(backend, ops):
    collector = Collector()
    store = opened("kv", backend, collector=collector)
    ref: dict[str, int] = {}
    for op, a, b in ops:
        if op == "put":
            store.put(a, b)
            if b is None:
                ref.pop(a, None)
            else:
                ref[a] = b
        elif op == "delete":
            assert store.delete(a) == ref.pop(a, None)
        else:
            lo, hi = a.encode(), b.encode()
            assert list(store.range(a, b)) == sorted(
                ((k, v) for k, v in ref.items() if lo <= k.encode() <= hi),
                key=lambda kv: by_bytes(kv[0]))
        for k in {a, "a"}:
            assert store.get(k) == ref.get(k)
    assert list(store.all()) == sorted(ref.items(), key=lambda kv: by_bytes(kv[0]))
    assert len(store) == len(ref)

    fresh = opened("kv", backend)
    fresh.restore(collector.changelog())
    assert list(fresh.all()) == list(store.all())


# --------------------------------------------------------------------------------- window

window_ops = st.lists(st.one_of(
    st.tuples(st.just("put"), keys, st.one_of(st.none(), values), times),
    st.tuples(st.just("expire"), keys, st.none(), times),
    st.tuples(st.just("fetch_range"), keys, times, times),
), max_size=60)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dups", [False, True])
@settings(max_examples=50)
@given(ops=window_ops, retention=st.integers(1, 30))
def test_window_store_matches_a_reference(backend, dups, ops, retention):
    collector = Collector()
    store = opened("window", backend, collector=collector, retention_ms=retention,
                   window_size_ms=5, retain_duplicates=dups)
    ref: list[tuple[str, int, int, int]] = []  # (key, start, seq, value)
    seq = 0
    observed = None

    def min_live():
        return -(2**63) if observed is None else observed - retention + 1

    for op, key, a, b in ops:
        if op == "put":
            store.put(key, a, b)
            if b < min_live():
                continue
            if not dups:
                ref = [r for r in ref if (r[0], r[1]) != (key, b)]
            if a is not None:
                seq += 1
                ref.append((key, b, seq if dups else 0, a))
        elif op == "expire":
            store.expire(b)
            observed = b if observed is None else max(observed, b)
            ref = [r for r in ref if r[1] >= min_live()]
        else:
            lo, hi = a, b
            want = sorted((r[1], r[2], r[3]) for r in ref if r[0] == key and lo <= r[1] <= hi)
            assert list(store.fetch_range(key, lo, hi)) == [(s, v) for s, _, v in want]
            first = [v for _, _, v in sorted((r[1], r[2], r[3]) for r in ref
                                             if r[0] == key and r[1] == lo)]
            assert store.fetch(key, lo) == (first[0] if first else None)
    want = sorted(ref, key=lambda r: (r[1], by_bytes(r[0]), r[2]))
    assert list(store.all()) == [(Windowed(k, Window(s, s + 5)), v) for k, s, _, v in want]
    assert list(store.fetch_all(10, 20)) == [
        (Windowed(k, Window(s, s + 5)), v) for k, s, _, v in want if 10 <= s <= 20]

    fresh = opened("window", backend, retention_ms=retention, window_size_ms=5,
                   retain_duplicates=dups)
    fresh.restore(collector.changelog())
    if observed is not None:  # the changelog keeps expired windows: its topic drops them
        fresh.expire(observed)
    assert list(fresh.all()) == list(store.all())


# -------------------------------------------------------------------------------- session

sessions = st.tuples(times, st.integers(0, 10)).map(lambda t: Window(t[0], t[0] + t[1]))
session_ops = st.lists(st.one_of(
    st.tuples(st.just("put"), keys, sessions, st.one_of(st.none(), values)),
    st.tuples(st.just("remove"), keys, sessions, st.none()),
    st.tuples(st.just("expire"), keys, sessions, st.none()),
    st.tuples(st.just("find"), keys, sessions, st.none()),
), max_size=60)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60)
@given(ops=session_ops, retention=st.integers(1, 30))
def test_session_store_matches_a_reference(backend, ops, retention):
    collector = Collector()
    store = opened("session", backend, collector=collector, retention_ms=retention)
    ref: dict[tuple[str, int, int], int] = {}
    observed = None

    def min_live():
        return -(2**63) if observed is None else observed - retention + 1

    for op, key, w, value in ops:
        if op == "put":
            store.put(Windowed(key, w), value)
            if w.end < min_live():
                continue
            if value is None:
                ref.pop((key, w.start, w.end), None)
            else:
                ref[(key, w.start, w.end)] = value
        elif op == "remove":
            store.remove(Windowed(key, w))
            ref.pop((key, w.start, w.end), None)
        elif op == "expire":
            store.expire(w.end)
            observed = w.end if observed is None else max(observed, w.end)
            ref = {k: v for k, v in ref.items() if k[2] >= min_live()}
        else:  # a record at w.start with gap w.end - w.start: the sessions it merges with
            t, gap = w.start, w.end - w.start
            want = sorted((e, s, v) for (k, s, e), v in ref.items()
                          if k == key and e >= t - gap and s <= t + gap)
            assert list(store.find_sessions(key, t - gap, t + gap)) == [
                (Windowed(key, Window(s, e)), v) for e, s, v in want]
            assert store.fetch_session(key, w.start, w.end) == ref.get(
                (key, w.start, w.end))
    assert list(store.fetch("a")) == [
        (Windowed("a", Window(s, e)), v)
        for (k, s, e), v in sorted(ref.items(), key=lambda i: (i[0][2], i[0][1]))
        if k == "a"]
    want = sorted(ref.items(), key=lambda i: (i[0][2], by_bytes(i[0][0]), i[0][1]))
    assert list(store.all()) == [(Windowed(k, Window(s, e)), v) for (k, s, e), v in want]

    fresh = opened("session", backend, retention_ms=retention)
    fresh.restore(collector.changelog())
    if observed is not None:
        fresh.expire(observed)
    assert list(fresh.all()) == list(store.all())
