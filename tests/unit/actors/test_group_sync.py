"""Group commit of log flushes (actors/group_sync.py): one syncfs covers every caller whose
writes were done before it started; callers during a sync wait for the next one; a failed
sync fails exactly the callers it covered; a broker's logs use it, unit-test logs do not."""

from __future__ import annotations

import os
import threading

import pytest
from rillet.actors import group_sync
from rillet.actors.group_sync import GroupSync
from rillet.logstore.fs import FileSystem
from rillet.logstore.log import LogConfig, PartitionLog

from tests.unit.logstore.helpers import make_batch

pytestmark = pytest.mark.timeout(30)


class SlowSync:
    """A syncfs stand-in: each call blocks until released; records the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.fail_next = False

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.entered.release()
        self.release.acquire()
        if self.fail_next:
            self.fail_next = False
            raise OSError(5, "syncfs: I/O error")


def _spawn(group: GroupSync, results: list, name: str) -> threading.Thread:
    def run() -> None:
        try:
            group.barrier(0)
            results.append((name, "ok"))
        except OSError as e:
            results.append((name, e.errno))

    t = threading.Thread(target=run)
    t.start()
    return t


def test_callers_during_a_sync_share_the_next_one():
    sync = SlowSync()
    group, results = GroupSync(sync), []
    first = _spawn(group, results, "first")
    assert sync.entered.acquire(timeout=5)  # sync 1 runs for `first`
    late = [_spawn(group, results, f"late{i}") for i in range(5)]  # arrive during sync 1
    sync.release.release()  # sync 1 done: only `first` is covered
    assert sync.entered.acquire(timeout=5)  # ONE sync 2 for all five late callers
    assert [n for n, _ in results] == ["first"]
    sync.release.release()
    for t in [first, *late]:
        t.join(5)
    assert sorted(n for n, _ in results) == ["first"] + [f"late{i}" for i in range(5)]
    assert sync.calls == 2 and group.syncs == 2


def test_a_failed_sync_fails_the_callers_it_covered_and_no_others():
    sync = SlowSync()
    group, results = GroupSync(sync), []
    sync.fail_next = True
    first = _spawn(group, results, "first")
    assert sync.entered.acquire(timeout=5)
    late = _spawn(group, results, "late")
    sync.release.release()  # sync 1 fails: `first` sees EIO
    assert sync.entered.acquire(timeout=5)
    sync.release.release()  # sync 2 succeeds: `late` is fine
    first.join(5), late.join(5)
    assert sorted(results) == [("first", 5), ("late", "ok")]


def test_a_broker_log_flush_goes_through_the_installed_barrier(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(FileSystem, "group_barrier", lambda fd, log_dir: calls.append((os.fstat(fd), log_dir)))
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), 0)
    log.append(make_batch([b"a", b"b"]), 0, 1)
    fsyncs = []
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd))
    assert log.flush() == 2
    assert len(calls) == 1 and fsyncs == []  # one group sync, no per-file fsync
    assert calls[0][1] == str(tmp_path)
    log.close()


def test_install_sets_the_barrier_and_a_real_syncfs_works(tmp_path):
    try:
        assert group_sync.install() is True  # Linux/glibc here
        log = PartitionLog.open(tmp_path / "t-0", LogConfig(), 0)
        log.append(make_batch([b"a"]), 0, 1)
        assert log.flush() == 1  # a real syncfs(2)
        log.close()
    finally:
        group_sync.install(False)
    assert FileSystem.group_barrier is None
