"""The record batch format: round trips with every codec, validation, corruption detection."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rillet.logstore import batch as B
from rillet.logstore.batch import (
    HEADER_SIZE,
    MAGIC,
    BatchBuilder,
    Codec,
    Record,
    decode_columns,
    decode_records,
    iter_batches,
    read_header,
    records,
    stamp,
    validate,
)
from rillet.logstore.errors import CorruptBatchError, LogStoreError, MissingCodecError

opt_bytes = st.none() | st.binary(max_size=40)
headers_st = st.lists(st.tuples(st.text(max_size=8), opt_bytes), max_size=3)
record_st = st.tuples(st.integers(0, 2**41), opt_bytes, opt_bytes, headers_st)
records_st = st.lists(record_st, min_size=1, max_size=12)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(recs, codec=Codec.NONE, **kw) -> bytes:
    b = BatchBuilder(codec, **kw)
    for ts, key, value, headers in recs:
        b.append(ts, key, value, headers)
    return b.build()


def expected(recs, base=0):
    return [
        Record(base + i, ts, key, value, tuple(tuple(h) for h in headers))
        for i, (ts, key, value, headers) in enumerate(recs)
    ]


@pytest.mark.parametrize("codec", list(Codec))
@fast
@given(recs=records_st, base=st.integers(0, 2**62), epoch=st.integers(-1, 2**31 - 1))
def test_round_trip_every_codec(codec, recs, base, epoch):
    raw = bytearray(build(recs, codec))
    stamp(raw, 0, base, epoch)
    header = validate(raw)
    assert header.codec is codec
    assert header.base_offset == base and header.leader_epoch == epoch
    assert header.record_count == len(recs) and header.last_offset_delta == len(recs) - 1
    assert header.last_offset == base + len(recs) - 1 and header.next_offset == base + len(recs)
    assert header.first_timestamp == recs[0][0]
    assert header.max_timestamp == max(r[0] for r in recs)
    assert header.length == len(raw) and header.magic == MAGIC
    assert decode_records(raw) == expected(recs, base)
    cols = decode_columns(bytes(raw))
    assert cols.offsets == list(range(base, base + len(recs)))
    assert cols.values == [r[2] for r in recs]


def test_null_is_distinct_from_empty():
    raw = build([(1, None, None, ()), (2, b"", b"", ()), (3, b"k", None, [("h", None)])])
    recs = decode_records(raw)
    assert [(r.key, r.value) for r in recs] == [(None, None), (b"", b""), (b"k", None)]
    assert recs[2].headers == (("h", None),)
    assert recs[0].headers == ()


def test_builder_fields_and_flags():
    b = BatchBuilder(
        Codec.GZIP,
        producer_id=7,
        producer_epoch=3,
        base_sequence=42,
        is_transactional=True,
        is_control=True,
    )
    assert b.record_count == 0
    before = b.size_in_bytes
    assert b.append(10, b"k", b"v" * 100) == 0
    assert b.append(5, None, b"w") == 1
    assert b.record_count == 2 and b.size_in_bytes > before + 100
    h = validate(b.build())
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (7, 3, 42)
    assert h.is_transactional and h.is_control and h.codec is Codec.GZIP
    assert (h.first_timestamp, h.max_timestamp, h.base_offset, h.leader_epoch) == (10, 10, 0, -1)


def test_size_estimate_tracks_built_size():
    b = BatchBuilder()
    for i in range(500):
        b.append(1_700_000_000_000 + i, b"key-%d" % i, b"v" * 100, [("trace", b"abc")])
    size = len(b.build())
    assert 0.8 * size <= b.size_in_bytes <= 1.25 * size


def test_builder_rejects_bad_types_and_empty_build():
    b = BatchBuilder()
    with pytest.raises(TypeError):
        b.append(1, "text key", b"v")
    with pytest.raises(TypeError):
        b.append(1, None, 5)
    with pytest.raises(TypeError):
        b.append(1, None, b"v", [(b"bytes-name", b"v")])
    assert b.record_count == 0
    with pytest.raises(ValueError):
        b.build()
    b.append(1, bytearray(b"k"), memoryview(b"v"))
    assert decode_records(b.build())[0].key == b"k"


def test_codec_from_name():
    assert Codec.from_name("zstd") is Codec.ZSTD
    assert Codec.from_name("None") is Codec.NONE
    assert Codec.from_name("snappy") is Codec.SNAPPY
    with pytest.raises(ValueError, match="none, gzip, zstd, lz4, snappy"):
        Codec.from_name("brotli")


@pytest.mark.parametrize(
    ("codec", "module", "extra"),
    [(Codec.ZSTD, "zstandard", "zstd"), (Codec.LZ4, "lz4.frame", "lz4")],
)
def test_missing_codec_names_the_extra(monkeypatch, codec, module, extra):
    raw = build([(1, None, b"v" * 50, ())], codec)
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingCodecError, match=rf"pip install rillet\[{extra}\]") as err:
        build([(1, None, b"v", ())], codec)
    assert err.value.extra == extra
    with pytest.raises(MissingCodecError):
        decode_records(raw)
    assert validate(raw).codec is codec  # validation never needs the codec


@fast
@given(recs=records_st, codec=st.sampled_from(list(Codec)), data=st.data())
def test_single_bit_flip_is_detected(recs, codec, data):
    raw = bytearray(build(recs, codec))
    # base_offset [0, 8) and leader_epoch [12, 16) are stamped, not protected by the digest.
    pos = data.draw(st.integers(8, len(raw) - 1).filter(lambda p: not 12 <= p < 16))
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(CorruptBatchError):
        validate(raw)
    with pytest.raises(CorruptBatchError):
        decode_records(raw)
    with pytest.raises(CorruptBatchError):
        list(records(raw))


@fast
@given(recs=records_st, data=st.data())
def test_truncation_is_detected(recs, data):
    raw = build(recs)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(CorruptBatchError):
        validate(raw[:cut])
    with pytest.raises(CorruptBatchError):
        list(iter_batches(raw + raw[:cut] if cut else raw + raw[:1]))


@fast
@given(junk=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_typed_errors(junk):
    for fn in (validate, decode_records, lambda b: list(records(b))):
        try:
            fn(junk)
        except LogStoreError:
            pass


@fast
@given(recs=records_st)
def test_payload_with_valid_digest_but_bad_structure(recs):
    # A hostile producer can frame any payload with a correct digest: decode must not lie.
    for payload in (b"\xff", B.cbor2.dumps([1, 2]), B.cbor2.dumps([None, [], [], [], []])):
        raw = B.encode_batch(
            payload=payload,
            attributes=0,
            last_offset_delta=len(recs) - 1,
            first_timestamp=0,
            max_timestamp=0,
            record_count=len(recs),
        )
        validate(raw)  # framing is fine
        with pytest.raises(CorruptBatchError):
            decode_records(raw)


def test_header_checks():
    raw = bytearray(build([(1, None, b"v", ())]))
    with pytest.raises(CorruptBatchError, match="truncated header"):
        read_header(raw[: HEADER_SIZE - 1])
    bad = bytearray(raw)
    bad[16] = 0
    with pytest.raises(CorruptBatchError, match="magic"):
        read_header(bad)
    with pytest.raises(CorruptBatchError, match="length"):
        validate(raw + b"\x00")
    err = pytest.raises(CorruptBatchError, lambda: list(iter_batches(raw + bad))).value
    assert err.position == len(raw)


def test_iter_batches_and_records_over_concatenation():
    a = bytearray(build([(1, None, b"a", ()), (2, None, b"b", ())]))
    b = bytearray(build([(3, b"k", b"c", ())], Codec.GZIP))
    stamp(a, 0, 100, 1)
    stamp(b, 0, 102, 2)
    buf = bytes(a + b)
    headers = [h for h, _ in iter_batches(buf)]
    assert [(h.base_offset, h.leader_epoch) for h in headers] == [(100, 1), (102, 2)]
    assert [(r.offset, r.value) for r in records(buf)] == [(100, b"a"), (101, b"b"), (102, b"c")]
    assert list(iter_batches(b"")) == []


def test_stamp_keeps_digest_valid():
    raw = bytearray(build([(1, None, b"v", ())]))
    digest = read_header(raw).digest
    stamp(raw, 0, 2**40, 17)
    h = validate(raw)
    assert h.digest == digest and h.base_offset == 2**40 and h.leader_epoch == 17
