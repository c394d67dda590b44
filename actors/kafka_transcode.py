"""Kafka record batches (v2) <-> rillet record batches, at the KAFKA listener's edge.

The log stores rillet's batch format only (logstore/batch.py), so every feature that reads
batches (native consumers, replication, compaction, transactions, share groups) exists
once. A Kafka producer's batch is transcoded on the way in, a fetch's batches on the way
out; docs/kafka-compat.md gives the measurements behind this choice
(bench/kafka_batch_bench.py).

What is kept, both ways: keys, values, headers (null key, null value and null header value
distinct from empty), record timestamps, producer id, epoch and base sequence (so rillet's
idempotence checks a Kafka producer's sequences), the transactional and control bits
(markers have the same key/value layout in both formats), offset deltas. Compression on the
way in keeps the producer's codec where rillet has it (gzip, lz4, zstd; snappy is stored as
lz4); fetch answers are uncompressed (the broker's CPU is the scarce resource, not the
client's link).
"""

from __future__ import annotations

import cbor2

from rillet.logstore import batch as B

from . import kafka_batch as KB
from .kafka_batch import KafkaBatchError

# Kafka codec -> the rillet codec a produced batch is stored with
_STORED_CODEC = {
    KB.NONE: B.Codec.NONE,
    KB.GZIP: B.Codec.GZIP,
    KB.SNAPPY: B.Codec.LZ4,
    KB.LZ4: B.Codec.LZ4,
    KB.ZSTD: B.Codec.ZSTD,
}
_FLAGS = KB.TRANSACTIONAL_FLAG | KB.CONTROL_FLAG  # the same bits in both formats


def to_rillet(records) -> bytes:
    """A produce request's records for one partition (exactly one v2 batch, as Kafka
    requires from v3 on) -> one unstamped rillet batch. KafkaBatchError if malformed."""
    batches = KB.decode_batches(records)
    if len(batches) != 1:
        raise KafkaBatchError(f"{len(batches)} record batches: a produce carries exactly one")
    b = batches[0]
    n = len(b.keys)
    if n == 0:
        raise KafkaBatchError("empty record batch")
    if b.last_offset_delta != n - 1 or b.offset_deltas != list(range(n)):
        raise KafkaBatchError("record offset deltas are not 0, 1, 2, ...")
    payload = cbor2.dumps([None, b.timestamp_deltas, b.keys, b.values, b.headers])
    codec = _STORED_CODEC[b.codec]
    return B.encode_batch(
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


def to_kafka(records) -> bytes:
    """Stamped rillet batches (a fetch's records) -> the same records as uncompressed v2
    batches, batch for batch (offsets, leader epochs, producer fields kept)."""
    if not records:
        return b""
    out = []
    for header, mv in B.iter_batches(records, validate=False):
        offs, tds, keys, values, headers = B._payload_columns(mv, header)  # noqa: SLF001
        out.append(KB.encode_batch(
            records=KB.encode_records(offs, tds, keys, values, headers),
            record_count=header.record_count,
            base_offset=header.base_offset,
            partition_leader_epoch=header.leader_epoch,
            attributes=header.attributes & _FLAGS,
            last_offset_delta=header.last_offset_delta,
            base_timestamp=header.first_timestamp,
            max_timestamp=header.max_timestamp,
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
        ))
    return b"".join(out)
