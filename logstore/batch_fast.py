"""The clients' fast paths for the record batch format of :mod:`logstore.batch`.

The format is defined once, in ``logstore.batch`` (its docstring and its layout constants);
this module imports those constants and implements the same format faster for the shapes
clients produce and consume most, beside the canonical builder and reader:

* :func:`encode_dense` -- the producer's encoder: exactly the bytes of
  ``BatchBuilder(Codec.NONE)`` for the same records (the CBOR of the columns with cached
  heads and C-level joins: all-null keys and headers, timestamp deltas, byte strings; odd
  shapes fall back to cbor2);
* :func:`scan_batches` -- the consumer's framing: one ``struct`` unpack per batch header,
  the checks of ``iter_batches`` without building a ``BatchHeader``;
* :func:`decode_columns_at` -- the consumer's column decoder for an uncompressed payload whose
  columns all have a fast shape (byte strings of one length, all-null keys and headers,
  timestamp deltas below 24), else None (the caller then uses ``batch.decode_columns``).

cbor2 encodes and decodes a list item by item (~200-300 ns per 100-byte value on this
project's machine), which was the largest cost of the producer's sender thread and of the
consumer. The unit tests (tests/unit/logstore/test_batch_fast.py) check every function here
against ``logstore.batch`` and cbor2 on random batches.
"""

from __future__ import annotations

import struct
from itertools import chain, repeat
from operator import sub as _sub

import cbor2

from .batch import (
    ATTRIBUTES_MASK,
    CODEC_MASK,
    CONTROL_FLAG,
    DENSE_PAYLOAD_PREFIX,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_CODEC,
    Codec,
    digest_at,
    encode_batch,
    read_header,
)
from .errors import CorruptBatchError

__all__ = [
    "array_head",
    "decode_columns_at",
    "decode_payload",
    "digest_at",
    "encode_bytes_array",
    "encode_dense",
    "encode_timestamps",
    "nulls",
    "scan_batches",
    "with_producer",
]


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


def _small_uints(small: bytes, top: int) -> bytes:
    """CBOR of the array of the ints in ``small`` (each 0..255; ``top`` their maximum)."""
    if top < 24:  # each is one byte: its value
        return array_head(len(small)) + small
    return array_head(len(small)) + b"".join(map(_uint_head, small))


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
        return _small_uints(deltas, top), first, first + top
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
    if buf[pos:p] != DENSE_PAYLOAD_PREFIX + ah or p + n > end:  # [null offsets, [n deltas ...
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


# -------------------------------------------------------------------------------- encoding


def dense_payload(deltas: list[int], keys: list, values: list, headers: list) -> bytes:
    """``cbor2.dumps([None, deltas, keys, values, headers])``, the same bytes, by whole
    columns where they have the common shapes (deltas in 0..255; keys all None or all bytes;
    values all bytes; headers all None); cbor2 for a column that has not."""
    n = len(deltas)
    try:
        small = bytes(deltas)  # every delta in 0..255, checked in C
    except (ValueError, TypeError):
        deltas_cbor = cbor2.dumps(deltas)
    else:
        deltas_cbor = _small_uints(small, max(small, default=0))
    # encode_bytes_array writes a column with some None through cbor2 itself
    keys_cbor = nulls(n) if keys.count(None) == n else encode_bytes_array(keys)
    headers_cbor = nulls(n) if headers.count(None) == n else cbor2.dumps(headers)
    return b"".join((DENSE_PAYLOAD_PREFIX, deltas_cbor, keys_cbor, encode_bytes_array(values),
                     headers_cbor))


def encode_dense(timestamps: list[int], keys: list, values: list, headers: dict | None, *,
                 keyed: bool = True, producer_id: int = -1, producer_epoch: int = -1,
                 base_sequence: int = -1, extra_attributes: int = 0) -> bytes:
    """One uncompressed batch of the records given as columns: exactly the bytes
    ``BatchBuilder(Codec.NONE)`` builds for them. ``headers``: record index -> list of
    (name, value) pairs checked by ``batch.check_headers`` (sparse), or None; ``keyed``
    False promises that every key is None. ``extra_attributes``: flags or-ed into the
    attributes (the transactional bit), under the one digest computed."""
    n = len(timestamps)
    if n == 0:
        raise ValueError("cannot build an empty record batch")
    deltas, first, hi = encode_timestamps(timestamps)
    if not keyed:
        keys_cbor = nulls(n)
    elif keys.count(None):
        keys_cbor = cbor2.dumps(keys)
    else:
        keys_cbor = encode_bytes_array(keys)
    if headers is None:
        headers_cbor = nulls(n)
    else:
        headers_cbor = cbor2.dumps([headers.get(i) for i in range(n)])
    payload = b"".join((DENSE_PAYLOAD_PREFIX, deltas, keys_cbor, encode_bytes_array(values),
                        headers_cbor))
    return encode_batch(payload=payload, attributes=int(Codec.NONE) | extra_attributes,
                        last_offset_delta=n - 1, first_timestamp=first, max_timestamp=hi,
                        record_count=n,
                        producer_id=producer_id, producer_epoch=producer_epoch,
                        base_sequence=base_sequence)


def with_producer(data: bytes, producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
    """``data`` (one batch) re-framed with an idempotent producer's id, epoch and sequence."""
    h = read_header(data)
    return encode_batch(payload=bytes(memoryview(data)[HEADER_SIZE:h.length]),
                        attributes=h.attributes, last_offset_delta=h.last_offset_delta,
                        first_timestamp=h.first_timestamp, max_timestamp=h.max_timestamp,
                        producer_id=producer_id, producer_epoch=producer_epoch,
                        base_sequence=base_sequence, record_count=h.record_count)


# --------------------------------------------------------------------------------- framing

# the header as a plain tuple: a BatchHeader dataclass per batch costs more than the rest of
# the batch's framing
_unpack_header = HEADER.unpack_from


def scan_batches(buf: bytes, after: int, validate: bool, digests: bool = True,
                 stop_at_corrupt: bool = False):
    """Walk a fetched run of whole batches without decoding records.

    Returns ([(base_offset, attributes, first_timestamp, last_offset_delta, record_count,
    start, end, digest)] of the data batches with records at or after offset ``after``
    (control batches and batches wholly before it are skipped), next offset to fetch).
    Checks what ``batch.iter_batches`` checks (magic, length, truncation; with ``validate``
    also attributes, counts and, unless ``digests`` is False, the blake3 digest), raising
    CorruptBatchError likewise. With ``stop_at_corrupt`` a corrupt batch ends the walk
    instead: the result is (batches before it, its offset (the next offset after them), the
    error, or None if there was none).
    """
    out: list = []
    progress = [after]
    if not stop_at_corrupt:
        return _scan(buf, after, validate, digests, out, progress)
    try:
        _, next_offset = _scan(buf, after, validate, digests, out, progress)
    except CorruptBatchError as exc:
        return out, progress[0], exc
    return out, next_offset, None


def _scan(buf: bytes, after: int, validate: bool, digests: bool, out: list, progress: list):
    mv = memoryview(buf)
    total = len(buf)
    next_offset = after
    pos = 0
    while pos < total:
        if total - pos < HEADER_SIZE:
            raise CorruptBatchError(f"truncated header: {total - pos} of {HEADER_SIZE} bytes",
                                    pos)
        (base, length, _epoch, magic, digest, attributes, last_delta, first, _max_ts, _pid,
         _pe, _seq, count) = _unpack_header(buf, pos)
        if magic != MAGIC:
            raise CorruptBatchError(f"bad magic {magic} (expected {MAGIC})", pos)
        if length < HEADER_SIZE:
            raise CorruptBatchError(f"bad length {length}", pos)
        end = pos + length
        if end > total:
            raise CorruptBatchError(f"truncated batch: {total - pos} of {length} bytes", pos)
        if validate:
            if attributes & CODEC_MASK > MAX_CODEC or attributes & ~ATTRIBUTES_MASK:
                raise CorruptBatchError(f"bad attributes {attributes:#x}", pos)
            if last_delta < 0 or not 1 <= count <= last_delta + 1:
                raise CorruptBatchError(
                    f"bad counts: record_count {count}, last_offset_delta {last_delta}", pos)
            if digests and digest_at(mv, pos, end) != digest:
                raise CorruptBatchError("digest mismatch", pos)
        batch_next = base + last_delta + 1
        if batch_next > next_offset:
            next_offset = progress[0] = batch_next
            if not attributes & CONTROL_FLAG:
                out.append((base, attributes, first, last_delta, count, pos, end, digest))
        pos = end
    return out, next_offset
