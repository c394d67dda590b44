"""A Fetch answer's frame built without copying the records (actors/kafka_wire.py ``Chunks``,
actors/kafka_transcode.py ``to_kafka_parts``): the same bytes as a plain encoding, and the
recent-batches cache never serves another batch's bytes for an offset."""

from __future__ import annotations

import io
import struct
import uuid
from datetime import timedelta

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_writer
from kio.static.primitive import i32Timedelta
from rillet.actors import kafka_batch as KB
from rillet.actors import kafka_transcode as T
from rillet.actors import kafka_wire as W
from rillet.actors.kafka_metadata import build
from rillet.logstore import batch as B
from rillet.logstore import batch_fast as F


def _stored(values: list[bytes], offset: int, epoch: int = 0) -> bytes:
    b = bytearray(F.encode_dense([1_700_000_000_000] * len(values), [None] * len(values),
                                 values, None, keyed=False))
    B.stamp(b, 0, offset, epoch)
    return bytes(b)


def _answer(version: int, records):
    cls = load_response_schema(1, version)
    mod = __import__(cls.__module__, fromlist=["PartitionData"])
    part = build(mod.PartitionData, partition_index=0, error_code=ErrorCode.none,
                 high_watermark=9, last_stable_offset=9, log_start_offset=0,
                 aborted_transactions=None, records=records)
    topic = uuid.UUID(int=5) if version >= 13 else "t"
    return build(cls, throttle_time=i32Timedelta.parse(timedelta(0)), error_code=ErrorCode.none,
                 session_id=0, responses=(build(mod.FetchableTopicResponse, topic=topic,
                                                topic_id=topic, partitions=(part,)),))


def _plain(correlation_id: int, body) -> bytes:
    buf = io.BytesIO()
    entity_writer(body.__header_schema__)(buf, body.__header_schema__(correlation_id=correlation_id))
    entity_writer(type(body))(buf, body)
    return struct.pack(">i", buf.tell()) + buf.getvalue()


def test_chunked_records_encode_as_the_joined_bytes_in_every_fetch_version() -> None:
    recent = T.RecentBatches(1 << 20)
    records = _stored([b"a", b"b"], 0) + _stored([b"c"], 2)
    T.to_kafka(records, recent)  # remembered: the parts are views of the cache's bytes
    parts = T.to_kafka_parts(records, recent)
    assert recent.hits == 2 and any(isinstance(p, memoryview) for p in parts)
    joined = b"".join(parts)
    assert joined == T.to_kafka(records, None)  # cached and transcoded: the same bytes
    for version in (4, 11, 12, 13, 17):  # legacy and compact (flexible) encodings
        chunked = W.encode_response(7, _answer(version, W.Chunks(parts)))
        assert chunked == _plain(7, _answer(version, joined))
    assert W.encode_response(7, _answer(12, b"")) == _plain(7, _answer(12, b""))


def test_a_rewritten_offset_is_never_served_from_a_stale_cached_batch() -> None:
    # offsets 0-1 fetched (and remembered), then the log truncated (a new leader) or
    # compacted and other records written at the same offsets: the cache is keyed by the
    # batch's digest (its content), so the new batch is transcoded, never the old one served
    recent = T.RecentBatches(1 << 20)
    old = _stored([b"old-0", b"old-1"], 0, epoch=1)
    assert KB.decode_batches(T.to_kafka(old, recent))[0].values == [b"old-0", b"old-1"]
    new = _stored([b"new-0", b"new-1"], 0, epoch=2)
    (batch,) = KB.decode_batches(b"".join(T.to_kafka_parts(new, recent)))
    assert batch.values == [b"new-0", b"new-1"] and batch.partition_leader_epoch == 2
    # the same records copied to another offset and epoch (a compacted segment keeps a
    # batch's records): served from the cache, stamped with the new offset and epoch
    moved = _stored([b"old-0", b"old-1"], 40, epoch=3)
    hits = recent.hits
    (batch,) = KB.decode_batches(b"".join(T.to_kafka_parts(moved, recent)))
    assert recent.hits == hits + 1
    assert (batch.base_offset, batch.partition_leader_epoch, batch.values) == (
        40, 3, [b"old-0", b"old-1"])


def _produced(i: int, recent: T.RecentBatches) -> bytes:
    """A Kafka producer's one-record batch, appended (stamped at offset ``i``)."""
    kafka = KB.encode_batch(records=KB.encode_records(None, [0], [None], [b"v%03d" % i], [None]),
                            record_count=1, last_offset_delta=0, base_timestamp=1, max_timestamp=1)
    stored = bytearray(T.to_rillet(kafka, recent))
    B.stamp(stored, 0, i, 0)
    return bytes(stored)


def test_a_consumer_from_further_back_than_the_cache_still_hits_the_producers_batches() -> None:
    one = len(KB.encode_batch(records=KB.encode_records(None, [0], [None], [b"v000"], [None]),
                              record_count=1, last_offset_delta=0, base_timestamp=1,
                              max_timestamp=1))
    for split in (False, True):
        recent = T.RecentBatches(6 * one)  # holds the last 6 of the 10 batches produced
        log = [_produced(i, recent) for i in range(10)]
        transcoded = T.RecentBatches(2 * one) if split else recent
        hits = recent.hits
        values = [KB.decode_batches(b"".join(T.to_kafka_parts(b, recent, transcoded)))[0].values
                  for b in log]  # from offset 0: 4 transcoded, then the kept ones
        assert values == [[b"v%03d" % i] for i in range(10)]
        # one cache: each transcoded batch evicted the oldest kept one, the next to be read
        # (an LRU under a scan); two caches: the producer's last 6 are all served as kept
        assert recent.hits - hits == (6 if split else 0)
