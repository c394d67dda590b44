"""Kafka record batches (v2) <-> rillet record batches, at the KAFKA listener's edge.

The log stores rillet's batch format only (logstore/batch.py), so every feature that reads
batches (native consumers, replication, compaction, transactions, share groups) exists
once. A Kafka producer's batch is transcoded on the way in, a fetch's batches on the way
out; docs/kafka-compat.md gives the measurements behind this choice
(bench/kafka_batch_bench.py).

What is kept, both ways: keys, values, headers (null key, null value and null header value
distinct from empty), record timestamps, producer id, epoch and base sequence (so rillet's
idempotence checks a Kafka producer's sequences), the transactional and control bits
(markers have the same key/value layout in both formats), offset deltas, and on the way out
the timestamp-type bit (a LogAppendTime topic's batches: Kafka clients then take the batch's
max timestamp, the append time, as every record's). Compression on the way in keeps the
producer's codec (gzip, snappy, lz4, zstd; the topic's compression.type may then recompress,
logstore/rewrite.py); fetch answers are uncompressed (the broker's CPU is the scarce
resource, not the client's link).

``RecentBatches``: the v2 bytes of recently produced Kafka batches (``RECENT``) and of
recently transcoded ones (``TRANSCODED``), by the digest of the rillet batch. A fetch of
such a batch (a tailing Kafka consumer, a second consumer of the same data) is served from
them with its offset and leader epoch stamped (fields the CRC-32C does not cover) instead
of being transcoded (again); anything else is transcoded (actors/kafka_transcode_fast.py: the
common shapes by whole columns, no Python code per record). Two caches, not one: a consumer
reading from further back than one cache holds would otherwise evict, with each batch it
transcodes, the producer's batches it is about to read (an LRU under a scan: no hits at
all); transcoded batches now only evict each other.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict

from rillet.logstore import batch as B
from rillet.logstore import batch_fast as F
from rillet.logstore.errors import CorruptBatchError

from . import kafka_batch as KB
from .kafka_batch import KafkaBatchError
from .kafka_transcode_fast import encode as fast_encode

# Kafka codec -> the rillet codec a produced batch is stored with
_STORED_CODEC = {
    KB.NONE: B.Codec.NONE,
    KB.GZIP: B.Codec.GZIP,
    KB.SNAPPY: B.Codec.SNAPPY,
    KB.LZ4: B.Codec.LZ4,
    KB.ZSTD: B.Codec.ZSTD,
}
_FLAGS = KB.TRANSACTIONAL_FLAG | KB.CONTROL_FLAG  # the same bits in both formats
# a batch with these (broker-set) bits is never served back as its producer sent it
_NOT_REPLAYED = KB.TIMESTAMP_TYPE_FLAG | KB.DELETE_HORIZON_FLAG
_HEAD = struct.Struct(">qii")  # base_offset, batch_length, partition_leader_epoch
RECENT_BATCH_BYTES = 64 * 1024 * 1024
_unpack = B.HEADER.unpack_from


class RecentBatches:
    """A bounded LRU (total bytes) of Kafka batch bytes by rillet digest; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def put(self, digest: bytes, kafka: bytes) -> None:
        if len(kafka) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(digest, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[digest] = kafka
            self._bytes += len(kafka)
            while self._bytes > self.max_bytes:
                _, gone = self._entries.popitem(last=False)
                self._bytes -= len(gone)

    def get(self, digest: bytes) -> bytes | None:
        with self._lock:
            found = self._entries.get(digest)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(digest)
            return found


RECENT = RecentBatches(RECENT_BATCH_BYTES)  # Kafka producers' batches
TRANSCODED_BATCH_BYTES = 32 * 1024 * 1024
TRANSCODED = RecentBatches(TRANSCODED_BATCH_BYTES)  # batches transcoded for a fetch
_SAME = object()


def to_rillet(records, recent: RecentBatches | None = RECENT) -> bytes:
    """A produce request's records for one partition (exactly one v2 batch, as Kafka
    requires from v3 on) -> one unstamped rillet batch, remembered in ``recent``.
    KafkaBatchError if malformed."""
    batches = KB.decode_batches(records)
    if len(batches) != 1:
        raise KafkaBatchError(f"{len(batches)} record batches: a produce carries exactly one")
    b = batches[0]
    n = len(b.keys)
    if n == 0:
        raise KafkaBatchError("empty record batch")
    if b.last_offset_delta != n - 1 or b.offset_deltas != list(range(n)):
        raise KafkaBatchError("record offset deltas are not 0, 1, 2, ...")
    payload = F.dense_payload(b.timestamp_deltas, b.keys, b.values, b.headers)
    codec = _STORED_CODEC[b.codec]
    out = B.encode_batch(
        payload=B._compress(codec, payload),  # noqa: SLF001 - the format's own compressor
        attributes=int(codec) | (b.attributes & _FLAGS),
        last_offset_delta=n - 1,
        first_timestamp=b.base_timestamp,
        max_timestamp=b.base_timestamp + max(b.timestamp_deltas),
        producer_id=b.producer_id,
        producer_epoch=b.producer_epoch,
        base_sequence=b.base_sequence,
        record_count=n,
    )
    if recent is not None and not b.attributes & _NOT_REPLAYED:
        recent.put(out[B.DIGEST_START:B.DIGEST_END], bytes(records))
    return out


def to_kafka(records, recent: RecentBatches | None = RECENT) -> bytes:
    """Stamped rillet batches (a fetch's records) -> the same records as v2 batches, batch
    for batch (offsets, leader epochs, producer fields kept): a batch ``recent`` holds is
    served from there, stamped (its producer's bytes, or an earlier transcoding); any other
    is transcoded, uncompressed, and remembered in ``recent``."""
    return b"".join(to_kafka_parts(records, recent)) if records else b""


def to_kafka_parts(records, recent: RecentBatches | None = RECENT,
                   transcoded: RecentBatches | None | object = _SAME) -> list:
    """``to_kafka`` as parts to be written one after the other (a fetch answer is joined
    once, into its frame: actors/kafka_wire.py ``Chunks``): a remembered batch is a new
    16-byte head (base offset, length, leader epoch: what the CRC-32C does not cover) and a
    view of the kept bytes after it, never a copy. A batch transcoded here is remembered in
    ``transcoded`` (by default ``recent``; the fetch path passes ``TRANSCODED``)."""
    if transcoded is _SAME:
        transcoded = recent
    out: list = []
    if not records:
        return out
    append = out.append
    if type(records) is not bytes:  # the fast path reads bytes in place
        records = bytes(records)
    pos, total = 0, len(records)
    while pos < total:  # iter_batches(validate=False) without a BatchHeader per batch
        fields = _unpack(records, pos) if total - pos >= B.HEADER_SIZE else None
        if fields is None or fields[3] != B.MAGIC or fields[1] < B.HEADER_SIZE:
            B.read_header(records, pos)  # raises the reader's CorruptBatchError
        length, digest = fields[1], fields[4]
        if pos + length > total:
            raise CorruptBatchError(f"truncated batch: {total - pos} of {length}", pos)
        start, pos = pos, pos + length
        kept = None
        if recent is not None:
            kept = recent.get(digest)
        if kept is None and transcoded is not None and transcoded is not recent:
            kept = transcoded.get(digest)
        if kept is not None:
            append(_HEAD.pack(fields[0], len(kept) - KB.LOG_OVERHEAD, fields[2]))
            append(memoryview(kept)[_HEAD.size:])
            continue
        encoded = fast_encode(fields, records, start)
        append(encoded)
        if transcoded is not None:  # the next reader of this batch reuses it
            transcoded.put(digest, encoded)
    return out
