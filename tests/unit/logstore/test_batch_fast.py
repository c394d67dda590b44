"""logstore.batch_fast: the clients' fast paths agree with logstore.batch (the format's one
definition) and with cbor2, byte for byte and value for value, on random batches."""

from __future__ import annotations

import struct

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.logstore.batch import (
    HEADER_SIZE,
    BatchBuilder,
    Codec,
    decode_columns,
    iter_batches,
    read_header,
    stamp,
)
from rillet.logstore.batch_fast import (
    decode_columns_at,
    decode_payload,
    dense_payload,
    digest_at,
    encode_bytes_array,
    encode_dense,
    encode_timestamps,
    nulls,
    scan_batches,
    with_producer,
)
from rillet.logstore.errors import CorruptBatchError

from tests.support import examples


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.none() | st.binary(max_size=300), min_size=1, max_size=60))
def test_bytes_array_equals_cbor2(items) -> None:
    assert encode_bytes_array(items) == cbor2.dumps(items)


@pytest.mark.parametrize("length", [0, 23, 24, 255, 256, 65535, 65536])
def test_bytes_array_head_sizes(length) -> None:
    items = [b"x" * length] * 3
    assert encode_bytes_array(items) == cbor2.dumps(items)
    assert encode_bytes_array(items + [b"y"]) == cbor2.dumps(items + [b"y"])


@settings(max_examples=examples(100), deadline=None)
@given(st.integers(0, 2**41), st.lists(st.integers(-1000, 100_000), min_size=1, max_size=80))
def test_timestamps_equal_cbor2(first, offsets) -> None:
    ts = [first + o for o in offsets]
    assert encode_timestamps(ts) == (cbor2.dumps([t - ts[0] for t in ts]), ts[0], max(ts))


def _payload(deltas, keys, values, headers) -> bytes:
    return cbor2.dumps([None, deltas, keys, values, headers])


_column = st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 30), min_size=n, max_size=n)
    | st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n),
    st.lists(st.none(), min_size=n, max_size=n)
    | st.lists(st.binary(max_size=30), min_size=n, max_size=n)
    | st.lists(st.none() | st.binary(max_size=30), min_size=n, max_size=n),
    st.lists(st.binary(min_size=7, max_size=7), min_size=n, max_size=n)
    | st.lists(st.none() | st.binary(max_size=300), min_size=n, max_size=n),
    st.lists(st.none(), min_size=n, max_size=n)
    | st.lists(st.none() | st.lists(st.tuples(st.text(max_size=3), st.none() | st.binary(
        max_size=3)).map(list), max_size=2), min_size=n, max_size=n),
))


@settings(max_examples=examples(150), deadline=None)
@given(_column)
def test_dense_payload_is_cbor2s_bytes(columns) -> None:
    """What the KAFKA listener stores for a produced batch (actors/kafka_transcode.py):
    byte for byte what cbor2 writes, every column shape."""
    assert dense_payload(*columns) == _payload(*columns)


@settings(max_examples=examples(100), deadline=None)
@given(st.data())
def test_decode_payload_matches_cbor2_or_declines(data) -> None:
    n = data.draw(st.integers(1, 50))
    deltas = data.draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    length = data.draw(st.integers(0, 300))
    uniform = data.draw(st.booleans())
    values = data.draw(st.lists(st.binary(min_size=length, max_size=length) if uniform
                                else st.none() | st.binary(max_size=40), min_size=n, max_size=n))
    keys = data.draw(st.sampled_from([[None] * n, [b"k" * 5] * n, [b"a"] + [None] * (n - 1)]))
    headers = data.draw(st.sampled_from([[None] * n, [[["h", b"v"]]] + [None] * (n - 1)]))
    payload = _payload(deltas, keys, values, headers)
    got = decode_payload(payload, n)
    if got is None:
        return  # declined: the caller decodes with cbor2
    d, k, v, h = got
    assert list(d) == deltas
    assert (list(k) if k is not None else [None] * n) == keys
    assert (list(v) if v is not None else [None] * n) == values
    assert h is None and headers == [None] * n


def test_decode_payload_takes_the_producer_shape() -> None:
    values = [b"v" * 100] * 200
    payload = _payload([0] * 100 + [5] * 100, [None] * 200, values, [None] * 200)
    deltas, keys, got, headers = decode_payload(payload, 200)
    assert list(got) == values and keys is None and headers is None
    assert list(deltas) == [0] * 100 + [5] * 100


@pytest.mark.parametrize("payload, n", [
    (b"", 1), (b"\x85", 1), (cbor2.dumps([[0], [0], [None], [b"x"], [None]]), 1),  # offsets
    (_payload([0], [None], [b"x"], [None]), 2),  # count mismatch
    (_payload([0], [None], [b"x"], [None]) + b"\x00", 1),  # trailing byte
    (_payload([300], [None], [b"x"], [None]), 1),  # wide delta
    (_payload([0, 0], [None, None], [b"x" * 30, b"y" * 30], [None, None])[:-3], 2),  # truncated
])
def test_decode_payload_declines_other_shapes(payload, n) -> None:
    assert decode_payload(payload, n) is None


def test_nulls() -> None:
    assert nulls(3) == cbor2.dumps([None] * 3) and nulls(30) == cbor2.dumps([None] * 30)


# ------------------------------------------------------ against logstore.batch's builder/reader

_value = st.none() | st.binary(max_size=120)
_headers = st.lists(st.tuples(st.text(max_size=4), st.none() | st.binary(max_size=4)), max_size=2)


@st.composite
def _records(draw):
    """Records of one batch in the shapes producers write (fast path) and others (fallbacks)."""
    n = draw(st.integers(1, 60))
    first = draw(st.integers(0, 2**41))
    close = draw(st.booleans())  # deltas < 24 ms: the decoder's fast shape
    deltas = draw(st.lists(st.integers(0, 23) if close else st.integers(-5000, 70_000),
                           min_size=n, max_size=n))
    if draw(st.booleans()):  # values of one length: the decoder's fast shape
        size = draw(st.integers(0, 300))
        values = draw(st.lists(st.binary(min_size=size, max_size=size), min_size=n, max_size=n))
    else:
        values = draw(st.lists(_value, min_size=n, max_size=n))
    keys = draw(st.sampled_from(["none", "some", "all"]))
    keys = [None if keys == "none" else draw(_value if keys == "some" else st.binary(max_size=9))
            for _ in range(n)]
    headers = [draw(_headers) if draw(st.integers(0, 9)) == 0 else () for _ in range(n)]
    return [(first + d, k, v, h) for d, k, v, h in zip(deltas, keys, values, headers,
                                                         strict=True)]


def _build(records) -> bytes:
    builder = BatchBuilder(Codec.NONE)
    for ts, key, value, headers in records:
        builder.append(ts, key, value, headers)
    return builder.build()


def _dense(records, **producer) -> bytes:
    hdrs = {i: [tuple(h) for h in r[3]] for i, r in enumerate(records) if r[3]}
    return encode_dense([r[0] for r in records], [r[1] for r in records],
                        [r[2] for r in records], hdrs or None,
                        keyed=any(r[1] is not None for r in records), **producer)


@settings(max_examples=100, deadline=None)
@given(_records(), st.booleans())
def test_fast_encoder_writes_the_builders_bytes(records, idempotent) -> None:
    producer = {"producer_id": 7, "producer_epoch": 2, "base_sequence": 40} if idempotent else {}
    want = _build(records)
    if idempotent:
        want = with_producer(want, 7, 2, 40)
        assert read_header(want).producer_id == 7
    assert _dense(records, **producer) == want


@settings(max_examples=100, deadline=None)
@given(_records(), st.integers(0, 2**40), st.integers(0, 1000))
def test_fast_decoder_reads_what_the_reader_reads(records, base, epoch) -> None:
    raw = bytearray(_build(records))
    stamp(raw, 0, base, epoch)
    raw = bytes(raw)
    n = len(records)
    got = decode_columns_at(raw, HEADER_SIZE, len(raw), n)
    want = decode_columns(raw)
    if got is None:  # declined: only shapes outside the fast one may be declined
        assert (any(r[3] for r in records) or any(not 0 <= r[0] - records[0][0] < 24
                                                 for r in records)
                or len({len(r[2]) for r in records if r[2] is not None}) > 1
                or len({len(r[1]) for r in records if r[1] is not None}) > 1
                or any(r[1] is None for r in records) != all(r[1] is None for r in records)
                or any(r[2] is None for r in records) != all(r[2] is None for r in records))
        return
    deltas, keys, values, headers = got
    header = read_header(raw)
    assert [header.first_timestamp + d for d in deltas] == want.timestamps
    assert (list(keys) if keys is not None else [None] * n) == want.keys
    assert (list(values) if values is not None else [None] * n) == want.values
    assert headers is None and want.headers == [None] * n


def test_producer_shape_takes_the_fast_decoder() -> None:
    records = [(1000 + i // 50, None, b"v" * 100, ()) for i in range(150)]
    raw = _build(records)
    deltas, keys, values, headers = decode_columns_at(raw, HEADER_SIZE, len(raw), 150)
    assert keys is None and headers is None and list(values) == [b"v" * 100] * 150
    assert list(deltas) == [i // 50 for i in range(150)]


def _log(batches) -> bytes:
    out = bytearray()
    base = 0
    for records in batches:
        raw = bytearray(_build(records))
        stamp(raw, 0, base, 3)
        out += raw
        base += len(records)
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(st.lists(_records(), min_size=1, max_size=4), st.integers(0, 300))
def test_framing_agrees_with_iter_batches(batches, after) -> None:
    log = _log(batches)
    want = [(h.base_offset, h.attributes, h.first_timestamp, h.last_offset_delta,
             h.record_count, h.digest, bytes(mv)) for h, mv in iter_batches(log)]
    got, next_offset = scan_batches(log, after, True)
    kept = [w for w in want if w[0] + w[3] >= after]
    assert [(b[0], b[1], b[2], b[3], b[4], b[7], log[b[5]:b[6]]) for b in got] == kept
    assert next_offset == max(after, want[-1][0] + want[-1][3] + 1)
    for b in got:
        assert digest_at(memoryview(log), b[5], b[6]) == b[7]


def _assert_framings_agree(log: bytes) -> None:
    """scan_batches (validating) fails exactly when iter_batches does, with the same message
    and position, and otherwise keeps the data batches that move the next offset forward."""
    try:
        headers = [h for h, _ in iter_batches(log)]
    except CorruptBatchError as exc:
        with pytest.raises(CorruptBatchError) as got:
            scan_batches(log, 0, True)
        assert (str(got.value), got.value.position) == (str(exc), exc.position)
        return
    want, next_offset = [], 0
    for h in headers:
        if h.next_offset > next_offset:
            if not h.is_control:
                want.append((h.base_offset, h.attributes, h.record_count))
            next_offset = h.next_offset
    got, got_next = scan_batches(log, 0, True)
    assert [(b[0], b[1], b[4]) for b in got] == want
    assert got_next == next_offset


@settings(max_examples=100, deadline=None)
@given(st.lists(_records(), min_size=1, max_size=3), st.data())
def test_framing_rejects_what_iter_batches_rejects(batches, data) -> None:
    """One byte changed anywhere, often in a header (or the run cut short): the fast framing
    fails exactly when the canonical reader does."""
    log = bytearray(_log(batches))
    if data.draw(st.booleans()):
        if data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(log) - 1))
        else:  # a byte of the first header
            i = data.draw(st.integers(0, HEADER_SIZE - 1))
        log[i] ^= data.draw(st.integers(1, 255))
    else:
        del log[data.draw(st.integers(1, len(log) - 1)):]
    _assert_framings_agree(bytes(log))


_FIELDS = {  # header fields the digest covers: (offset, struct format)
    "magic": (16, ">B"), "attributes": (49, ">h"), "last_offset_delta": (51, ">i"),
    "record_count": (85, ">i"),
}


@settings(max_examples=150, deadline=None)
@given(_records(), st.sampled_from(sorted(_FIELDS)), st.integers(-3, 70), st.data())
def test_framing_checks_fields_behind_a_valid_digest(records, field, value, data) -> None:
    """A header field rewritten and the digest recomputed (a buggy producer, not a bit flip):
    only the field checks can catch it, and both framings judge it alike."""
    raw = bytearray(_build(records))
    at, fmt = _FIELDS[field]
    if field == "attributes":
        value = data.draw(st.sampled_from([0, 1, 3, 4, 5, 7, 8, 0x10, 0x20, 0x30, 0x40, -1]))
    struct.pack_into(fmt, raw, at, value % 256 if field == "magic" else value)
    raw[17:49] = digest_at(memoryview(raw), 0, len(raw))
    _assert_framings_agree(bytes(raw))
