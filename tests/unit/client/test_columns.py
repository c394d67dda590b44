"""rillet.columns: the fast column codecs agree with cbor2 byte for byte, value for value."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rillet import columns
from rillet.columns import decode_payload, encode_bytes_array, encode_timestamps, nulls


def test_self_check_passes() -> None:
    assert columns.FAST_OK


@settings(max_examples=300, deadline=None)
@given(st.lists(st.none() | st.binary(max_size=300), min_size=1, max_size=60))
def test_bytes_array_equals_cbor2(items) -> None:
    assert encode_bytes_array(items) == cbor2.dumps(items)


@pytest.mark.parametrize("length", [0, 23, 24, 255, 256, 65535, 65536])
def test_bytes_array_head_sizes(length) -> None:
    items = [b"x" * length] * 3
    assert encode_bytes_array(items) == cbor2.dumps(items)
    assert encode_bytes_array(items + [b"y"]) == cbor2.dumps(items + [b"y"])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**41), st.lists(st.integers(-1000, 100_000), min_size=1, max_size=80))
def test_timestamps_equal_cbor2(first, offsets) -> None:
    ts = [first + o for o in offsets]
    assert encode_timestamps(ts) == (cbor2.dumps([t - ts[0] for t in ts]), ts[0], max(ts))


def _payload(deltas, keys, values, headers) -> bytes:
    return cbor2.dumps([None, deltas, keys, values, headers])


@settings(max_examples=300, deadline=None)
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
