"""Group commit of log flushes (actors/group_sync.py): one syncfs covers every caller whose
writes were done before it started; callers during a sync wait for the next one; a failed
sync fails exactly the callers it covered; a broker's logs use it, unit-test logs do not."""

from __future__ import annotations

import os
import threading
import time

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


# ------------------------------------------------------------------ the interval flusher


class FakeGroup:
    """FileSystem.group_sync's object, driven by the test: syncs start and end on demand."""

    def __init__(self) -> None:
        self.started = 0
        self.done = 0
        self.wants: list[float] = []
        self.failures: dict[int, OSError] = {}

    def want(self, delay_ms: float) -> None:
        self.wants.append(delay_ms)

    def sync(self, error: OSError | None = None) -> None:
        self.started += 1
        if error is not None:
            self.failures[self.started] = error
        self.done = self.started

    def failed_after(self, started: int):
        return next((e for g, e in sorted(self.failures.items()) if g > started), None)


@pytest.fixture
def flusher(monkeypatch):
    group = FakeGroup()
    monkeypatch.setattr(FileSystem, "group_sync", lambda log_dir: group)
    barriers = []
    monkeypatch.setattr(FileSystem, "group_barrier", lambda fd, d: barriers.append(d))
    group.barriers = barriers
    return group


def test_an_interval_flush_is_the_flushers_the_owner_only_credits_the_recovery_point(
    tmp_path, flusher, monkeypatch
):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_ms=1_000), 0)
    fsyncs = []
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd))
    log.append(make_batch([b"a", b"b"]), 0, 100)
    assert flusher.wants == [1_000]  # once per unflushed stretch, at its first write
    log.append(make_batch([b"c"]), 0, 200)
    assert flusher.wants == [1_000]
    # the owner's timer comes back a minute after flush.ms, not at flush.ms
    assert log.next_flush_due_ms() == 100 + 1_000 + 60_000
    assert log.maybe_flush(5_000) is False and log.recovery_point == 0  # no sync yet
    assert fsyncs == [] and flusher.barriers == []  # the owner never syncs or blocks
    flusher.sync()  # the flusher's syncfs, after both writes
    log.append(make_batch([b"d"]), 0, 5_100)  # written during no sync: the next one
    assert log.recovery_point == 3  # this append credited the first two
    assert flusher.wants == [1_000, 1_000]  # a new unflushed stretch
    flusher.sync()
    assert log.maybe_flush(70_000) is True and log.recovery_point == 4
    assert log.next_flush_due_ms() is None  # and its checkpoint written: nothing is due
    assert fsyncs == [] and flusher.barriers == []
    log.close()


def test_a_sync_that_failed_after_a_write_fails_the_log(tmp_path, flusher):
    from rillet.logstore.errors import LogFailedError

    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), 0)
    log.append(make_batch([b"a"]), 0, 1)
    flusher.sync(OSError(5, "syncfs: I/O error"))
    flusher.sync()  # a later sync succeeding does not make the lost write durable
    with pytest.raises(LogFailedError):
        log.maybe_flush(100_000)
    assert log.recovery_point == 0
    with pytest.raises(LogFailedError):
        log.append(make_batch([b"b"]), 0, 100_001)


def test_a_truncation_drops_the_marks_of_the_records_it_cut(tmp_path, flusher):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), 0)
    for v in (b"a", b"b", b"c", b"d"):  # offsets 0-3
        log.append(make_batch([v]), 0, 1)
    log.truncate_to(2)
    flusher.sync()  # covers offsets 0-1: what the truncation left
    log.append(make_batch([b"x", b"y"]), 1, 2)  # offsets 2-3 again, after that sync
    # the mark of the cut records said "up to 4": crediting it would call the new 2-3 durable
    assert log.recovery_point == 2
    flusher.sync()
    assert log.maybe_flush(100_000) is True and log.recovery_point == 4
    for v in (b"e", b"f"):  # offsets 4-5, not synced
        log.append(make_batch([v]), 1, 100_001)
    log.truncate_to(5)
    log.append(make_batch([b"p"]), 1, 100_002)  # offset 5 again: LEO 6
    assert log.recovery_point == 4  # no sync since offset 4: nothing more is durable
    flusher.sync()
    assert log.maybe_flush(200_000) is True and log.recovery_point == 6
    log.close()


def test_group_commit_mode_and_fault_filesystems_keep_the_owners_flush(tmp_path, flusher):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_mode="group-commit"), 0)
    log.append(make_batch([b"a"]), 0, 1)
    assert flusher.wants == []
    assert log.flush() == 1 and flusher.barriers == [str(tmp_path)]
    log.close()


def test_the_flusher_thread_syncs_once_for_the_wants_made_before_it_started(tmp_path):
    sync = SlowSync()
    group = GroupSync(sync, path=str(tmp_path))
    group.want(0)
    assert sync.entered.acquire(timeout=5)  # the flusher runs sync 1
    before = group.started
    group.want(0)  # made during sync 1: needs sync 2
    group.want(50)
    sync.release.release()
    assert sync.entered.acquire(timeout=5)  # ONE sync 2 for both wants
    sync.release.release()
    deadline = time.monotonic() + 5
    while group.done < before + 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not sync.entered.acquire(timeout=0.3)  # nothing more was wanted
    assert group.syncs == 2 and group.failed_after(0) is None


def test_a_broker_log_is_durable_through_the_real_flusher(tmp_path):
    try:
        assert group_sync.install() is True
        log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_ms=10), 0)
        log.append(make_batch([b"a", b"b"]), 0, 1)
        group = group_sync.for_log_dir(str(tmp_path))
        deadline = time.monotonic() + 10
        while not log.maybe_flush(10 + 60_000):  # credited once the flusher's syncfs ran
            assert time.monotonic() < deadline, "the flusher did not sync"
            time.sleep(0.01)
        assert log.recovery_point == 2 and group.done >= 1
        log.close()
    finally:
        group_sync.install(False)
    assert FileSystem.group_sync is None


def test_a_write_after_a_credit_is_still_synced_by_an_explicit_flush(tmp_path, flusher):
    # _wrote credits the earlier writes before noting the one just made: that must not make
    # close() or flush() believe nothing is left to sync
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), 0)
    log.append(make_batch([b"a"]), 0, 1)
    flusher.sync()
    log.append(make_batch([b"b"]), 0, 2)  # credits offset 0, then notes offset 1
    assert log.recovery_point == 1 and flusher.barriers == []
    assert log.flush() == 2
    assert flusher.barriers == [str(tmp_path)]  # the write of offset 1 was synced
    log.append(make_batch([b"c"]), 0, 3)
    flusher.sync()
    log.append(make_batch([b"d"]), 0, 4)
    log.close()
    assert len(flusher.barriers) == 2  # and so does close()


def test_a_flusher_that_cannot_open_its_filesystem_fails_the_waiting_logs(tmp_path):
    # nothing may wait forever for a sync that never comes: the round counts as failed
    group = GroupSync(SlowSync(), path=str(tmp_path / "gone"))
    started = group.started
    group.want(0)
    deadline = time.monotonic() + 5
    while group.done <= started:
        assert time.monotonic() < deadline, "no round"
        time.sleep(0.01)
    assert isinstance(group.failed_after(started), OSError)


def test_a_log_settled_at_its_tick_has_nothing_left_for_close_to_sync(tmp_path, flusher):
    # thousands of partitions closing at a broker's stop: only the ones written since their
    # last sync need one
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), 0)
    log.append(make_batch([b"a"]), 0, 1)
    flusher.sync()
    assert log.maybe_flush(100_000) is True and log.recovery_point == 1
    log.close()
    assert flusher.barriers == []
