"""The SQLite stores' durability: commit + reopen keeps the data and the checkpoint, a
crash (kill -9, no commit) reopens at the last commit, close without commit discards, the
write transaction stays open between commits, wipe, files of another kind refused."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from rillet.streams import stores
from rillet.streams.api import Window, Windowed
from rillet.streams.stores import InvalidStateStoreError, StoreFileError

from .stores_support import TASK, Collector, opened, spec


def fill(store, kind: str, n: int, base: int = 0) -> None:
    for i in range(n):
        if kind == "kv":
            store.put(f"k{i}", base + i)
        elif kind == "window":
            store.put(f"k{i % 7}", base + i, i * 10)
        else:
            store.put(Windowed(f"k{i % 7}", Window(i * 10, i * 10 + 5)), base + i)


def contents(store) -> list:
    return list(store.all())


KW = {"kv": {}, "window": {"window_size_ms": 10}, "session": {}}
# the default write-back cache holds a short test's writes until commit; a tiny one puts
# them into the open SQLite transaction before: both must lose them in a crash
SQLITE = ["sqlite", "sqlite-tiny-cache"]


@pytest.mark.parametrize("kind", ["kv", "window", "session"])
def test_commit_then_reopen_keeps_data_and_checkpoint(tmp_path, kind):
    store = opened(kind, "sqlite", str(tmp_path), Collector(), **KW[kind])
    assert store.persistent and store.checkpoint() is None
    fill(store, kind, 50)
    store.commit(50)
    before = contents(store)
    store.close()

    again = opened(kind, "sqlite", str(tmp_path), **KW[kind])
    assert again.checkpoint() == 50
    assert contents(again) == before and len(before) == 50
    again.close()


@pytest.mark.parametrize("backend", SQLITE)
@pytest.mark.parametrize("kind", ["kv", "window", "session"])
def test_close_without_commit_discards_the_uncommitted_writes(tmp_path, kind, backend):
    store = opened(kind, backend, str(tmp_path), **KW[kind])
    fill(store, kind, 10)
    store.commit(10)
    committed = contents(store)
    fill(store, kind, 20, base=1000)
    assert contents(store) != committed
    store.close()
    again = opened(kind, "sqlite", str(tmp_path), **KW[kind])
    assert contents(again) == committed and again.checkpoint() == 10
    again.close()


CRASHER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from unit.streams.stores_support import Collector, opened
    from unit.streams.test_stores_sqlite import KW, SQLITE, fill
    for kind in KW:
        for backend in SQLITE:
            task_dir = os.path.join({root!r}, kind + backend)
            store = opened(kind, backend, task_dir, Collector(), **KW[kind])
            fill(store, kind, 30)
            store.commit(30)
            fill(store, kind, 40, base=1000)   # uncommitted
    print("written", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_crash_without_commit_reopens_at_the_last_commit(tmp_path):
    """A process writes to each kind of store, commits, writes more and is killed -9:
    each store reopens with the committed contents and checkpoint, nothing after."""
    tests = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = CRASHER.format(tests=tests, root=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "written"
    for kind in KW:
        reference = opened(kind, "memory", **KW[kind])
        fill(reference, kind, 30)
        for backend in SQLITE:
            again = opened(kind, "sqlite", str(tmp_path / (kind + backend)), **KW[kind])
            assert again.checkpoint() == 30
            assert contents(again) == contents(reference) and len(again) == 30
            again.close()


def test_puts_stay_in_one_open_transaction_until_commit(tmp_path):
    """A second connection sees nothing of the puts before commit (they are not written
    one transaction, and one fsync, each), and all of them with the checkpoint after. (A
    3-entry cache: the rows are in SQLite's open transaction, not only in the cache.)"""
    store = opened("kv", "sqlite-tiny-cache", str(tmp_path))
    fill(store, "kv", 100)
    other = sqlite3.connect(str(tmp_path / "s.sqlite"))
    assert other.execute("SELECT count(*) FROM kv").fetchone() == (0,)
    assert other.execute("SELECT count(*) FROM rillet_checkpoint").fetchone() == (0,)
    store.commit(7)
    assert other.execute("SELECT count(*) FROM kv").fetchone() == (100,)
    assert other.execute("SELECT changelog_offset FROM rillet_checkpoint").fetchone() == (7,)
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()
    store.close()


def test_wipe_deletes_the_file_and_an_open_store_stays_open_and_empty(tmp_path):
    store = opened("kv", "sqlite", str(tmp_path))
    fill(store, "kv", 5)
    store.commit(5)
    store.wipe()
    assert len(store) == 0 and store.checkpoint() is None
    store.put("x", 1)
    store.commit(1)
    store.close()
    store.wipe()  # closed: only the files go
    assert not any(p.name.startswith("s.sqlite") for p in tmp_path.iterdir())
    again = opened("kv", "sqlite", str(tmp_path))
    assert len(again) == 0 and again.checkpoint() is None
    again.close()


def test_a_file_of_another_kind_is_refused_with_its_path(tmp_path):
    opened("kv", "sqlite", str(tmp_path)).close()
    store = stores.build(spec("window", "sqlite", window_size_ms=5), TASK)
    with pytest.raises(StoreFileError, match="holds a kv store") as info:
        store.open(str(tmp_path), None, None)
    assert info.value.path == str(tmp_path / "s.sqlite")
    assert not store._b.is_open
    store.wipe()  # the way out: start afresh
    store.open(str(tmp_path), None, None)
    store.close()


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    (tmp_path / "s.sqlite").write_bytes(b"not a database" * 100)
    store = stores.build(spec("kv", "sqlite"), TASK)
    with pytest.raises(StoreFileError, match="s.sqlite"):
        store.open(str(tmp_path), None, None)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_closed_store_raises_invalid_state_store(tmp_path, backend):
    store = opened("kv", backend, str(tmp_path))
    store.put("a", 1)
    store.commit(1)
    store.close()
    for call in (lambda: store.get("a"), lambda: store.put("a", 2), lambda: list(store.all()),
                 lambda: len(store), lambda: store.commit(2)):
        with pytest.raises(InvalidStateStoreError, match="'s' is closed"):
            call()


@pytest.mark.parametrize("name", ["", "../x", "a/b", "é", "x" * 201, ".."])
def test_a_store_name_that_cannot_name_a_file_or_topic_is_refused(name):
    with pytest.raises(ValueError, match="store name"):
        stores.build(spec("kv", "sqlite", name=name), TASK)


@pytest.mark.parametrize("kind", ["kv", "window", "session"])
def test_a_commit_does_not_fsync(tmp_path, kind):
    """WAL with synchronous=NORMAL: a commit is atomic and survives a crash of the process
    (the test above) without an fsync of its own (FULL paid one per commit: every 100 ms
    per store under exactly_once). A power loss may take back the last commits, data and
    checkpoint together; the restore then reads more of the changelog."""
    store = opened(kind, "sqlite", str(tmp_path), **KW[kind])
    assert store._b._conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    assert store._b._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()
