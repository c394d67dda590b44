"""The byte format of a producer-state snapshot (``ProducerStateManager.snapshot``/``load``).

Big-endian, checksummed (crc32 of everything before it, last 4 bytes)::

    format 2:  "RPSV" u8 version=2  i64 map_end_offset  u32 producer count
               per producer: i64 producer_id  i16 epoch  i64 last_timestamp  u8 batch count
                             i64 first offset of its open transaction (-1: none)
                             i32 coordinator epoch of its last marker (-1: none)
                             i64 offset of its last marker (-1: none)
                             then per batch: i32 first_seq  i32 last_seq  i64 first_offset
                                             i64 last_offset  i64 timestamp
    format 1:  "RPS1" i64 map_end_offset u32 count, producers without the three transaction
               fields (written before transactions existed; loads with no transaction open)

A snapshot of an unknown version, a bad checksum, short or trailing bytes raise
``ProducerSnapshotError``: the loader then uses an older snapshot or the log.
"""

from __future__ import annotations

import struct
import zlib

from .producer_state import (
    BatchMetadata,
    ProducerSnapshotError,
    ProducerStateEntry,
    ProducerStateManager,
)

_MAGIC = b"RPS1"  # format 1: no transaction fields
_HEAD = struct.Struct(">4sqI")  # magic, map_end_offset, producer count
_ENTRY = struct.Struct(">qhqB")  # producer_id, epoch, last_timestamp, batch count
_MAGIC_V = b"RPSV"  # format 2 onwards: magic, version byte
SNAPSHOT_VERSION = 2
_HEAD2 = struct.Struct(">4sBqI")  # magic, version, map_end_offset, producer count
# producer_id, epoch, last_timestamp, batch count, current txn first offset, coordinator
# epoch, offset of the last marker applied
_ENTRY2 = struct.Struct(">qhqBqiq")
_BATCH = struct.Struct(">iiqqq")  # first_seq, last_seq, first_offset, last_offset, timestamp
_CRC = struct.Struct(">I")


def encode(state: ProducerStateManager) -> bytes:
    parts = [_HEAD2.pack(_MAGIC_V, SNAPSHOT_VERSION, state.map_end_offset, len(state.producers))]
    for pid in sorted(state.producers):
        e = state.producers[pid]
        parts.append(
            _ENTRY2.pack(
                pid,
                e.producer_epoch,
                e.last_timestamp,
                len(e.batches),
                e.current_txn_first_offset,
                e.coordinator_epoch,
                e.last_marker_offset,
            )
        )
        parts.extend(
            _BATCH.pack(b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp)
            for b in e.batches
        )
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode(cls: type[ProducerStateManager], data: bytes) -> ProducerStateManager:
    data = bytes(data)
    if len(data) < _HEAD.size + _CRC.size:
        raise ProducerSnapshotError("too short")
    body, (crc,) = data[: -_CRC.size], _CRC.unpack(data[-_CRC.size :])
    if zlib.crc32(body) != crc:
        raise ProducerSnapshotError("checksum mismatch")
    magic = body[:4]
    if magic == _MAGIC:  # format 1
        _, map_end, count = _HEAD.unpack_from(body, 0)
        pos, entry_struct = _HEAD.size, _ENTRY
    elif magic == _MAGIC_V:
        if len(body) < _HEAD2.size:
            raise ProducerSnapshotError("too short")
        _, version, map_end, count = _HEAD2.unpack_from(body, 0)
        if version != SNAPSHOT_VERSION:
            raise ProducerSnapshotError(f"unknown snapshot version {version}")
        pos, entry_struct = _HEAD2.size, _ENTRY2
    else:
        raise ProducerSnapshotError(f"bad magic {magic!r}")
    state = cls(map_end)
    try:
        for _ in range(count):
            pid, epoch, ts, n, *txn = entry_struct.unpack_from(body, pos)
            pos += entry_struct.size
            entry = ProducerStateEntry(pid, epoch, last_timestamp=ts)
            if txn:
                (
                    entry.current_txn_first_offset,
                    entry.coordinator_epoch,
                    entry.last_marker_offset,
                ) = txn
            for _ in range(n):
                entry.batches.append(BatchMetadata(*_BATCH.unpack_from(body, pos)))
                pos += _BATCH.size
            state.producers[pid] = entry
    except struct.error as e:
        raise ProducerSnapshotError(f"truncated entry: {e}") from None
    if pos != len(body):
        raise ProducerSnapshotError("trailing bytes")
    return state
