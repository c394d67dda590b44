"""Fast CBOR for the record columns of the common batch shapes (client side only).

cbor2 encodes and decodes a list item by item (~200-300 ns per 100-byte value on this
project's machine), which was the largest cost of the producer's sender thread and of the
consumer. The columns of a batch written by a producer usually have one of a few shapes: byte
strings of one length, all-null keys and headers, timestamp deltas below 24 ms. For those,
this module builds and parses the CBOR with C-level joins, slices and ``struct`` instead:

* :func:`encode_bytes_array` / :func:`encode_timestamps`: exactly the bytes cbor2 writes
  (canonical shortest heads), for any input; the slow shapes fall back to ``cbor2.dumps``.
* :func:`decode_payload`: the columns of an uncompressed batch payload when every column has
  a fast shape, else ``None`` (the caller then uses ``logstore.batch.decode_columns``).

Both are checked against cbor2 / logstore.batch at import (``FAST_OK``) and by unit tests.
"""

from __future__ import annotations

import struct
from itertools import chain, repeat
from operator import sub as _sub

import cbor2


def _head(major: int, n: int) -> bytes:
    """The CBOR head of major type ``major`` (already shifted: 0x00, 0x40, 0x80) for ``n``."""
    if n < 24:
        return bytes((major | n,))
    if n < 0x100:
        return bytes((major | 24, n))
    if n < 0x10000:
        return bytes((major | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((major | 26,)) + n.to_bytes(4, "big")
    return bytes((major | 27,)) + n.to_bytes(8, "big")


class _Heads(dict):
    """head(n) by n, computed on first use; C-level lookups via ``__getitem__``."""

    __slots__ = ("major",)

    def __init__(self, major: int) -> None:
        super().__init__()
        self.major = major

    def __missing__(self, n: int) -> bytes:
        if len(self) > 8192:  # many distinct lengths: stay bounded
            self.clear()
        out = self[n] = _head(self.major, n)
        return out


_BSTR = _Heads(0x40)
_UINT = _Heads(0x00)
_ARRAY = _Heads(0x80)
_bstr_head = _BSTR.__getitem__
_uint_head = _UINT.__getitem__
array_head = _ARRAY.__getitem__

_nulls_cache: dict[int, bytes] = {}
_null_items_cache: dict[int, bytes] = {}


def _null_items(n: int) -> bytes:
    out = _null_items_cache.get(n)
    if out is None:
        if len(_null_items_cache) > 4096:
            _null_items_cache.clear()
        out = _null_items_cache[n] = b"\xf6" * n
    return out


def nulls(n: int) -> bytes:
    """An array of ``n`` nulls."""
    out = _nulls_cache.get(n)
    if out is None:
        if len(_nulls_cache) > 4096:
            _nulls_cache.clear()
        out = _nulls_cache[n] = array_head(n) + b"\xf6" * n
    return out


def encode_bytes_array(items: list) -> bytes:
    """CBOR of a list of ``bytes`` objects (exactly bytes; any None: falls back to cbor2)."""
    try:
        lengths = set(map(len, items))
    except TypeError:  # a None (or something cbor2 must judge)
        return cbor2.dumps(items)
    n = len(items)
    if len(lengths) == 1:  # one length: its head between every two items
        head = _bstr_head(lengths.pop())
        return b"".join((array_head(n), head, head.join(items)))
    return array_head(n) + b"".join(chain.from_iterable(zip(map(_bstr_head, map(len, items)),
                                                            items, strict=True)))


def encode_timestamps(timestamps: list[int]) -> tuple[bytes, int, int]:
    """(CBOR of the deltas ``t - first``, first, max) of a non-empty timestamp column."""
    n = len(timestamps)
    first = timestamps[0]
    try:  # the common case: every delta in 0..255, computed and checked by bytes() in C
        deltas = bytes(map(_sub, timestamps, repeat(first)))
    except ValueError:
        pass
    else:
        top = max(deltas)
        if top < 24:  # each delta is one byte: its value
            return array_head(n) + deltas, first, first + top
        return array_head(n) + b"".join(map(_uint_head, deltas)), first, first + top
    lo, hi = min(timestamps), max(timestamps)
    if lo == first and hi - first < 0x10000:
        return (array_head(n) + b"".join(map(_uint_head, map(_sub, timestamps, repeat(first)))),
                first, hi)
    return cbor2.dumps([t - first for t in timestamps]), first, hi


# ------------------------------------------------------------------------------- decoding

_structs: dict[tuple[int, int, int], struct.Struct] = {}


def _read_head(buf: bytes, pos: int, major: int) -> tuple[int, int] | None:
    """(value, position after the head) of a head of ``major``, or None."""
    if pos >= len(buf):
        return None
    b = buf[pos]
    if b & 0xE0 != major:
        return None
    info = b & 0x1F
    if info < 24:
        return info, pos + 1
    size = _HEAD_EXTRA.get(info)
    if size is None or pos + 1 + size > len(buf):
        return None
    return int.from_bytes(buf[pos + 1:pos + 1 + size], "big"), pos + 1 + size


_HEAD_EXTRA = {24: 1, 25: 2, 26: 4}


def _bytes_items(buf: bytes, pos: int, n: int, limit: int) -> tuple[tuple, int] | None:
    """``n`` byte strings of one length starting at ``pos`` (ending by ``limit``): (items,
    end) or None. Every item's head is checked with a strided slice (C-level)."""
    if pos >= limit:
        return None
    b = buf[pos]
    if 0x40 <= b < 0x58:
        length, k = b - 0x40, 1
    elif b == 0x58:  # the usual 24..255-byte value
        length, k = buf[pos + 1], 2
    else:
        head = _read_head(buf, pos, 0x40)
        if head is None:
            return None
        length, k = head[0], head[1] - pos
    stride = k + length
    end = pos + n * stride
    if end > limit:
        return None
    for j in range(pos, pos + k):  # every item has the same head
        if buf[j:end:stride] != buf[j:j + 1] * n:
            return None
    key = (k, length, n)
    st = _structs.get(key)
    if st is None:
        if len(_structs) > 256:
            _structs.clear()
        st = _structs[key] = struct.Struct(f"{k}x{length}s" * n)
    return st.unpack_from(buf, pos), end


_SMALL = bytes(range(24))  # the one-byte CBOR uints


def decode_columns_at(buf: bytes, pos: int, end: int, n: int):
    """:func:`decode_payload` of the payload ``buf[pos:end]``, read in place (no copy).
    ``buf`` is ``bytes``; every check is a C-level compare, slice or translate."""
    if n <= 0:
        return None
    ah = array_head(n)
    p = pos + 2 + len(ah)
    if buf[pos:p] != b"\x85\xf6" + ah or p + n > end:  # [null offsets, [n deltas ...
        return None
    deltas = buf[p:p + n]
    if deltas.translate(None, _SMALL):  # a delta >= 24 (several bytes)
        return None
    p += n
    nulls = _null_items(n)
    columns = []
    for _ in range(3):  # keys, values, headers
        if not buf.startswith(ah, p):
            return None
        p += len(ah)
        if buf.startswith(nulls, p):
            columns.append(None)
            p += n
            continue
        items = _bytes_items(buf, p, n, end)
        if items is None:
            return None
        columns.append(items[0])
        p = items[1]
    if p != end or columns[2] is not None:
        return None  # trailing bytes, or headers (decoded by cbor2)
    return deltas, columns[0], columns[1], None


def decode_payload(payload: bytes, n: int):
    """(timestamp deltas, keys, values, headers) of a batch payload with dense offsets, or
    None when some column has a shape this reader does not take (the caller then decodes it
    with cbor2). ``keys`` (``values``) is None when every key (value) is null, ``headers``
    None when no record has headers; deltas is an iterable of ints below 24."""
    return decode_columns_at(payload, 0, len(payload), n)


def _self_check() -> bool:
    samples = [[b"a" * 100] * 30, [b"", b"x" * 300, b"yy"], [b"z" * 23] * 3, [None, b"1"],
               [b"q" * 70000, b"r"], [b"k"]]
    try:
        for items in samples:
            if encode_bytes_array(items) != cbor2.dumps(items):
                return False
        for ts in ([5, 5, 7, 28], [10, 10 + 300, 10 + 70000], [1, 2, 3], [9, 4, 300], [7]):
            want = (cbor2.dumps([t - ts[0] for t in ts]), ts[0], max(ts))
            if encode_timestamps(ts) != want:
                return False
        values = [b"v" * 100] * 40
        payload = cbor2.dumps([None, [0, 1, 23] * 10 + [0] * 10, [None] * 40, values,
                               [None] * 40])
        got = decode_payload(payload, 40)
        if got is None or list(got[0]) != [0, 1, 23] * 10 + [0] * 10 or got[1] is not None:
            return False
        if list(got[2]) != values or got[3] is not None:
            return False
    except Exception:  # noqa: BLE001 - any surprise: use cbor2 everywhere
        return False
    return True


FAST_OK = _self_check()

__all__ = ["FAST_OK", "array_head", "decode_columns_at", "decode_payload", "encode_bytes_array",
           "encode_timestamps", "nulls"]
