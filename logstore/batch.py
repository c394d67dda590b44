"""The record batch: the one binary format shared by producers, brokers and consumers.

A batch is a fixed big-endian header followed by a payload. The broker validates and stores
batches as opaque bytes (it never decodes records); it only stamps ``base_offset`` and
``leader_epoch`` in place, which is why the digest leaves exactly those two fields out.

Header (HEADER_SIZE = 89 bytes, big-endian)::

    offset  size  field              meaning
    ------  ----  -----------------  ---------------------------------------------------------
         0     8  base_offset        i64  offset of the first record; stamped by the broker
                                          (0 until then)
         8     4  length             i32  size of the whole batch in bytes, header included
        12     4  leader_epoch       i32  epoch of the leader that appended it; stamped by the
                                          broker (-1 until then)
        16     1  magic              u8   format version, MAGIC (never 0, so zeroed or
                                          preallocated space is never mistaken for a batch)
        17    32  digest             blake3-256 of bytes [49, length) ++ [8, 12) ++ [16, 17):
                                          everything after the digest, then length and magic,
                                          i.e. every byte except base_offset and leader_epoch
                                          (the big aligned run first hashes ~30% faster)
        49     2  attributes         i16  bits 0-2 codec (0 none, 1 gzip, 2 zstd, 3 lz4,
                                          4 snappy), bit 3 timestamp type (1: LogAppendTime),
                                          bit 4 transactional, bit 5 control (Kafka's bits
                                          3-5)
        51     4  last_offset_delta  i32  last record's offset minus base_offset
        55     8  first_timestamp    i64  ms since the epoch; timestamp deltas are relative to it
        63     8  max_timestamp      i64  largest record timestamp in the batch (ms); with
                                          LogAppendTime (bit 3) the leader's clock at append,
                                          and then every record's timestamp
        71     8  producer_id        i64  -1 when not idempotent
        79     2  producer_epoch     i16  -1 when not idempotent
        81     4  base_sequence      i32  -1 when not idempotent
        85     4  record_count       i32  number of records in the payload (>= 1)
        89     -  payload            length - 89 bytes

Payload: the CBOR encoding of five column lists of ``record_count`` entries each::

    [offset_deltas, timestamp_deltas, keys, values, headers]

``offset_deltas`` is null when the offsets are dense (0, 1, ..., record_count - 1: every batch
a producer builds) or else a list of ints in [0, last_offset_delta] in ascending order
(compaction leaves gaps); ``timestamp_deltas`` are ints relative to first_timestamp; ``keys``
and ``values`` are byte strings or null (a null value is a tombstone; null is distinct from
b""); each ``headers`` entry is null (no headers) or a list of [name (text), value (bytes or
null)] pairs. With a codec the whole CBOR payload is compressed as one unit (gzip: stdlib;
zstd, lz4: optional extras; snappy: a raw snappy block, cramjam).

LogAppendTime (a topic's ``message.timestamp.type``, Kafka's semantics): the leader rewrites
``max_timestamp`` with its clock, sets bit 3 and computes the digest again
(logstore/rewrite.py); the payload's timestamp deltas (the producer's create times) stay
as they were and readers ignore them: every record's timestamp is ``max_timestamp``.

Columns instead of per-record objects keep encoding and decoding in C inside cbor2 (about 3x
faster than a CBOR map or array per record).

The layout constants below (``HEADER``, ``DIGEST_START``/``DIGEST_END`` and :func:`digest_at`,
the attribute bits, ``DENSE_PAYLOAD_PREFIX``) are the only definition of the format: the
clients' fast paths in :mod:`logstore.batch_fast` (the producer's encoder, the consumer's
framing and column decoder) import them, and its tests check them against this module's
builder and reader on random batches.
"""

from __future__ import annotations

import enum
import importlib
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import blake3
import cbor2

from rillet.frozen import frozen

from .errors import CorruptBatchError, MissingCodecError

__all__ = [
    "ATTRIBUTES_MASK",
    "BATCH_OVERHEAD",
    "CODEC_MASK",
    "CONTROL_FLAG",
    "LOG_APPEND_TIME_FLAG",
    "DENSE_PAYLOAD_PREFIX",
    "DIGEST_END",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_CODEC",
    "RECORD_OVERHEAD",
    "TRANSACTIONAL_FLAG",
    "BatchBuilder",
    "BatchHeader",
    "Codec",
    "Columns",
    "Record",
    "check_headers",
    "decode_columns",
    "decode_records",
    "digest_at",
    "encode_batch",
    "iter_batches",
    "read_header",
    "records",
    "stamp",
    "validate",
    "validate_fields",
]

MAGIC = 2
# the header's fields in layout order (see the table above); unpack_from gives a plain tuple
HEADER = struct.Struct(">qiiB32shiqqqhii")
HEADER_SIZE = HEADER.size  # 89
DIGEST_SIZE = 32
DIGEST_START = 17
DIGEST_END = DIGEST_START + DIGEST_SIZE  # 49: first byte after the digest
# the two header fields the digest covers besides [DIGEST_END, length): length and magic
_LENGTH_AT = 8
_MAGIC_AT = 16
_STAMP_OFFSET = struct.Struct(">q")
_STAMP_EPOCH = struct.Struct(">i")
_LENGTH = struct.Struct(">i")
_unpack_header = HEADER.unpack_from
_pack_tail = struct.Struct(">iB").pack  # length and magic, the digest's last 5 bytes
_blake3 = blake3.blake3

CODEC_MASK = 0x07
LOG_APPEND_TIME_FLAG = 0x08  # Kafka's timestamp-type bit: max_timestamp is the append time
TRANSACTIONAL_FLAG = 0x10
CONTROL_FLAG = 0x20
# any other bit: corrupt
ATTRIBUTES_MASK = CODEC_MASK | LOG_APPEND_TIME_FLAG | TRANSACTIONAL_FLAG | CONTROL_FLAG

# The payload of a batch with dense offsets starts with these bytes: the CBOR head of the
# five-column array, then null (the offset_deltas column).
DENSE_PAYLOAD_PREFIX = b"\x85\xf6"

# Bound on a decompressed payload, so a small hostile batch cannot exhaust memory.
MAX_UNCOMPRESSED = 256 * 1024 * 1024

# Per-record bytes of CBOR framing the size estimate adds to key and value lengths, and a
# batch's fixed bytes (header + the column heads) that it starts from.
RECORD_OVERHEAD = 14
BATCH_OVERHEAD = HEADER_SIZE + 8


class Codec(enum.IntEnum):
    """Compression codec of a batch payload (attributes bits 0-2)."""

    NONE = 0
    GZIP = 1
    ZSTD = 2
    LZ4 = 3
    SNAPPY = 4

    @classmethod
    def from_name(cls, name: str) -> Codec:
        """``"none"|"gzip"|"zstd"|"lz4"|"snappy"`` (Kafka's compression.type names) to a
        Codec."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            valid = ", ".join(c.name.lower() for c in cls)
            raise ValueError(f"unknown compression codec {name!r}; valid: {valid}") from None


MAX_CODEC = int(max(Codec))


@frozen
class BatchHeader:
    """The parsed fixed header of one batch (see the module docstring for the layout)."""

    base_offset: int
    length: int
    leader_epoch: int
    magic: int
    digest: bytes
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def codec(self) -> Codec:
        return Codec(self.attributes & CODEC_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG)

    @property
    def is_log_append_time(self) -> bool:
        """Every record's timestamp is ``max_timestamp``, the leader's append time."""
        return bool(self.attributes & LOG_APPEND_TIME_FLAG)

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1


@frozen
class Record:
    """One decoded record. ``timestamp`` in ms since the epoch; None key/value != b""."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


class Columns(NamedTuple):
    """The records of one batch as columns with absolute offsets and timestamps.

    The fast path for consumers that process many records: no per-record object is built.
    Each ``headers`` entry is None (no headers) or a list of [name, value] pairs.
    """

    offsets: list[int]
    timestamps: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    headers: list[list]


# ---------------------------------------------------------------------------------- codecs


def _optional_module(name: str, codec: str, extra: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingCodecError(codec, extra) from None


def _compress(codec: Codec, data: bytes) -> bytes:
    if codec is Codec.NONE:
        return data
    if codec is Codec.GZIP:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip container
        return c.compress(data) + c.flush()
    if codec is Codec.ZSTD:
        zstd = _optional_module("zstandard", "zstd", "zstd")
        return zstd.ZstdCompressor(level=3).compress(data)
    if codec is Codec.SNAPPY:
        import cramjam

        return bytes(cramjam.snappy.compress_raw(data))
    lz4_frame = _optional_module("lz4.frame", "lz4", "lz4")
    return lz4_frame.compress(data)


def _decompress(codec: Codec, data, position: int) -> bytes:
    try:
        if codec is Codec.GZIP:
            d = zlib.decompressobj(31)
            out = d.decompress(data, MAX_UNCOMPRESSED)
            if d.unconsumed_tail or not d.eof:
                raise CorruptBatchError("gzip payload truncated or too large", position)
            return out
        if codec is Codec.ZSTD:
            zstd = _optional_module("zstandard", "zstd", "zstd")
            return zstd.ZstdDecompressor().decompress(data, max_output_size=MAX_UNCOMPRESSED)
        if codec is Codec.LZ4:
            lz4_frame = _optional_module("lz4.frame", "lz4", "lz4")
            return lz4_frame.decompress(data)
        if codec is Codec.SNAPPY:
            return _snappy_decompress(data, position)
    except (CorruptBatchError, MissingCodecError):
        raise
    except Exception as exc:  # each codec library has its own error types
        raise CorruptBatchError(
            f"cannot decompress {codec.name.lower()} payload: {exc}", position
        ) from None
    raise CorruptBatchError(f"unknown codec {int(codec)}", position)


def _snappy_decompress(data, position: int) -> bytes:
    import cramjam

    # a raw snappy block starts with its uncompressed length (a varint): checked before the
    # allocation, so a small hostile block cannot claim gigabytes
    size = shift = 0
    for i, b in enumerate(bytes(data[:5])):
        size |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
        if i == 4:
            raise CorruptBatchError("bad snappy length", position)
    if size > MAX_UNCOMPRESSED:
        raise CorruptBatchError("snappy payload too large", position)
    return bytes(cramjam.snappy.decompress_raw(bytes(data)))


# --------------------------------------------------------------------------------- builder


class BatchBuilder:
    """Accumulates records for one partition batch, then encodes them once in build().

    Used by producers; one builder per batch; not thread-safe. append() only appends to
    column lists so it stays cheap on the producer's hot path.
    """

    __slots__ = (
        "codec",
        "producer_id",
        "producer_epoch",
        "base_sequence",
        "_attributes",
        "_timestamps",
        "_keys",
        "_values",
        "_headers",
        "_size",
    )

    def __init__(
        self,
        codec: Codec = Codec.NONE,
        *,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
        is_transactional: bool = False,
        is_control: bool = False,
    ) -> None:
        self.codec = Codec(codec)
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        self._attributes = (
            int(self.codec)
            | (TRANSACTIONAL_FLAG if is_transactional else 0)
            | (CONTROL_FLAG if is_control else 0)
        )
        self._timestamps: list[int] = []
        self._keys: list[bytes | None] = []
        self._values: list[bytes | None] = []
        self._headers: list = []
        self._size = BATCH_OVERHEAD

    def append(
        self,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] = (),
    ) -> int:
        """Add one record (timestamp in ms); returns its offset delta within the batch."""
        if key is not None and type(key) is not bytes:
            key = _as_bytes(key, "key")
        if value is not None and type(value) is not bytes:
            value = _as_bytes(value, "value")
        size = RECORD_OVERHEAD
        if headers:
            headers, hsize = check_headers(headers)
            size += hsize
        else:
            headers = None  # null encodes 10x faster than an empty array
        timestamps = self._timestamps
        delta = len(timestamps)
        timestamps.append(timestamp)
        self._keys.append(key)
        self._values.append(value)
        self._headers.append(headers)
        self._size += size + (len(key) if key else 0) + (len(value) if value else 0)
        return delta

    @property
    def size_in_bytes(self) -> int:
        """Estimated size of the built batch before compression, in bytes."""
        return self._size

    @property
    def record_count(self) -> int:
        return len(self._timestamps)

    def build(self) -> bytes:
        """Encode the batch: base_offset 0 and leader_epoch -1 until the broker stamps them."""
        timestamps = self._timestamps
        n = len(timestamps)
        if n == 0:
            raise ValueError("cannot build an empty record batch")
        first = timestamps[0]
        payload = cbor2.dumps(
            [
                None,  # dense offset deltas
                [t - first for t in timestamps],
                self._keys,
                self._values,
                self._headers,
            ]
        )
        return encode_batch(
            payload=_compress(self.codec, payload),
            attributes=self._attributes,
            last_offset_delta=n - 1,
            first_timestamp=first,
            max_timestamp=max(timestamps),
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            base_sequence=self.base_sequence,
            record_count=n,
        )


def _as_bytes(data, what: str) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"record {what} must be bytes or None, not {type(data).__name__}")


def check_headers(headers) -> tuple[list, int]:
    """A record's headers as a list of (name, value) pairs, checked (name str, value bytes or
    None; bytearray and memoryview copied to bytes), and their size estimate in bytes.
    TypeError on anything else. Shared by BatchBuilder and the producer's batches."""
    out = []
    size = 1
    for item in headers:
        name, value = item
        if type(name) is not str:
            raise TypeError(f"header name must be str, not {type(name).__name__}")
        if value is not None and type(value) is not bytes:
            value = _as_bytes(value, "header value")
        out.append((name, value))
        size += 4 + len(name) + (len(value) if value else 0)
    return out, size


def encode_batch(
    *,
    payload: bytes,
    attributes: int,
    last_offset_delta: int,
    first_timestamp: int,
    max_timestamp: int,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    record_count: int,
    base_offset: int = 0,
    leader_epoch: int = -1,
) -> bytes:
    """Frame an already encoded (and compressed) payload: header, digest, payload."""
    length = HEADER_SIZE + len(payload)
    buf = bytearray(length)
    HEADER.pack_into(
        buf,
        0,
        base_offset,
        length,
        leader_epoch,
        MAGIC,
        b"",
        attributes,
        last_offset_delta,
        first_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        record_count,
    )
    buf[HEADER_SIZE:] = payload
    buf[DIGEST_START:DIGEST_END] = _digest(memoryview(buf))
    return bytes(buf)


def digest_at(mv: memoryview, start: int, end: int) -> bytes:
    """The blake3 digest of the batch at ``mv[start:end]``: bytes [DIGEST_END, length), then
    length and magic (every byte but base_offset, leader_epoch and the digest itself)."""
    h = _blake3(mv[start + DIGEST_END:end])
    h.update(mv[start + _LENGTH_AT:start + _LENGTH_AT + 4])
    h.update(mv[start + _MAGIC_AT:start + _MAGIC_AT + 1])
    return h.digest()


def _digest(mv: memoryview) -> bytes:
    return digest_at(mv, 0, len(mv))


# ---------------------------------------------------------------------------------- reader


def read_header(buf, pos: int = 0) -> BatchHeader:
    """Parse the header at ``pos`` without touching the payload.

    CorruptBatchError if fewer than HEADER_SIZE bytes remain, the magic is wrong or the
    length is smaller than a header. Does not check that the whole batch is present.
    """
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptBatchError(
            f"truncated header: {max(0, len(buf) - pos)} of {HEADER_SIZE} bytes", pos
        )
    fields = _unpack_header(buf, pos)
    if fields[3] != MAGIC:
        raise CorruptBatchError(f"bad magic {fields[3]} (expected {MAGIC})", pos)
    if fields[1] < HEADER_SIZE:
        raise CorruptBatchError(f"bad length {fields[1]}", pos)
    return BatchHeader(*fields)


def _check(buf, pos: int, header: BatchHeader) -> None:
    """Everything validate() checks after the header parsed; the batch is buf[pos:pos+length]."""
    end = pos + header.length
    if end > len(buf):
        raise CorruptBatchError(f"truncated batch: {len(buf) - pos} of {header.length} bytes", pos)
    if header.attributes & CODEC_MASK > MAX_CODEC or header.attributes & ~ATTRIBUTES_MASK:
        raise CorruptBatchError(f"bad attributes {header.attributes:#x}", pos)
    if header.last_offset_delta < 0 or not 1 <= header.record_count <= header.last_offset_delta + 1:
        raise CorruptBatchError(
            f"bad counts: record_count {header.record_count}, "
            f"last_offset_delta {header.last_offset_delta}",
            pos,
        )
    mv = memoryview(buf)[pos:end]
    if _digest(mv) != header.digest:
        raise CorruptBatchError("digest mismatch", pos)


def validate(buf) -> BatchHeader:
    """Check that ``buf`` is exactly one whole, intact batch, without decoding records.

    Checks magic, length (== len(buf)), attributes, counts and the blake3 digest.
    """
    return BatchHeader(*validate_fields(buf))


def validate_fields(buf) -> tuple:
    """validate() without building a BatchHeader: the header's fields as a plain tuple, in
    layout order (base_offset, length, leader_epoch, magic, digest, attributes,
    last_offset_delta, first_timestamp, max_timestamp, producer_id, producer_epoch,
    base_sequence, record_count). The append hot path: same checks, same errors, in the same
    order as read_header + _check, with one struct unpack and no object built.
    """
    size = len(buf)
    if size < HEADER_SIZE:
        raise CorruptBatchError(f"truncated header: {size} of {HEADER_SIZE} bytes", 0)
    fields = _unpack_header(buf, 0)
    _, length, _, magic, digest, attributes, last_delta, _, _, _, _, _, count = fields
    if magic != MAGIC:
        raise CorruptBatchError(f"bad magic {magic} (expected {MAGIC})", 0)
    if length < HEADER_SIZE:
        raise CorruptBatchError(f"bad length {length}", 0)
    if length != size:
        raise CorruptBatchError(f"length field {length} != buffer size {size}", 0)
    if attributes & CODEC_MASK > MAX_CODEC or attributes & ~ATTRIBUTES_MASK:
        raise CorruptBatchError(f"bad attributes {attributes:#x}", 0)
    if last_delta < 0 or not 1 <= count <= last_delta + 1:
        raise CorruptBatchError(
            f"bad counts: record_count {count}, last_offset_delta {last_delta}", 0
        )
    h = _blake3(memoryview(buf)[DIGEST_END:])
    h.update(_pack_tail(length, magic))  # bytes [8, 12) ++ [16, 17), already unpacked
    if h.digest() != digest:
        raise CorruptBatchError("digest mismatch", 0)
    return fields


_validate_one = validate


def iter_batches(buf, *, validate: bool = True) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Walk a concatenation of whole batches (what a fetch returns).

    Yields (header, memoryview of the whole batch). CorruptBatchError on a bad or truncated
    batch, with ``position`` relative to ``buf``.
    """
    mv = memoryview(buf)
    pos = 0
    total = len(mv)
    while pos < total:
        header = read_header(mv, pos)
        end = pos + header.length
        if validate:
            _check(mv, pos, header)
        elif end > total:
            raise CorruptBatchError(f"truncated batch: {total - pos} of {header.length}", pos)
        yield header, mv[pos:end]
        pos = end


def stamp(buf: bytearray, pos: int, base_offset: int, leader_epoch: int) -> None:
    """Write base_offset and leader_epoch of the batch at ``pos`` in place (digest unaffected)."""
    _STAMP_OFFSET.pack_into(buf, pos, base_offset)
    _STAMP_EPOCH.pack_into(buf, pos + 12, leader_epoch)


def _payload_columns(batch, header: BatchHeader) -> list:
    data = memoryview(batch)[HEADER_SIZE : header.length]
    codec = header.attributes & CODEC_MASK
    if codec:
        data = _decompress(Codec(codec), data, 0)
    return _columns_of(data, header)


def _columns_of(data, header: BatchHeader) -> list:
    """The five columns of an uncompressed payload, checked against ``header``."""
    try:
        cols = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several types on malformed input
        raise CorruptBatchError(f"bad CBOR payload: {exc}", 0) from None
    n = header.record_count
    if type(cols) is not list or len(cols) != 5:
        raise CorruptBatchError("payload is not a list of 5 columns", 0)
    if cols[0] is None:
        if n != header.last_offset_delta + 1:
            raise CorruptBatchError("dense offsets but record_count != last_offset_delta + 1", 0)
    elif type(cols[0]) is not list or len(cols[0]) != n:
        raise CorruptBatchError("offset_deltas column has the wrong size", 0)
    if any(type(c) is not list or len(c) != n for c in cols[1:]):
        raise CorruptBatchError("payload columns do not hold record_count entries", 0)
    return cols


def decode_columns(batch, *, validate: bool = True) -> Columns:
    """Decode one whole batch into columns with absolute offsets and timestamps."""
    header = _validate_one(batch) if validate else read_header(batch)
    offs, tds, keys, values, headers = _payload_columns(batch, header)
    base = header.base_offset
    first = header.first_timestamp
    offsets = (
        list(range(base, base + header.record_count)) if offs is None else [base + d for d in offs]
    )
    if header.attributes & LOG_APPEND_TIME_FLAG:
        return Columns(offsets, [header.max_timestamp] * len(tds), keys, values, headers)
    return Columns(offsets, [first + d for d in tds], keys, values, headers)


def decode_records(batch, *, validate: bool = True) -> list[Record]:
    """Decode one whole batch into Records with absolute offsets."""
    offsets, timestamps, keys, values, headers = decode_columns(batch, validate=validate)
    hdrs = [() if h is None else tuple(map(tuple, h)) for h in headers]
    return list(map(Record, offsets, timestamps, keys, values, hdrs))


def records(buf) -> Iterator[Record]:
    """Every record of a concatenation of whole batches, in order (each batch validated)."""
    for _header, mv in iter_batches(buf, validate=True):
        yield from decode_records(mv, validate=False)
