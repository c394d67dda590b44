"""One log segment: a file of whole batches plus its sparse offset and time indexes.

Files, named by the segment's base offset zero-padded to 20 digits like Kafka's:
``00000000000000000000.log`` (batches back to back), ``.index`` (offset -> byte position) and
``.timeindex`` (timestamp -> offset). The indexes are derived data: kept in memory, written as
checkpoint files when the segment is sealed (rolled) or the log closes, and rebuilt by scanning
the segment whenever they are missing, corrupt or do not cover the file.

Index entries are taken at batch starts, at most one per ``index_interval_bytes`` of log (the
first batch of a segment is implicitly at position 0). For entry i, ``positions[i]`` is where
the batch with base offset ``offsets[i]`` starts and ``times[i]`` is the largest timestamp of
every batch before it in this segment, so both lookups are a bisect plus a short scan.

The segment gets its file from outside (logstore/fs.py) and never reads the clock; not
thread-safe (one owner).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path

from . import batch as B
from .errors import CorruptBatchError
from .fs import FileSystem, SegmentFile

NO_TIMESTAMP = -1
_SCAN_CHUNK = 1 << 20
_INDEX_VERSION = 1


def segment_name(base_offset: int, suffix: str = ".log") -> str:
    return f"{base_offset:020d}{suffix}"


def walk(
    file: SegmentFile, start: int, end: int, *, check: bool, chunk: int = _SCAN_CHUNK
) -> Iterator[tuple[int, B.BatchHeader]]:
    """Yield (position, header) of each batch in [start, end) of ``file``.

    With ``check`` every batch is fully validated (digest, counts). CorruptBatchError carries
    the absolute file position of the first bad or truncated batch.
    """
    pos = start
    buf = b""
    buf_start = start
    while pos < end:
        rel = pos - buf_start
        if len(buf) - rel < B.HEADER_SIZE:
            buf = file.read_at(pos, min(max(chunk, B.HEADER_SIZE), end - pos))
            buf_start, rel = pos, 0
        try:
            header = B.read_header(buf, rel)
            if pos + header.length > end:
                raise CorruptBatchError(f"truncated batch: {end - pos} of {header.length}", 0)
            if check:
                if len(buf) - rel < header.length:
                    buf = file.read_at(pos, min(max(chunk, header.length), end - pos))
                    buf_start, rel = pos, 0
                B._check(buf, rel, header)
        except CorruptBatchError as exc:
            raise CorruptBatchError(exc.reason, pos) from None
        yield pos, header
        pos += header.length


def _data_follows(file: SegmentFile, position: int, file_size: int) -> bool:
    """Is anything but zeros on disk after the bad batch at ``position`` (its declared end
    if its header parses, else its header)? A torn tail after a crash is followed by nothing
    (or by preallocated zeros); a damaged batch in the middle of the log is not."""
    end = position + B.HEADER_SIZE
    try:
        header = B.read_header(file.read_at(position, B.HEADER_SIZE))
        end = position + header.length
    except CorruptBatchError:
        pass
    while end < file_size:
        chunk = file.read_at(end, min(_SCAN_CHUNK, file_size - end))
        if not chunk:
            return False
        if chunk.count(0) != len(chunk):
            return True
        end += len(chunk)
    return False


class Segment:
    __slots__ = (
        "base_offset",
        "file",
        "size",
        "next_offset",
        "max_timestamp",
        "created_ms",
        "index_interval_bytes",
        "offsets",
        "positions",
        "times",
        "_bytes_since_index",
        "last_epoch",
        "indexes_saved",
        "unverified_end",
        "verified",
        "generation",
        "_tail_offsets",
        "_tail_positions",
    )

    # The starts of the latest batches appended (offset, position): a follower or a consumer
    # at the tail asks for an offset a batch or two back, which the sparse index rarely
    # holds; with these the read is one pread, without the header walk of ``find``.
    TAIL = 16

    def __init__(
        self, base_offset: int, file: SegmentFile, created_ms: int, index_interval_bytes: int
    ) -> None:
        self.base_offset = base_offset
        self.file = file
        self.size = 0
        self.next_offset = base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.created_ms = created_ms
        self.index_interval_bytes = index_interval_bytes
        self.offsets: list[int] = []
        self.positions: list[int] = []
        self.times: list[int] = []
        self._bytes_since_index = 0
        self.last_epoch = -1
        self.indexes_saved = False  # do .index/.timeindex on disk match the memory state?
        # Bytes [0, unverified_end) were on disk before this process opened the log and were
        # not re-checked by recovery; ``verified`` holds the sorted, disjoint [start, end)
        # ranges of them checked since (logstore/verify.py). 0: everything is trusted.
        self.unverified_end = 0
        self.verified: list[list[int]] = []
        self.generation = 0  # bumped whenever positions change meaning (rebuild, rewrite)
        self._tail_offsets: list[int] = []
        self._tail_positions: list[int] = []

    # ----------------------------------------------------------------------------- writing

    def append(self, data, header: B.BatchHeader) -> None:
        """Write one whole, validated and stamped batch at the end of the segment.

        ``data`` is a buffer or a tuple of buffers that together form the batch."""
        if isinstance(data, tuple):
            self.file.write_parts_at(self.size, data, header.length)
        else:
            self.file.write_at(self.size, data)
        self.track(self.size, header)

    def append_parts(
        self,
        parts,
        length: int,
        base_offset: int,
        next_offset: int,
        max_timestamp: int,
        leader_epoch: int,
    ) -> None:
        """The leader's hot path: write one validated, stamped batch given as buffers
        (``parts`` concatenated are ``length`` bytes) and account for it, from plain ints."""
        position = self.size
        self.file.write_parts_at(position, parts, length)
        self._track(position, length, base_offset, next_offset, max_timestamp, leader_epoch)

    def append_run(self, parts, length: int, run, leader_epoch: int) -> None:
        """Write several validated, stamped batches (``parts``, ``length`` bytes together)
        with one call and account for each; ``run`` holds (position, length, base offset,
        next offset, max timestamp) per batch, the first at the segment's end."""
        self.file.write_parts_at(self.size, parts, length)
        track = self._track
        for position, size, base_offset, next_offset, max_timestamp in run:
            track(position, size, base_offset, next_offset, max_timestamp, leader_epoch)

    def track(self, position: int, header: B.BatchHeader) -> None:
        """Account for the batch at ``position`` (appended, or found by a scan)."""
        self._track(
            position,
            header.length,
            header.base_offset,
            header.base_offset + header.last_offset_delta + 1,
            header.max_timestamp,
            header.leader_epoch,
        )

    def _track(
        self,
        position: int,
        length: int,
        base_offset: int,
        next_offset: int,
        max_timestamp: int,
        leader_epoch: int,
    ) -> None:
        tail = self._tail_offsets
        tail.append(base_offset)
        self._tail_positions.append(position)
        if len(tail) > 2 * self.TAIL:
            del tail[: self.TAIL], self._tail_positions[: self.TAIL]
        since = self._bytes_since_index
        if since >= self.index_interval_bytes and position > 0:
            self.offsets.append(base_offset)
            self.positions.append(position)
            self.times.append(self.max_timestamp)
            since = 0
        self._bytes_since_index = since + length
        self.size = position + length
        self.next_offset = next_offset
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
        self.last_epoch = leader_epoch
        self.indexes_saved = False

    def rebuild(self, *, check: bool, epoch_ok=None) -> CorruptBatchError | None:
        """Re-derive size, next offset and indexes by scanning the file.

        With ``check`` batches are fully validated, and the scan stops at the first invalid
        one (a torn write, a flipped bit, a broken offset or epoch sequence, an epoch that
        ``epoch_ok(header)`` rejects): the file is cut there and the error returned. Without ``check`` only headers are read.
        """
        file_size = self.file.size()
        self._reset()
        expected = self.base_offset
        try:
            for pos, header in walk(self.file, 0, file_size, check=check):
                if header.base_offset != expected:
                    raise CorruptBatchError(
                        f"batch base offset {header.base_offset}, expected {expected}", pos
                    )
                if header.leader_epoch < self.last_epoch:
                    raise CorruptBatchError(
                        f"leader epoch {header.leader_epoch} after {self.last_epoch}", pos
                    )
                if epoch_ok is not None and not epoch_ok(header):
                    raise CorruptBatchError(
                        f"leader epoch {header.leader_epoch} contradicts the epoch cache", pos
                    )
                self.track(pos, header)
                expected = header.next_offset
        except CorruptBatchError as exc:
            exc.data_follows = _data_follows(self.file, exc.position, file_size)
            self.file.truncate(self.size)
            return exc
        return None

    def truncate_to_offset(self, offset: int) -> None:
        """Cut the segment at the start of the batch containing ``offset`` (or of the first
        batch after it); the segment then ends before ``offset``."""
        position, _ = self.find(offset)
        self.file.truncate(position)
        self._forget_tail()
        if self.unverified_end > position:
            self.unverified_end = position  # what is appended from here on is ours
            self.verified = [[a, min(b, position)] for a, b in self.verified if a < position]
        i = bisect.bisect_left(self.positions, position)
        del self.offsets[i:], self.positions[i:], self.times[i:]
        start = self.positions[-1] if self.positions else 0
        self.size = start
        self.next_offset = self.offsets[-1] if self.offsets else self.base_offset
        self.max_timestamp = self.times[-1] if self.times else NO_TIMESTAMP
        self._bytes_since_index = 0
        self.indexes_saved = False
        if start == 0:
            self.last_epoch = -1
        # Re-track the batches after the last kept index entry: exact size, offsets, max time.
        for pos, header in walk(self.file, start, position, check=False):
            self.track(pos, header)

    def _forget_tail(self) -> None:
        self._tail_offsets.clear()
        self._tail_positions.clear()

    def _reset(self) -> None:
        self._forget_tail()
        self.unverified_end = 0
        self.verified = []
        self.generation += 1
        self.size = 0
        self.next_offset = self.base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.offsets.clear()
        self.positions.clear()
        self.times.clear()
        self._bytes_since_index = 0
        self.last_epoch = -1
        self.indexes_saved = False

    # ----------------------------------------------------------------------------- reading

    def find(self, offset: int) -> tuple[int, B.BatchHeader | None]:
        """(position, header) of the first batch whose last offset >= ``offset``;
        (size, None) if the segment ends before ``offset``."""
        if offset >= self.next_offset:
            return self.size, None
        i = bisect.bisect_right(self.offsets, offset) - 1
        start = self.positions[i] if i >= 0 else 0
        for pos, header in walk(
            self.file, start, self.size, check=False, chunk=self.index_interval_bytes + 512
        ):
            if header.next_offset > offset:
                return pos, header
        return self.size, None

    def read_with_position(
        self, offset: int, max_bytes: int, max_offset: int | None
    ) -> tuple[int, bytes]:
        """(position, data): ``read`` plus where in the file the data starts (the slow path
        for segments with unverified bytes, logstore/verify.py)."""
        start, first = self.find(offset)
        if first is None or (max_offset is not None and first.last_offset >= max_offset):
            return start, b""
        limit = start + max(max_bytes, 0)
        end = start + first.length
        chunk = self.index_interval_bytes + 512
        try:
            for pos, header in walk(self.file, end, self.size, check=False, chunk=chunk):
                if pos + header.length > limit or (
                    max_offset is not None and header.last_offset >= max_offset
                ):
                    break
                end = pos + header.length
        except CorruptBatchError:
            pass  # a damaged header: serve up to it; the next read starts there and finds it
        return start, self.file.read_at(start, end - start)

    def read(self, offset: int, max_bytes: int, max_offset: int | None) -> bytes:
        """Whole batches from the one containing ``offset``; see PartitionLog.read."""
        offsets = self.offsets
        i = bisect.bisect_right(offsets, offset) - 1
        if i >= 0 and offsets[i] == offset and offset < self.next_offset:
            # A reader continuing where its last read ended starts at a batch boundary that
            # the index knows (every batch of index_interval_bytes or more is indexed): when
            # the index also knows a boundary past it within the limits, one pread does it,
            # without reading the first header (_index_boundary vouches for max_offset).
            start = self.positions[i]
            limit = start + max(max_bytes, 0)
            if self.size <= limit and (max_offset is None or self.next_offset <= max_offset):
                end = self.size  # the rest of the segment fits
            else:
                end = self._index_boundary(start, limit, max_offset)
            if end > start:
                return self.file.read_at(start, end - start)
        tail = self._tail_offsets
        j = bisect.bisect_right(tail, offset) - 1
        if (j >= 0 and tail[j] == offset and offset < self.next_offset
                and self.size <= (start := self._tail_positions[j]) + max(max_bytes, 0)
                and (max_offset is None or self.next_offset <= max_offset)):
            # a batch start among the latest appended, and the rest of the segment fits
            return self.file.read_at(start, self.size - start)
        start, first = self.find(offset)
        if first is None:
            return b""
        if max_offset is not None and first.last_offset >= max_offset:
            return b""
        limit = start + max(max_bytes, 0)
        end = self._index_boundary(start, limit, max_offset)
        if end <= start:
            # No index entry to go by: walk the headers after the first batch.
            end = start + first.length
            chunk = self.index_interval_bytes + 512
            for pos, header in walk(self.file, end, self.size, check=False, chunk=chunk):
                if pos + header.length > limit or (
                    max_offset is not None and header.last_offset >= max_offset
                ):
                    break
                end = pos + header.length
        return self.file.read_at(start, end - start)

    def _index_boundary(self, start: int, limit: int, max_offset: int | None) -> int:
        """The furthest batch boundary in (start, limit] known without reading the file
        (the segment end or an index entry) before which every batch ends below max_offset."""
        if self.size <= limit and (max_offset is None or self.next_offset <= max_offset):
            return self.size
        j = bisect.bisect_right(self.positions, limit) - 1
        if max_offset is not None:
            j = min(j, bisect.bisect_right(self.offsets, max_offset) - 1)
        return self.positions[j] if j >= 0 else 0

    def first_offset_at_or_after(self, timestamp: int) -> int | None:
        """First record offset with timestamp >= ``timestamp`` in this segment, or None."""
        if self.max_timestamp < timestamp:
            return None
        i = bisect.bisect_left(self.times, timestamp) - 1
        start = self.positions[i] if i >= 0 else 0
        for pos, header in walk(self.file, start, self.size, check=False):
            if header.max_timestamp >= timestamp:
                data = self.file.read_at(pos, header.length)
                cols = B.decode_columns(data)
                for off, ts in zip(cols.offsets, cols.timestamps, strict=True):
                    if ts >= timestamp:
                        return off
        return None

    def batches(self, start: int = 0) -> Iterator[tuple[B.BatchHeader, bytes]]:
        """(header, bytes) of every batch from byte ``start`` (used by the cleaner)."""
        for pos, header in walk(self.file, start, self.size, check=False):
            yield header, self.file.read_at(pos, header.length)

    # ----------------------------------------------------------------------------- indexes

    def save_indexes(self, fs: FileSystem, directory: Path) -> None:
        """Write .index and .timeindex atomically; they cover exactly ``self.size`` bytes."""
        meta = [_INDEX_VERSION, self.size, self.next_offset, self.max_timestamp, self.last_epoch]
        fs.write_checkpoint(
            directory / segment_name(self.base_offset, ".index"),
            [*meta, self.offsets, self.positions],
        )
        fs.write_checkpoint(
            directory / segment_name(self.base_offset, ".timeindex"),
            [*meta, self.times, self.offsets],
        )
        self.indexes_saved = True

    def load_indexes(self, fs: FileSystem, directory: Path) -> bool:
        """Load both index files if they are intact and cover the whole file; else False."""
        index = fs.read_checkpoint(directory / segment_name(self.base_offset, ".index"))
        tindex = fs.read_checkpoint(directory / segment_name(self.base_offset, ".timeindex"))
        try:
            version, size, next_offset, max_ts, last_epoch, offsets, positions = index
            meta2, times, offsets2 = tindex[:5], tindex[5], tindex[6]
        except (TypeError, ValueError):
            return False
        if (
            version != _INDEX_VERSION
            or meta2 != index[:5]
            or size != self.file.size()
            or offsets != offsets2
            or not len(offsets) == len(positions) == len(times)
        ):
            return False
        self.size, self.next_offset, self.max_timestamp, self.last_epoch = (
            size,
            next_offset,
            max_ts,
            last_epoch,
        )
        self.offsets, self.positions, self.times = offsets, positions, times
        self._forget_tail()
        self._bytes_since_index = 0
        self.indexes_saved = True
        return True

    def delete_indexes(self, fs: FileSystem, directory: Path) -> None:
        for suffix in (".index", ".timeindex"):
            fs.remove(directory / segment_name(self.base_offset, suffix))
