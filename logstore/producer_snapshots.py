"""Producer-state snapshot files: ``<offset>.snapshot`` in a partition's directory (Kafka's
``ProducerStateManager`` snapshot files).

A snapshot is ``ProducerStateManager.snapshot()`` taken when the state covers the whole log
(``map_end_offset == log_end_offset``), written atomically under the offset it is valid at;
the newest ``SNAPSHOTS_KEPT`` are kept. On open, ``recover_state(log)`` deletes the files
above the log end (recovery may have cut records they describe: Kafka's
``truncateAndReload``), then ``producer_state.rebuild_from_log`` starts from the newest
readable one and replays the batch headers after it; on truncation the files above the new
end are deleted. The directory is listed only when a
snapshot is written, read or deleted (never on a timer).
"""

from __future__ import annotations

from pathlib import Path

from .fs import FileSystem
from .producer_state import ProducerStateManager, rebuild_from_log

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOTS_KEPT = 3


def snapshot_name(offset: int) -> str:
    return f"{offset:020d}{SNAPSHOT_SUFFIX}"


class ProducerSnapshots:
    def __init__(self, fs: FileSystem, directory: Path) -> None:
        self.fs = fs
        self.directory = Path(directory)
        self.last_written = -1  # the offset of the newest snapshot this process wrote or saw

    def files(self) -> dict[int, Path]:
        out = {}
        for name in self.fs.listdir(self.directory):
            stem = name[: -len(SNAPSHOT_SUFFIX)]
            if name.endswith(SNAPSHOT_SUFFIX) and stem.isdigit():
                out[int(stem)] = self.directory / name
        return out

    def read(self, max_offset: int | None = None) -> dict[int, bytes]:
        """offset -> bytes of every readable snapshot (at or below ``max_offset``)."""
        out = {}
        for offset, path in self.files().items():
            if max_offset is not None and offset > max_offset:
                continue
            try:
                data = self.fs.read_bytes(path)
            except OSError:  # unreadable: rebuild_from_log uses an older one or the log
                continue
            if data is not None:
                out[offset] = data
        return out

    def write(
        self, state: ProducerStateManager, log_end_offset: int, *, durable: bool = True
    ) -> bool:
        """Snapshot ``state`` if it covers the log and is newer than the last one; the oldest
        files beyond ``SNAPSHOTS_KEPT`` go. True if a file was written. OSError propagates.
        ``durable=False`` (the periodic snapshots) does not fsync: a snapshot lost or torn
        by a power loss is skipped (checksummed), and the state is rebuilt from an older one
        or the log; one above the recovered log end is deleted on open."""
        offset = state.map_end_offset
        if offset != log_end_offset or offset == self.last_written or not state.producers:
            return False  # nothing new: no directory scan
        files = self.files()
        if offset in files:
            self.last_written = offset
            return False
        self.fs.write_atomic(
            self.directory / snapshot_name(offset), state.snapshot(), durable=durable
        )
        self.last_written = offset
        for old in sorted(files)[: -SNAPSHOTS_KEPT + 1 or None]:
            self.fs.remove(files[old])
        return True

    def pending(self, state: ProducerStateManager) -> bool:
        """The state has producers and changed since the last snapshot."""
        return bool(state.producers) and state.map_end_offset != self.last_written

    def delete_above(self, offset: int) -> None:
        for o, path in self.files().items():
            if o > offset:
                self.fs.remove(path)

    def recover_state(self, log) -> ProducerStateManager:
        """The producer state of a just-opened ``log``: snapshots above its end are deleted
        first (left by records recovery cut off; kept, one would be loaded once the log has
        grown past it again with other records), then rebuilt from the newest one left."""
        self.delete_above(log.log_end_offset)
        return rebuild_from_log(log, self.read())
