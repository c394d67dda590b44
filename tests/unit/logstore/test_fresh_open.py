"""Opening a new, empty partition directory costs no fsync and writes no checkpoint (creating
thousands of partitions, issue #12), and a crash at any point after it loses nothing."""

from __future__ import annotations

from rillet.logstore.fs import FileSystem
from rillet.logstore.log import LogConfig, PartitionLog

from .helpers import make_batch, read_all


class CountingFS(FileSystem):
    def __init__(self) -> None:
        super().__init__()
        self.fsyncs = 0

    def fsync_fd(self, fd: int) -> None:
        self.fsyncs += 1
        super().fsync_fd(fd)

    def fsync_dir(self, directory) -> None:
        self.fsyncs += 1
        super().fsync_dir(directory)


def test_a_new_log_opens_without_fsync_and_reopens_the_same(tmp_path) -> None:
    fs = CountingFS()
    log = PartitionLog.open(tmp_path, LogConfig(), 0, fs=fs)
    assert fs.fsyncs == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".checkpoint")]
    assert log.next_flush_due_ms() is None  # an idle new log asks for no timer
    log.abandon()  # a crash right after creation
    again = PartitionLog.open(tmp_path, LogConfig(), 0)
    assert (again.log_start_offset, again.log_end_offset, again.epochs.entries) == (0, 0, [])


def test_data_written_after_a_fresh_open_survives_a_crash(tmp_path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    log.epochs.assign(3, 0)  # leadership: the epoch checkpoint is written before any batch
    log.append(make_batch([b"v%d" % i for i in range(5)]), 3, 10)
    log.flush()
    log.abandon()
    again = PartitionLog.open(tmp_path, LogConfig(), 20)
    assert again.log_end_offset == 5
    assert [r.offset for r in read_all(again)] == list(range(5))
    assert again.epochs.latest_epoch == 3
