"""The leader's rewrites on append (logstore/rewrite.py through logstore/validator.py):
LogAppendTime stamps, a topic's compression.type, and what must survive them (digest,
idempotence, the time index)."""

from __future__ import annotations

import pytest
from rillet.logstore import batch as B
from rillet.logstore.batch import BatchBuilder, Codec
from rillet.logstore.config import LogConfig
from rillet.logstore.errors import CorruptBatchError
from rillet.logstore.log import PartitionLog
from rillet.logstore.producer_state import ProducerStateManager
from rillet.logstore.validator import append_validated

CREATED = 1_600_000_000_000  # the producer's timestamps
NOW = 1_700_000_000_000  # the leader's clock


def batch(n: int = 3, codec: Codec = Codec.NONE, seq: int = -1, pid: int = -1,
          first: int = 0) -> bytes:
    b = BatchBuilder(codec, producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                     base_sequence=seq)
    for i in range(n):
        b.append(CREATED + i, b"k%d" % (first + i), b"value-%d" % (first + i) * 20)
    return b.build()


def open_log(tmp_path, **config) -> PartitionLog:
    return PartitionLog.open(tmp_path / "t-0", LogConfig(**config), NOW)


def stored(log: PartitionLog) -> list[tuple[B.BatchHeader, bytes]]:
    data = log.read(0, 1 << 20)
    return [(h, bytes(mv)) for h, mv in B.iter_batches(data)]  # every digest checked


def test_log_append_time_stamps_the_batch_and_every_record(tmp_path) -> None:
    log = open_log(tmp_path, message_timestamp_type="LogAppendTime")
    ps = ProducerStateManager()
    r = append_validated(log, ps, batch(3), 0, NOW)
    assert (r.error, r.base_offset, r.log_append_time) == ("NONE", 0, NOW)
    [(header, data)] = stored(log)
    assert header.is_log_append_time and header.max_timestamp == NOW
    assert header.first_timestamp == CREATED  # the payload is the producer's, untouched
    assert B.decode_columns(data).timestamps == [NOW] * 3
    assert [r.timestamp for r in B.decode_records(data)] == [NOW] * 3
    # the time index and ListOffsets by timestamp see the append time, not the create time
    assert log.offset_for_timestamp(CREATED + 1) == 0
    assert log.offset_for_timestamp(NOW) == 0
    assert log.offset_for_timestamp(NOW + 1) is None
    later = append_validated(log, ps, batch(2, first=3), 0, NOW + 50)
    assert later.log_append_time == NOW + 50
    assert log.offset_for_timestamp(NOW + 1) == 3
    log.close()


def test_create_time_keeps_the_producer_timestamps_and_clears_a_client_bit(tmp_path) -> None:
    log = open_log(tmp_path)
    ps = ProducerStateManager()
    assert append_validated(log, ps, batch(2), 0, NOW).log_append_time == -1
    # a client's batch that claims LogAppendTime: the bit is the broker's, cleared
    forged = bytearray(batch(2, first=2))
    # the attributes field (offset 49) is inside the digest: signed again, a valid batch
    attrs = int.from_bytes(forged[49:51], "big") | B.LOG_APPEND_TIME_FLAG
    forged[49:51] = attrs.to_bytes(2, "big")
    forged[B.DIGEST_START:B.DIGEST_END] = B.digest_at(memoryview(forged), 0, len(forged))
    assert append_validated(log, ps, bytes(forged), 0, NOW).error == "NONE"
    for header, data in stored(log):
        assert not header.is_log_append_time
        assert B.decode_columns(data).timestamps[0] == CREATED
    log.close()


def test_idempotent_retry_of_a_stamped_batch_is_still_a_duplicate(tmp_path) -> None:
    """The stamp is not part of the sequence: a retry after a lost answer is answered with
    the original offsets, nothing is written twice, the next sequence follows."""
    log = open_log(tmp_path, message_timestamp_type="LogAppendTime", compression_type="zstd")
    ps = ProducerStateManager()
    first = append_validated(log, ps, batch(3, seq=0, pid=5), 0, NOW)
    again = append_validated(log, ps, batch(3, seq=0, pid=5), 0, NOW + 10)
    assert (again.error, again.base_offset, again.last_offset) == ("NONE", 0, 2)
    assert again.duplicate is not None and first.duplicate is None
    assert append_validated(log, ps, batch(2, seq=3, pid=5, first=3), 0, NOW).base_offset == 3
    assert log.log_end_offset == 5
    for header, _ in stored(log):
        assert (header.producer_id, header.codec) == (5, Codec.ZSTD)
    log.close()


@pytest.mark.parametrize(("produced", "topic"), [
    (Codec.NONE, "zstd"), (Codec.NONE, "gzip"), (Codec.NONE, "lz4"), (Codec.NONE, "snappy"),
    (Codec.GZIP, "zstd"), (Codec.LZ4, "uncompressed"), (Codec.ZSTD, "snappy"),
])
def test_compression_type_recompresses_a_batch_of_another_codec(tmp_path, topic,
                                                                produced) -> None:
    log = open_log(tmp_path, compression_type=topic)
    ps = ProducerStateManager()
    sent = batch(4, produced)
    assert append_validated(log, ps, sent, 0, NOW).error == "NONE"
    [(header, data)] = stored(log)
    want = Codec.NONE if topic == "uncompressed" else Codec.from_name(topic)
    assert header.codec is want
    assert B.decode_columns(data)[1:] == B.decode_columns(sent)[1:]  # same records
    assert not header.is_log_append_time
    log.close()


def test_producer_keeps_the_codec_and_the_same_bytes(tmp_path) -> None:
    log = open_log(tmp_path)  # compression.type=producer, CreateTime: nothing rewritten
    sent = batch(3, Codec.GZIP)
    append_validated(log, ProducerStateManager(), sent, 0, NOW)
    [(header, data)] = stored(log)
    assert header.digest == B.read_header(sent).digest and data[16:] == sent[16:]
    log.close()


def test_a_corrupt_batch_is_refused_not_signed_again(tmp_path) -> None:
    log = open_log(tmp_path, compression_type="zstd", message_timestamp_type="LogAppendTime")
    bad = bytearray(batch(3))
    bad[-3] ^= 0xFF
    with pytest.raises(CorruptBatchError):
        append_validated(log, ProducerStateManager(), bytes(bad), 0, NOW)
    assert log.log_end_offset == 0
    log.close()


def test_several_batches_of_one_request_are_each_rewritten(tmp_path) -> None:
    log = open_log(tmp_path, compression_type="gzip", message_timestamp_type="LogAppendTime")
    r = append_validated(log, ProducerStateManager(),
                         batch(2) + batch(2, Codec.LZ4, first=2), 0, NOW)
    assert (r.error, r.base_offset, r.last_offset) == ("NONE", 0, 3)
    got = stored(log)
    assert [(h.base_offset, h.codec, h.max_timestamp) for h, _ in got] == [
        (0, Codec.GZIP, NOW), (2, Codec.GZIP, NOW)]
    log.close()


@pytest.mark.parametrize(
    ("config", "timestamp", "refused"),
    [
        ({"message_timestamp_after_max_ms": 1000}, NOW + 1001, "after.max.ms=1000 ahead"),
        ({"message_timestamp_after_max_ms": 1000}, NOW + 1000, None),
        ({"message_timestamp_before_max_ms": 1000}, NOW - 1001, "before.max.ms=1000 behind"),
        ({"message_timestamp_before_max_ms": 1000}, NOW - 1000, None),
        ({"message_timestamp_difference_max_ms": 10}, NOW - 11, "before.max.ms=10 behind"),
        ({"message_timestamp_difference_max_ms": 10}, NOW + 11, "after.max.ms=10 ahead"),
        # before.max.ms set: difference.max.ms no longer answers for "behind" (Kafka's getter)
        ({"message_timestamp_difference_max_ms": 10, "message_timestamp_before_max_ms": 100},
         NOW - 50, None),
        # LogAppendTime: the producer's timestamps are not checked, the stamp replaces them
        ({"message_timestamp_difference_max_ms": 10,
          "message_timestamp_type": "LogAppendTime"}, NOW - 10**9, None),
    ],
)
def test_kip_937_record_timestamps_out_of_bounds_are_refused(tmp_path, config, timestamp,
                                                             refused) -> None:
    log = open_log(tmp_path, **config)
    b = BatchBuilder()
    b.append(NOW, b"k", b"fresh")  # first and newest-but-one: the bad one is not first
    b.append(timestamp, b"k", b"v")
    r = append_validated(log, ProducerStateManager(), b.build(), 0, NOW)
    if refused is None:
        assert r.error == "NONE", r
    else:
        assert r.error == "INVALID_TIMESTAMP" and refused in r.message, r
        assert log.log_end_offset == 0
    log.close()
