"""Retention at its boundary, as Kafka's stores: expire(stream_time) drops a window whose
start (a session whose end) is <= stream_time - retention_ms and ignores later puts to it;
an SQLite store reopened from its file expires what it holds."""

from __future__ import annotations

import pytest

from rillet.streams.api import Window, Windowed

from .stores_support import Collector, opened

BACKENDS = ["memory", "sqlite", "sqlite-tiny-cache"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_retention_boundary(backend):
    collector = Collector()
    store = opened("window", backend, collector=collector, retention_ms=10, window_size_ms=5)
    for start in (89, 90, 91):
        store.put("k", start, start)
    store.expire(100)
    assert list(store.fetch_range("k", 0, 200)) == [(91, 91)]
    sent = len(collector.sent)
    store.put("k", 1, 90)  # closed: ignored, not logged
    store.put("k", 2, 91)
    assert store.fetch("k", 90) is None and store.fetch("k", 91) == 2
    assert len(collector.sent) == sent + 1
    store.expire(50)  # stream time never goes back
    assert store.fetch("k", 91) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_session_retention_boundary(backend):
    store = opened("session", backend, retention_ms=10)
    for end in (89, 90, 91):
        store.put(Windowed("k", Window(end - 5, end)), end)
    store.expire(100)
    assert [v for _, v in store.fetch("k")] == [91]
    store.put(Windowed("k", Window(80, 90)), 1)  # closed: ignored
    assert [v for _, v in store.fetch("k")] == [91]


def test_a_reopened_sqlite_window_store_expires_what_its_file_holds(tmp_path):
    store = opened("window", "sqlite", str(tmp_path), retention_ms=10)
    for start in (10, 20, 30):
        store.put("k", start, start)
    store.commit(3)
    store.close()
    again = opened("window", "sqlite", str(tmp_path), retention_ms=10)
    again.expire(35)
    assert list(again.fetch_range("k", 0, 100)) == [(30, 30)]
    again.close()


def test_a_window_store_without_retention_keeps_everything():
    store = opened("window", "memory")
    store.put("k", 1, 0)
    store.expire(10**12)
    assert store.fetch("k", 0) == 1
