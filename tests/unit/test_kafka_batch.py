"""Kafka's record batch v2 codec (actors/kafka_batch.py) and the transcoding to and from
rillet batches (actors/kafka_transcode.py), checked against kafka-python's independent
implementation of the format, plus a hypothesis fuzz: any bytes, and any valid batch with
bytes changed behind a recomputed CRC, decode or raise KafkaBatchError, nothing else."""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from rillet.actors import kafka_batch as KB
from rillet.actors import kafka_transcode as T
from rillet.logstore import batch as B
from rillet.logstore import txn_markers as M

RECORDS = [
    (1_700_000_000_000, b"k", b"v" * 100, [("h", b"x"), ("null", None), ("empty", b"")]),
    (1_700_000_000_005, None, None, []),
    (1_699_999_999_999, b"", b"", []),
    (1_700_000_100_000, b"k" * 20_000, b"\xff" * 70_000, [("\u00e9", b"\0")]),
]


def _kafka_python_batch(codec: int, records=RECORDS, pid=7, epoch=1, seq=5) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=0,
                                  producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                                  batch_size=1 << 24)
    for i, (ts, key, value, headers) in enumerate(records):
        b.append(i, ts, key, value, headers)
    return bytes(b.build())


def _absolute(records):
    return [(i, ts, k, v, tuple(map(tuple, h))) for i, (ts, k, v, h) in enumerate(records)]


@pytest.mark.parametrize("codec", [KB.NONE, KB.GZIP, KB.LZ4, KB.ZSTD])
def test_decodes_what_kafka_python_encodes(codec) -> None:
    (batch,) = KB.decode_batches(_kafka_python_batch(codec))
    assert batch.codec == codec
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (7, 1, 5)
    assert batch.records == _absolute(RECORDS)


def _kafka_python_read(data: bytes) -> list[tuple]:
    out = []
    records = MemoryRecords(data)
    while (batch := records.next_batch()) is not None:
        assert batch.validate_crc()
        out += [(r.offset, r.timestamp, r.key, r.value, tuple(map(tuple, r.headers)))
                for r in batch]
    return out


@pytest.mark.parametrize("codec", [KB.NONE, KB.GZIP, KB.LZ4, KB.ZSTD])
def test_kafka_python_reads_what_we_encode(codec) -> None:
    ts = [r[0] for r in RECORDS]
    data = KB.encode_batch(
        records=KB.encode_records(None, [t - ts[0] for t in ts], [r[1] for r in RECORDS],
                                  [r[2] for r in RECORDS], [r[3] for r in RECORDS]),
        record_count=len(RECORDS), base_offset=40, attributes=codec,
        last_offset_delta=len(RECORDS) - 1, base_timestamp=ts[0], max_timestamp=max(ts))
    assert _kafka_python_read(data) == [(40 + i, *r[1:]) for i, r in enumerate(_absolute(RECORDS))]
    assert KB.decode_batches(data)[0].records == [
        (40 + i, *r[1:]) for i, r in enumerate(_absolute(RECORDS))]


def test_snappy_raw_and_xerial_framed() -> None:
    import cramjam

    ts = [r[0] for r in RECORDS]
    body = KB.encode_records(None, [t - ts[0] for t in ts], [r[1] for r in RECORDS],
                             [r[2] for r in RECORDS], [r[3] for r in RECORDS])
    raw = KB.encode_batch(records=body, record_count=4, attributes=KB.SNAPPY,
                          last_offset_delta=3, base_timestamp=ts[0], max_timestamp=max(ts))
    assert KB.decode_batches(raw)[0].records == _absolute(RECORDS)
    # the Java client's framing: magic, version, compat, then [int32 length][raw block]s
    half = len(body) // 2
    blocks = [bytes(cramjam.snappy.compress_raw(part)) for part in (body[:half], body[half:])]
    framed = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + b"".join(
        struct.pack(">i", len(b)) + b for b in blocks)
    head = bytearray(raw[:KB.HEADER_SIZE])
    data = head + framed
    struct.pack_into(">i", data, 8, len(data) - KB.LOG_OVERHEAD)
    struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
    assert KB.decode_batches(bytes(data))[0].records == _absolute(RECORDS)


def test_transcoding_keeps_nulls_headers_timestamps_and_producer_fields() -> None:
    for codec in (KB.NONE, KB.GZIP, KB.LZ4, KB.ZSTD):
        stored = T.to_rillet(_kafka_python_batch(codec), recent=None)
        header = B.validate(stored)  # a whole, intact rillet batch: the log accepts it
        assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 1, 5)
        assert header.max_timestamp == max(r[0] for r in RECORDS)
        assert [(r.offset, r.timestamp, r.key, r.value, r.headers)
                for r in B.records(stored)] == _absolute(RECORDS)
        fetched = bytearray(stored)
        B.stamp(fetched, 0, 1000, 4)  # what the log does on append
        back = T.to_kafka(bytes(fetched) + bytes(fetched), recent=None)  # two, as fetched
        assert _kafka_python_read(back) == 2 * [(1000 + i, *r[1:])
                                                for i, r in enumerate(_absolute(RECORDS))]
        (first, _) = KB.decode_batches(back)
        assert (first.partition_leader_epoch, first.producer_id, first.base_sequence) == (4, 7, 5)


def test_recent_kafka_batches_are_served_as_produced_with_offset_and_epoch_stamped() -> None:
    recent = T.RecentBatches(10_000_000)
    produced = _kafka_python_batch(KB.GZIP)
    fetched = bytearray(T.to_rillet(produced, recent))
    B.stamp(fetched, 0, 77, 3)
    back = T.to_kafka(bytes(fetched), recent)
    assert (recent.hits, recent.misses) == (1, 0)
    assert back[8:12] == produced[8:12] and back[16:] == produced[16:]  # the client's bytes
    (batch,) = KB.decode_batches(back)  # the CRC does not cover offset and epoch
    assert (batch.base_offset, batch.partition_leader_epoch, batch.codec) == (77, 3, KB.GZIP)
    assert _kafka_python_read(back) == [(77 + i, *r[1:]) for i, r in enumerate(_absolute(RECORDS))]
    # another batch (a native producer's): transcoded; a full cache forgets the oldest
    other = bytearray(F_encode([b"n"]))
    B.stamp(other, 0, 78, 3)
    assert _kafka_python_read(T.to_kafka(bytes(other), recent))[0][3] == b"n"
    assert recent.misses == 1
    B.stamp(other, 0, 90, 4)  # transcoded once: a second reader is served from the cache
    again = T.to_kafka(bytes(other), recent)
    assert (recent.hits, recent.misses) == (2, 1)
    assert _kafka_python_read(again) == [(90, 1, None, b"n", ())]
    assert KB.decode_batches(again)[0].partition_leader_epoch == 4
    second = _kafka_python_batch(KB.GZIP, RECORDS[:2])
    small = T.RecentBatches(len(produced) + len(second) - 1)
    T.to_rillet(produced, small)
    T.to_rillet(second, small)
    assert small.get(bytes(fetched[B.DIGEST_START:B.DIGEST_END])) is None
    assert small.get(T.to_rillet(second, None)[B.DIGEST_START:B.DIGEST_END]) == second


def F_encode(values) -> bytes:
    b = B.BatchBuilder()
    for v in values:
        b.append(1, None, v)
    return b.build()


def test_control_markers_keep_their_kafka_layout() -> None:
    marker = M.build_marker_batch(M.EndTxnMarker(9, 2, M.ControlType.COMMIT, 3), 1_000)
    (batch,) = KB.decode_batches(T.to_kafka(marker))
    assert batch.is_control and batch.is_transactional and batch.producer_id == 9
    assert batch.keys == [M.marker_key(M.ControlType.COMMIT)]
    assert batch.values == [M.marker_value(3)]


def test_a_produce_carries_exactly_one_dense_batch() -> None:
    one = _kafka_python_batch(KB.NONE)
    with pytest.raises(KB.KafkaBatchError, match="exactly one"):
        T.to_rillet(one + one)
    with pytest.raises(KB.KafkaBatchError, match="no record batch"):
        T.to_rillet(b"")


def test_crc_magic_and_truncation_are_refused() -> None:
    data = bytearray(_kafka_python_batch(KB.NONE))
    data[-1] ^= 1
    with pytest.raises(KB.KafkaBatchError, match="CRC"):
        KB.decode_batches(bytes(data))
    good = _kafka_python_batch(KB.NONE)
    with pytest.raises(KB.KafkaBatchError, match="length"):
        KB.decode_batches(good[:-1])
    old = bytearray(good)
    old[16] = 1
    with pytest.raises(KB.KafkaBatchError, match="magic 1"):
        KB.decode_batches(bytes(old))


def test_a_decompression_bomb_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(KB, "MAX_UNCOMPRESSED", 1000)
    for codec in (KB.GZIP, KB.LZ4, KB.ZSTD, KB.SNAPPY):
        data = KB.encode_batch(records=b"\0" * 5000, record_count=1, attributes=codec,
                               last_offset_delta=0, base_timestamp=0, max_timestamp=0)
        with pytest.raises(KB.KafkaBatchError, match="too large|truncated"):
            KB.decode_batches(data)


def _recrc(data: bytearray) -> bytes:
    if len(data) >= KB.HEADER_SIZE:
        struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_any_bytes_decode_or_raise_kafka_batch_error(data) -> None:
    try:
        KB.decode_batches(data)
        T.to_rillet(data)
    except KB.KafkaBatchError:
        pass


_VALID = [_kafka_python_batch(c, RECORDS[:3]) for c in (KB.NONE, KB.GZIP)]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_VALID), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                         min_size=1, max_size=6),
       st.integers(0, 10_000))
def test_fuzz_changed_bytes_behind_a_good_crc(valid, changes, cut) -> None:
    data = bytearray(valid)
    for at, value in changes:
        data[at % len(data)] = value
    data = data[:max(cut, KB.HEADER_SIZE)]
    try:
        T.to_rillet(_recrc(data))
    except KB.KafkaBatchError:
        pass


# --- aiokafka's Cython record reader (the produce path's decoder) against ours

def test_the_produce_path_reads_records_with_aiokafkas_c_reader() -> None:
    assert KB._CBatch is not None, "aiokafka's C extension is a dependency (pyproject.toml)"


def _records_section(batch: bytes) -> tuple[bytes, int, int]:
    (*_, last_delta, _bt, _mt, _pid, _pe, _bs, count) = KB.HEADER.unpack_from(batch)
    return batch[KB.HEADER_SIZE:], count, last_delta


_record = st.tuples(
    st.integers(-(2**40), 2**40),  # timestamps around a base: negative deltas too
    st.none() | st.binary(max_size=130),  # 63/64 and 127/128 byte varint boundaries
    st.none() | st.binary(max_size=9000),  # ... and 8191/8192
    st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=5)), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_record, min_size=1, max_size=40))
def test_the_c_reader_gives_our_readers_columns(records) -> None:
    body, count, last_delta = _records_section(_kafka_python_batch(KB.NONE, records))
    ours = KB._decode_records(body, count, last_delta)
    assert KB._decode_records_c(body, count, last_delta) == ours
    assert ours[2:4] == ([r[1] for r in records], [r[2] for r in records])


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_VALID[:1]), st.lists(st.tuples(st.integers(0, 10_000),
                                                       st.integers(0, 255)),
                                             min_size=1, max_size=6),
       st.integers(0, 10_000), st.integers(-1, 50))
def test_fuzz_the_c_reader_agrees_or_raises_kafka_batch_error(valid, changes, cut, count) -> None:
    """Damaged record sections (changed bytes, cut short, a wrong count): the C reader
    raises KafkaBatchError or reads what ours reads. It may accept what ours refuses in
    one way only, as Kafka's own reader does: a negative key or value length other than -1
    is null."""
    data = bytearray(_records_section(valid)[0])
    for at, value in changes:
        data[at % len(data)] = value
    body = bytes(data[:cut])
    try:
        got = KB._decode_records_c(body, count, 60)
    except KB.KafkaBatchError:
        return
    try:
        assert got == KB._decode_records(body, count, 60)
    except KB.KafkaBatchError as e:
        assert "length" in str(e), e
