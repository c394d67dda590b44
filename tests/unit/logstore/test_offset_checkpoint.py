"""The log dir's offset checkpoint (logstore/offset_checkpoint.py)."""

from __future__ import annotations

from rillet.logstore.fs import FileSystem
from rillet.logstore.offset_checkpoint import OffsetCheckpoint


class CountingFs(FileSystem):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write_checkpoint(self, path, value) -> None:
        self.writes += 1
        super().write_checkpoint(path, value)


def test_written_only_when_changed_and_read_back(tmp_path) -> None:
    fs = CountingFs()
    ckpt = OffsetCheckpoint(fs, tmp_path / "replication-offset-checkpoint")
    assert ckpt.load() == {}
    ckpt.table[("a", 0)] = 5
    ckpt.table[("b", 1)] = 7
    assert ckpt.write() and fs.writes == 1
    assert not ckpt.write() and fs.writes == 1  # nothing new: no write
    ckpt.table[("a", 0)] = 6
    assert ckpt.write() and fs.writes == 2
    again = OffsetCheckpoint(FileSystem(), tmp_path / "replication-offset-checkpoint")
    assert again.load() == {("a", 0): 6, ("b", 1): 7}


def test_partitions_no_longer_hosted_are_forgotten(tmp_path) -> None:
    ckpt = OffsetCheckpoint(FileSystem(), tmp_path / "ckpt")
    ckpt.table.update({("a", 0): 1, ("gone", 0): 2})
    ckpt.write(hosted={("a", 0)})
    assert ckpt.table == {("a", 0): 1}
    assert OffsetCheckpoint(FileSystem(), tmp_path / "ckpt").load() == {("a", 0): 1}


def test_a_damaged_file_reads_as_empty(tmp_path) -> None:
    path = tmp_path / "ckpt"
    ckpt = OffsetCheckpoint(FileSystem(), path)
    ckpt.table[("a", 0)] = 1
    ckpt.write()
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert OffsetCheckpoint(FileSystem(), path).load() == {}
