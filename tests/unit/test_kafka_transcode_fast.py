"""The fetch path's fast transcoder (actors/kafka_transcode_fast.py) against the general
encoder (``kafka_batch.encode_records`` + ``encode_batch`` over cbor2-decoded columns, what
``to_kafka_parts`` ran for every batch before): byte-identical Kafka batches for every shape
(the fixed shape, the columns path, headers), and the result decodes back to the same
records."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.actors import kafka_batch as KB
from rillet.actors import kafka_transcode as T
from rillet.actors import kafka_transcode_fast as F
from rillet.logstore import batch as B

from tests.support import examples

pytestmark = pytest.mark.timeout(300)

BASE_TS = 1_700_000_000_000
# lengths around the varint boundaries (63/64, 8191/8192) and the cached tables' end
_LENGTHS = st.sampled_from([0, 1, 2, 23, 24, 62, 63, 64, 65, 100, 255, 256, 8191, 8192,
                            16_319, 16_320, 16_383, 16_384, 20_000])


def _general(stamped: bytes) -> bytes:
    """The general transcoder, as ``to_kafka_parts`` ran it for every batch before."""
    return b"".join(F.reference(stamped))


def _column(draw, n: int, kind: str):
    if kind == "null":
        return [None] * n
    if kind == "fixed":
        size = draw(_LENGTHS) if n <= 4 else draw(st.sampled_from([0, 1, 16, 63, 64, 100]))
        return [draw(st.binary(min_size=size, max_size=size)) if i < 2 else bytes([i % 251]) * size
                for i in range(n)]
    if kind == "varied":
        return [draw(st.binary(max_size=130)) for _ in range(n)]
    if kind == "large":
        return [bytes(draw(_LENGTHS)) for _ in range(n)]
    return [draw(st.none() | st.binary(max_size=70)) for _ in range(n)]  # mixed


_TS = {
    "zero": st.just(0),
    "small": st.integers(0, 23),
    "one byte": st.integers(-64, 63),
    "byte": st.integers(0, 255),
    "large": st.integers(-(1 << 40), 1 << 40),
}


@st.composite
def stored_batches(draw):
    """One stamped rillet batch of a drawn shape."""
    n = draw(st.sampled_from([1, 2, 3, 63, 64, 65, 150]) | st.integers(1, 40))
    keys = _column(draw, n, draw(st.sampled_from(["null", "fixed", "varied", "mixed"])))
    values = _column(draw, n, draw(st.sampled_from(
        ["null", "fixed", "fixed", "varied", "mixed"] + (["large"] if n <= 4 else []))))
    tds = [0] + [draw(_TS[draw(st.sampled_from(list(_TS)))]) if draw(st.booleans()) else 0
                 for _ in range(n - 1)]
    if draw(st.booleans()):  # one kind of delta for the whole batch
        kind = draw(st.sampled_from(list(_TS)))
        tds = [0] + [draw(_TS[kind]) for _ in range(n - 1)]
    headers = [None] * n
    if draw(st.integers(0, 4)) == 0:
        pair = st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=10)).map(list)
        headers = [draw(st.none() | st.lists(pair, max_size=3)) for _ in range(n)]
    offs, last = None, n - 1
    if draw(st.integers(0, 3)) == 0:  # compacted: sparse offset deltas
        offs = sorted(draw(st.sets(st.integers(0, 3 * n), min_size=n, max_size=n)))
        last = offs[-1]
    codec = draw(st.sampled_from([B.Codec.NONE] * 3 + [B.Codec.GZIP]))
    flags = draw(st.sampled_from([0, B.TRANSACTIONAL_FLAG, B.LOG_APPEND_TIME_FLAG]))
    payload = cbor2.dumps([offs, tds, keys, values, headers])
    batch = bytearray(B.encode_batch(
        payload=B._compress(codec, payload), attributes=int(codec) | flags,  # noqa: SLF001
        last_offset_delta=last, first_timestamp=BASE_TS, max_timestamp=BASE_TS + max(tds),
        record_count=n, producer_id=draw(st.sampled_from([-1, 7])),
        producer_epoch=draw(st.sampled_from([-1, 2])), base_sequence=draw(st.sampled_from([-1, 5]))))
    B.stamp(batch, 0, draw(st.integers(0, 1 << 40)), draw(st.integers(-1, 10)))
    return bytes(batch), (offs, tds, keys, values, headers)


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(stored_batches(), min_size=1, max_size=3))
def test_fast_transcoding_equals_the_general_encoder_and_decodes_back(batches) -> None:
    stamped = b"".join(b for b, _ in batches)
    got = T.to_kafka(stamped, None)
    assert got == _general(stamped)
    decoded = KB.decode_batches(got)
    assert len(decoded) == len(batches)
    for kb, (raw, (offs, tds, keys, values, headers)) in zip(decoded, batches, strict=True):
        h = B.read_header(raw)
        assert kb.base_offset == h.base_offset
        assert kb.partition_leader_epoch == h.leader_epoch
        assert kb.offset_deltas == (list(range(len(keys))) if offs is None else offs)
        assert kb.timestamp_deltas == tds
        assert kb.base_timestamp == h.first_timestamp
        assert kb.max_timestamp == h.max_timestamp
        assert kb.keys == keys
        assert kb.values == values
        assert kb.headers == [hs and [[name, v] for name, v in hs] or None for hs in headers]
        assert (kb.producer_id, kb.producer_epoch, kb.base_sequence) == (
            h.producer_id, h.producer_epoch, h.base_sequence)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 8191, 8192, 8193, 16_383, 16_384, 20_000])
def test_record_counts_across_the_offset_delta_varint_boundaries(n) -> None:
    """Dense offsets past 63 and 8191 (longer offset delta varints: the fixed shape's runs
    of records one stride apart change there) and past the cached tables' 16384 records."""
    values = [bytes([i % 256]) * 10 for i in range(n)]
    tds = [i % 24 for i in range(n)]
    payload = cbor2.dumps([None, tds, [None] * n, values, [None] * n])
    batch = bytearray(B.encode_batch(payload=payload, attributes=0, last_offset_delta=n - 1,
                                     first_timestamp=BASE_TS, max_timestamp=BASE_TS + 23,
                                     record_count=n))
    B.stamp(batch, 0, 1000, 3)
    assert T.to_kafka(bytes(batch), None) == _general(bytes(batch))


def test_the_fixed_shape_reads_the_payload_in_place() -> None:
    """The common shape (dense, null keys, one value length, small deltas, no headers)
    takes the fixed path, not cbor2."""
    n = 150
    payload = cbor2.dumps([None, [i % 5 for i in range(n)], [None] * n, [b"v" * 100] * n,
                           [None] * n])
    assert F._dense_payload(payload, 2, len(payload), n) is not None  # noqa: SLF001
