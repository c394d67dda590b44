"""A simulated broker's partition log: the shipped ``PartitionLog`` on a ``MemFileSystem``.

``SimLog`` owns one broker's "disk" (a ``MemFileSystem``) and the real log on it: leaders
append through ``append_validated`` (the broker's produce path), followers through
``append_replicated``, truncation and reads are the log's own, a restart is
``PartitionLog.open`` (the real recovery, revalidating what lies above the recovery point),
producer-state snapshots are real ``ProducerSnapshots`` files, and a bit flip is a byte
flipped in the segment file (its digest fails). Detection of damage is the log store's where
the log store detects it: recovery (a damaged batch above the recovery point),
read-time verification (bytes opened unchecked) and ``scrub`` (sealed segments).

What the checker needs beside it: ``values`` mirrors the log's records by offset, decoded
from the bytes the log holds (after every append, truncation, flip and reopen), and
``flipped`` names the batches whose bytes were flipped while the process ran - the real log
trusts what it wrote itself until it is reopened, so "a read of the rotten bytes finds the
digest mismatch" is still modelled for them (``first_flipped``).
"""

from __future__ import annotations

import bisect
from pathlib import Path

from rillet.logstore import batch as B
from rillet.logstore.config import LogConfig
from rillet.logstore.errors import DamagedLogError
from rillet.logstore.log import PartitionLog
from rillet.logstore.memfs import MemFileSystem
from rillet.logstore.producer_snapshots import ProducerSnapshots

# small segments, so logs have sealed segments (scrubbed) and an active one; the sim calls
# flush() on its checkpoint timer (flush.ms is irrelevant: a process crash keeps the page
# cache, see SimBroker)
LOG_CONFIG = LogConfig(segment_bytes=4096, index_interval_bytes=512)
READ_BYTES = 1 << 16


def _decode(view) -> list[bytes]:
    try:
        return [r.value for r in B.decode_records(view, validate=False)]
    except Exception:  # a flipped byte broke the payload's framing
        header = B.read_header(view)
        return [b"<undecodable>"] * (header.last_offset_delta + 1)


class SimLog:
    def __init__(self, broker_id: int) -> None:
        self.fs = MemFileSystem()
        self.directory = Path(f"/broker-{broker_id}/t-0")
        self.log = PartitionLog.open(self.directory, LOG_CONFIG, 0, fs=self.fs)
        self.snapshots = ProducerSnapshots(self.fs, self.directory)
        self.values: list[bytes] = []  # values[offset], decoded from the log's bytes
        self.bases: list[int] = []  # base offset of every batch
        self.lasts: list[int] = []  # last offset of every batch
        self.low_water = 0  # lowest log end offset since the checker last looked
        self.flipped: set[int] = set()  # base offsets flipped while this process ran

    # ------------------------------------------------------------------------- the view

    @property
    def epochs(self):
        return self.log.epochs

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return len(self.values)  # the mirror is kept at the log's end (checked as it moves)

    def batch_headers(self, from_offset: int | None = None):
        return self.log.batch_headers(from_offset)

    def _mirror(self, data) -> None:
        for header, view in B.iter_batches(data, validate=False):
            if header.base_offset != len(self.values):
                raise AssertionError(f"mirror at {header.base_offset}, has {len(self.values)}")
            self.bases.append(header.base_offset)
            self.lasts.append(header.base_offset + header.last_offset_delta)
            self.values.extend(_decode(view))

    def _remirror(self) -> None:
        """Decode the whole log again from its segment files (after a reopen or a flip)."""
        self.values, self.bases, self.lasts = [], [], []
        for seg in self.log.segments:
            self._mirror_segment(seg, seg.base_offset)
        self._check_end()

    # -------------------------------------------------------------------------- writing

    def appended(self, start: int) -> None:
        """Mirror what the log gained since ``start`` (its log end before an append)."""
        seg = self.log.active_segment  # (an append never spans more than a roll)
        if seg.base_offset > len(self.values):
            self._mirror_segment(self.log.segments[-2], len(self.values))
        self._mirror_segment(seg, len(self.values))
        self._check_end()

    def _check_end(self) -> None:
        if len(self.values) != self.log.log_end_offset:
            raise AssertionError(
                f"mirror ends at {len(self.values)}, log {self.log.log_end_offset}"
            )

    def _mirror_segment(self, seg, offset: int) -> None:
        position, header = seg.find(offset)
        if header is not None:
            self._mirror(seg.file.read_at(position, seg.size - position))

    def append_replicated(self, data: bytes, now_ms: int) -> None:
        self.log.append_replicated(data, now_ms)  # validates every digest first
        self._mirror(data)
        self._check_end()

    def truncate_to(self, offset: int) -> None:
        self.log.truncate_to(offset)
        end = self.log.log_end_offset
        if end < len(self.values):
            i = bisect.bisect_left(self.bases, end)
            del self.values[end:], self.bases[i:], self.lasts[i:]
            self.low_water = min(self.low_water, end)
        self.flipped = {o for o in self.flipped if o < end}
        self._check_end()

    # -------------------------------------------------------------------------- reading

    def read(self, offset: int, max_batches: int) -> tuple[bytes, int]:
        """Up to ``max_batches`` whole batches from ``offset`` as the real log serves them
        (verifying bytes opened unchecked): (raw bytes, the offset after them). A damaged
        batch found ends the read there (``log.damage``; DamagedLogError at its start)."""
        try:
            data = self.log.read(offset, READ_BYTES)
        except DamagedLogError:
            return b"", offset
        end, size = offset, 0
        for n, (header, _view) in enumerate(B.iter_batches(data, validate=False)):
            if n == max_batches:
                break
            end, size = header.next_offset, size + header.length
        return bytes(data[:size]), end

    def first_flipped(self, start: int, end: int) -> int | None:
        """Base offset of the first flipped batch holding an offset in [start, end), or None."""
        found = None
        for base in self.flipped:
            i = bisect.bisect_left(self.bases, base)
            if base < end and self.lasts[i] >= start:
                found = base if found is None else min(found, base)
        return found

    # --------------------------------------------------------------------------- faults

    def flip(self, index: int) -> int:
        """Bit rot in batch ``index``: a byte of its first value flips in the segment file
        (page cache and disk), so its digest fails. Returns the batch's base offset."""
        base = self.bases[index]
        self._flip_at(base)
        self.flipped.add(base)
        return base

    def _flip_at(self, base: int) -> None:
        i = bisect.bisect_right(self.log._bases, base) - 1
        seg = self.log.segments[i]
        position, header = seg.find(base)
        raw = seg.file.read_at(position, header.length)
        value = self.values[base]
        at = raw.find(value, B.HEADER_SIZE) if value else -1
        at = at if at >= 0 else header.length - 1
        self.fs.flip(seg.file.path, position + at, 0x01)
        self._remirror()

    def damage_before_reopen(self, index: int) -> int:
        """A damaged crash: batch ``index`` rots while the process is down. Returns its
        base offset."""
        base = self.bases[index]
        self._flip_at(base)
        return base

    def reopen(self, now_ms: int) -> None:
        """The process died (its page cache survives): open the log again with the real
        recovery. Damage recovery finds is cut off and in ``log.recovery.damage``."""
        self.log.abandon()
        self.log = PartitionLog.open(self.directory, LOG_CONFIG, now_ms, fs=self.fs)
        self.snapshots = ProducerSnapshots(self.fs, self.directory)
        self.snapshots.recover_state(self.log)  # (the broker's open: stale snapshots go)
        self.flipped = set()  # the new process trusts nothing it did not check itself
        self._remirror()
        self.low_water = min(self.low_water, self.log_end_offset)
