"""What the stores send to their changelog (Kafka's encodings, the task's partition, the
runtime's timestamps), and restoring it: into a fresh store, and on top of a local SQLite
file from its checkpoint (the restart path: replay only what the file lacks)."""

from __future__ import annotations

import struct

import pytest

from rillet.streams import stores
from rillet.streams.api import StoreSpec, Window, Windowed

from .stores_support import CHANGELOG, TASK, Collector, Long, opened, spec

BACKENDS = ["memory", "sqlite"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_kv_changelog_records_are_key_and_value_bytes_on_the_task_partition(backend):
    collector = Collector()
    store = stores.build(spec("kv", backend), TASK)
    store.open(None, collector, CHANGELOG, timestamp_source=lambda: 1234)
    store.put("a", 1)
    store.put("a", None)
    store.delete("b")  # a tombstone even for an absent key, as Kafka's
    assert collector.sent == [
        (CHANGELOG[0], b"a", struct.pack(">q", 1), 1234, (), CHANGELOG[1]),
        (CHANGELOG[0], b"a", None, 1234, (), CHANGELOG[1]),
        (CHANGELOG[0], b"b", None, 1234, (), CHANGELOG[1]),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_changelog_keys_are_kafkas(backend):
    """key + 8-byte big-endian window start + 4-byte sequence number (0 unless duplicates
    are retained); timestamp: the window start unless the runtime gives one."""
    collector = Collector()
    store = opened("window", backend, collector=collector, window_size_ms=10)
    store.put("k", 5, 1_700_000_000_000)
    store.put("k", None, 1_700_000_000_000)
    key = b"k" + struct.pack(">qi", 1_700_000_000_000, 0)
    assert collector.sent == [
        (CHANGELOG[0], key, struct.pack(">q", 5), 1_700_000_000_000, (), CHANGELOG[1]),
        (CHANGELOG[0], key, None, 1_700_000_000_000, (), CHANGELOG[1]),
    ]
    dups = Collector()
    store = opened("window", backend, collector=dups, window_size_ms=10,
                   retain_duplicates=True)
    store.put("k", 5, 100)
    store.put("k", 5, 100)
    store.put("k", None, 100)  # a no-op with duplicates, as Kafka's
    assert [key for _, key, *_ in dups.sent] == [
        b"k" + struct.pack(">qi", 100, 1), b"k" + struct.pack(">qi", 100, 2)]
    assert list(store.fetch_range("k", 0, 200)) == [(100, 5), (100, 5)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_session_changelog_keys_are_kafkas(backend):
    """key + 8-byte big-endian end + 8-byte big-endian start."""
    collector = Collector()
    store = opened("session", backend, collector=collector)
    store.put(Windowed("k", Window(10, 30)), 2)
    store.remove(Windowed("k", Window(10, 30)))
    key = b"k" + struct.pack(">qq", 30, 10)
    assert collector.sent == [
        (CHANGELOG[0], key, struct.pack(">q", 2), 30, (), CHANGELOG[1]),
        (CHANGELOG[0], key, None, 30, (), CHANGELOG[1]),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_restore_is_not_logged_and_an_unlogged_store_sends_nothing(backend):
    collector = Collector()
    store = opened("kv", backend, collector=collector)
    store.restore([(b"a", struct.pack(">q", 1)), (b"b", None)])
    assert store.get("a") == 1 and collector.sent == []
    unlogged = stores.build(spec("kv", backend, logged=False), TASK)
    unlogged.open(None, collector, CHANGELOG)
    unlogged.put("a", 1)
    assert collector.sent == [] and not unlogged.logging


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_keep_distinct_changelog_keys_after_a_restore(backend):
    """Restored sequence numbers are continued, so later puts never reuse a key that
    compaction would then collapse."""
    first = Collector()
    store = opened("window", backend, collector=first, retain_duplicates=True)
    for _ in range(3):
        store.put("k", 1, 0)
    second = Collector()
    again = opened("window", backend, collector=second, retain_duplicates=True)
    again.restore(first.changelog())
    again.put("k", 2, 0)
    keys = [k for k, _ in first.changelog() + second.changelog()]
    assert len(set(keys)) == 4
    assert [v for _, v in again.fetch_range("k", 0, 0)] == [1, 1, 1, 2]


@pytest.mark.parametrize("kind", ["window", "session"])
def test_a_malformed_changelog_key_is_refused_clearly(kind):
    store = opened(kind, "memory")
    with pytest.raises(ValueError, match="changelog key has at least"):
        store.restore([(b"short", b"x")])


def _write(store, kind: str, i: int) -> None:
    if kind == "kv":
        store.put(f"k{i % 13}", None if i % 5 == 4 else i)
    elif kind == "window":
        store.put(f"k{i % 13}", None if i % 5 == 4 else i, (i % 9) * 10)
    else:
        w = Window((i % 9) * 10, (i % 9) * 10 + i % 3)
        store.put(Windowed(f"k{i % 13}", w), None if i % 5 == 4 else i)


@pytest.mark.parametrize("backend", ["sqlite", "sqlite-tiny-cache"])
@pytest.mark.parametrize("kind", ["kv", "window", "session"])
def test_restart_restores_from_the_local_checkpoint_only_what_the_file_lacks(tmp_path, kind,
                                                                            backend):
    """The task's writes go to the changelog; it commits at offset 60 (the next changelog
    offset), writes on, and crashes before its next commit. On restart the SQLite file
    holds the state at offset 60 and its checkpoint says so: replaying the changelog from
    there gives exactly the state of a store that saw every write."""
    collector = Collector()
    store = opened(kind, backend, str(tmp_path), collector, window_size_ms=10)
    for i in range(60):
        _write(store, kind, i)
    store.commit(len(collector.sent))
    for i in range(60, 150):
        _write(store, kind, i)
    expected = list(store.all())
    store.close()  # no commit: as a crash

    again = opened(kind, "sqlite", str(tmp_path), window_size_ms=10)
    offset = again.checkpoint()
    assert offset == 60
    again.restore(collector.changelog()[offset:])
    again.commit(len(collector.sent))
    assert list(again.all()) == expected
    again.close()


def test_the_serdes_see_the_changelog_topic():
    seen = []

    class Spy(Long):
        @classmethod
        def serialize(cls, topic, data):
            seen.append(topic)
            return super().serialize(topic, data)

    store = stores.build(StoreSpec("s", "kv", Spy(), Long(), in_memory=True), TASK)
    store.open(None, Collector(), CHANGELOG)
    store.put(1, 2)
    assert seen == [CHANGELOG[0]]

