"""Reads from another thread (interactive queries) while the task's thread writes, and
iterations longer than one page (1024 rows) while the store changes under them."""

from __future__ import annotations

import threading
import time

import pytest

from rillet.streams.api import Window, Windowed

from .stores_support import opened

BACKENDS = ["memory", "sqlite"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_query_thread_reads_while_the_task_thread_writes(backend, tmp_path):
    """The writer puts its step number under a rotating key and deletes now and then
    (so a key's value only grows); a reader thread gets and iterates meanwhile. Every read must succeed and see a value the writer put
    (never one going backwards), and the reader must really overlap the writer."""
    store = opened("kv", backend, str(tmp_path))
    errors: list[BaseException] = []
    reads = 0
    done = threading.Event()

    def reader() -> None:
        nonlocal reads
        last: dict[str, int] = {}
        try:
            while not done.is_set():
                for key, value in store.range("k0000", "k9999"):
                    assert value >= last.get(key, 0), (key, value, last.get(key))
                    last[key] = value
                v = store.get("k0001")
                assert v is None or v >= last.get("k0001", 0)
                reads += 1
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    thread = threading.Thread(target=reader)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        i = 0
        while (reads < 5 or i < 3000) and time.monotonic() < deadline:
            key = f"k{i % 1500:04d}"
            store.put(key, i)
            if i % 7 == 3:
                store.delete(f"k{(i * 31) % 1500:04d}")
            if i % 500 == 499:
                store.commit(i)
            i += 1
    finally:
        done.set()
        thread.join(30)
    assert not errors, errors[0]
    assert reads >= 5, "the reader never overlapped the writer"
    assert 0 < len(store) <= 1500
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_iterations_longer_than_a_page_see_every_row_once(backend):
    kv = opened("kv", backend)
    for i in range(2500):
        kv.put(f"k{i:05d}", i)
    seen = []
    for key, _value in kv.all():  # the task deletes as it iterates: no error, no repeat
        seen.append(key)
        kv.delete(key)
    assert seen == [f"k{i:05d}" for i in range(2500)] and len(kv) == 0

    win = opened("window", backend, window_size_ms=1)
    for i in range(2500):
        win.put(f"k{i % 3}", i, i // 2)
    rows = list(win.all())
    assert len(rows) == 2500 and rows == sorted(
        rows, key=lambda r: (r[0].window.start, r[0].key))
    assert len(list(win.fetch_range("k0", 0, 10_000))) == 834

    dups = opened("window", backend, retain_duplicates=True)
    for i in range(2100):
        dups.put("k", i, 7)
    assert [v for _, v in dups.fetch_range("k", 7, 7)] == list(range(2100))

    ses = opened("session", backend)
    for i in range(2500):
        ses.put(Windowed(f"k{i % 2}", Window(i, i + 1)), i)
    assert [v for _, v in ses.all()] == list(range(2500))
    assert len(list(ses.find_sessions("k1", 0, 10_000))) == 1250
