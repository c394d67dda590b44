"""A log dir's offset checkpoint: one file holding an offset for each partition (Kafka's
``OffsetCheckpointFile``; the broker keeps its high watermarks in
``replication-offset-checkpoint``).

``OffsetCheckpoint`` holds the live table (partition actors publish into it) and writes the
file only when the table changed since the last write, atomically (fs.write_checkpoint:
checksummed, temp file, fsync, rename). ``write(hosted)`` first forgets partitions that are
no longer hosted here, so the file never names a deleted or moved partition.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from .fs import FileSystem

TopicPartition = tuple[str, int]


class OffsetCheckpoint:
    def __init__(self, fs: FileSystem, path: Path) -> None:
        self.fs = fs
        self.path = Path(path)
        self.table: dict[TopicPartition, int] = {}  # published by the partitions
        self._written: dict[TopicPartition, int] = {}

    def load(self) -> dict[TopicPartition, int]:
        """Read the file into the table (a missing or unreadable file: empty)."""
        value = self.fs.read_checkpoint(self.path)
        if isinstance(value, list):
            for entry in value:
                if isinstance(entry, list) and len(entry) == 3:
                    topic, partition, offset = entry
                    if (
                        isinstance(topic, str)
                        and isinstance(partition, int)
                        and isinstance(offset, int)
                    ):
                        self.table[(topic, partition)] = offset
        self._written = dict(self.table)
        return self.table

    def write(self, hosted: Collection[TopicPartition] | None = None) -> bool:
        """Write the table if it changed, without the partitions not in ``hosted`` (None:
        keep all). True if the file was written; OSError propagates."""
        if hosted is not None:
            for key in [k for k in self.table if k not in hosted]:
                self.table.pop(key, None)
        table = dict(self.table)
        if table == self._written:
            return False
        entries = [[t, p, offset] for (t, p), offset in sorted(table.items())]
        self.fs.write_checkpoint(self.path, entries)
        self._written = table
        return True
