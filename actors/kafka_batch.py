"""Kafka's record batch v2 (magic 2): decode and encode, bytes in and bytes out.

Layout (big-endian; Kafka's DefaultRecordBatch)::

    offset  size  field
         0     8  base_offset
         8     4  batch_length            bytes after this field
        12     4  partition_leader_epoch
        16     1  magic                   2
        17     4  crc                     CRC-32C (Castagnoli) of bytes [21, end)
        21     2  attributes              bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4,
                                          4 zstd), 3 timestamp type (1: LogAppendTime),
                                          4 transactional, 5 control, 6 delete horizon
        23     4  last_offset_delta
        27     8  base_timestamp
        35     8  max_timestamp
        43     8  producer_id
        51     2  producer_epoch
        53     4  base_sequence
        57     4  records_count
        61     -  records (compressed as one unit when the codec is not none)

A record: ``length`` varint, ``attributes`` int8 (unused), ``timestamp_delta`` varlong,
``offset_delta`` varint, key length varint (-1: null) + key, value length varint (-1: null)
+ value, header count varint, then per header: name length varint + UTF-8 name, value
length varint (-1: null) + value. Every varint is zigzag-encoded (protobuf's sint).

Compression: gzip (stdlib zlib), lz4 (the ``lz4`` frame format, as Kafka's
KafkaLZ4BlockOutputStream writes for magic 2), zstd (``zstandard``, streamed: librdkafka's
frames need not carry their content size), snappy (``cramjam``: raw snappy as librdkafka
writes it, or the xerial framing of the Java client's snappy-java). Every decompressed
payload is bounded by ``MAX_UNCOMPRESSED``.

Anything malformed raises ``KafkaBatchError`` (the listener answers CORRUPT_MESSAGE);
nothing else escapes ``decode_batches``.
"""

from __future__ import annotations

import gc
import struct
import zlib
from operator import attrgetter

import crc32c

from rillet.frozen import frozen

try:  # aiokafka's Cython record reader, ~10x ours per record (absent: ours below)
    from aiokafka.errors import CorruptRecordException as _CCorrupt
    from aiokafka.record._crecords.default_records import DefaultRecordBatch as _CBatch
except ImportError:  # pragma: no cover - aiokafka ships its C extension in its wheels
    _CBatch = None

MAGIC = 2
HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = 12  # base_offset + batch_length: what batch_length does not count
_CRC_AT = 17
_ATTRIBUTES_AT = 21
MAX_UNCOMPRESSED = 256 * 1024 * 1024

CODEC_MASK = 0x07
TIMESTAMP_TYPE_FLAG = 0x08
TRANSACTIONAL_FLAG = 0x10
CONTROL_FLAG = 0x20
DELETE_HORIZON_FLAG = 0x40

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}

_XERIAL_MAGIC = b"\x82SNAPPY\x00"


class KafkaBatchError(ValueError):
    """A Kafka record batch rillet cannot read (CORRUPT_MESSAGE on the wire)."""


@frozen
class KafkaBatch:
    """One decoded v2 batch, its records as columns: offset deltas, timestamp deltas (ms,
    relative to ``base_timestamp``), keys and values (bytes or None) and headers (None, or
    a list of [name, value or None] pairs, per record)."""

    base_offset: int
    partition_leader_epoch: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    offset_deltas: list
    timestamp_deltas: list
    keys: list
    values: list
    headers: list

    @property
    def records(self) -> list[tuple]:
        """(offset, timestamp, key, value, headers tuple) per record, absolute."""
        return [(self.base_offset + o, self.base_timestamp + t, k, v,
                 tuple(map(tuple, h)) if h else ())
                for o, t, k, v, h in zip(self.offset_deltas, self.timestamp_deltas, self.keys,
                                         self.values, self.headers, strict=True)]

    @property
    def codec(self) -> int:
        return self.attributes & CODEC_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG)


# ------------------------------------------------------------------------------ varints

def uvarint_bytes(n: int) -> bytes:
    """An unsigned varint (Kafka's compact lengths, tag counts)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag_bytes(n: int) -> bytes:
    return uvarint_bytes((n << 1) ^ (n >> 63))


_SMALL = 1 << 14
_TABLE = [_zigzag_bytes(i) for i in range(-1, _SMALL)]  # index n + 1


def varint(n: int) -> bytes:
    """The zigzag varint of ``n`` (cached below 16384)."""
    if -1 <= n < _SMALL:
        return _TABLE[n + 1]
    return _zigzag_bytes(n)


def _read_varint(data, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    z = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = data[pos]
        z |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise KafkaBatchError("varint longer than 10 bytes")
    return (z >> 1) ^ -(z & 1), pos + 1


# -------------------------------------------------------------------------- compression

def _decompress(codec: int, data: bytes) -> bytes:
    try:
        if codec == GZIP:
            d = zlib.decompressobj(47)  # gzip or zlib header, auto-detected
            out = d.decompress(data, MAX_UNCOMPRESSED)
            if d.unconsumed_tail or not d.eof:
                raise KafkaBatchError("gzip payload truncated or too large")
            return out
        if codec == LZ4:
            import lz4.frame

            d = lz4.frame.LZ4FrameDecompressor()
            out = d.decompress(data, max_length=MAX_UNCOMPRESSED)
            if not d.eof:
                raise KafkaBatchError("lz4 payload truncated or too large")
            return out
        if codec == ZSTD:
            import io

            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
            out = reader.read(MAX_UNCOMPRESSED + 1)
            if len(out) > MAX_UNCOMPRESSED:
                raise KafkaBatchError("zstd payload too large")
            return out
        if codec == SNAPPY:
            return _snappy_decompress(data)
    except KafkaBatchError:
        raise
    except Exception as e:  # each codec library has its own error types
        raise KafkaBatchError(f"cannot decompress {CODEC_NAMES[codec]} records: {e}") from None
    raise KafkaBatchError(f"unknown compression codec {codec}")


def _snappy_decompress(data: bytes) -> bytes:
    import cramjam

    def raw(block) -> bytes:
        # the uncompressed length leads a raw snappy block: check it before allocating
        size, _ = _read_uvarint(block)
        if size > MAX_UNCOMPRESSED:
            raise KafkaBatchError("snappy payload too large")
        return bytes(cramjam.snappy.decompress_raw(bytes(block)))

    if not data.startswith(_XERIAL_MAGIC):
        return raw(data)
    # xerial framing: magic(8) version(4) compat(4), then [int32 length][raw snappy] blocks
    pos, out, total = 16, [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise KafkaBatchError("truncated xerial snappy block")
        (n,) = struct.unpack_from(">i", data, pos)
        if n < 0 or pos + 4 + n > len(data):
            raise KafkaBatchError("bad xerial snappy block length")
        block = raw(memoryview(data)[pos + 4:pos + 4 + n])
        total += len(block)
        if total > MAX_UNCOMPRESSED:
            raise KafkaBatchError("snappy payload too large")
        out.append(block)
        pos += 4 + n
    return b"".join(out)


def _read_uvarint(data) -> tuple[int, int]:
    z = shift = pos = 0
    while True:
        if pos >= len(data) or shift > 35:
            raise KafkaBatchError("bad snappy length")
        b = data[pos]
        z |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return z, pos
        shift += 7


def compress(codec: int, data: bytes) -> bytes:
    """``data`` compressed as a Kafka client would for this codec."""
    if codec == NONE:
        return data
    if codec == GZIP:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if codec == LZ4:
        import lz4.frame

        return lz4.frame.compress(data)
    if codec == ZSTD:
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(data)
    if codec == SNAPPY:
        import cramjam

        return bytes(cramjam.snappy.compress_raw(data))
    raise ValueError(f"unknown compression codec {codec}")


# ------------------------------------------------------------------------------ decoding

def decode_batches(data) -> list[KafkaBatch]:
    """Every batch in ``data`` (a produce request's records), checked: magic, lengths,
    CRC-32C, attributes, counts, every record's framing. KafkaBatchError otherwise."""
    if not data:
        raise KafkaBatchError("no record batch")
    mv = memoryview(data)
    out, pos, total = [], 0, len(mv)
    while pos < total:
        if total - pos < HEADER_SIZE:
            raise KafkaBatchError(f"truncated batch header ({total - pos} bytes)")
        (base_offset, length, epoch, magic, crc, attributes, last_delta, base_ts, max_ts,
         pid, pepoch, base_seq, count) = HEADER.unpack_from(mv, pos)
        if magic != MAGIC:
            raise KafkaBatchError(f"record batch magic {magic} (only v2 is served)")
        end = pos + LOG_OVERHEAD + length
        if length < HEADER_SIZE - LOG_OVERHEAD or end > total:
            raise KafkaBatchError(f"bad batch length {length}")
        if crc32c.crc32c(mv[pos + _ATTRIBUTES_AT:end]) != crc:
            raise KafkaBatchError("CRC-32C mismatch")
        codec = attributes & CODEC_MASK
        if codec > ZSTD or attributes < 0 or attributes & ~0x7F:
            raise KafkaBatchError(f"bad batch attributes {attributes:#x}")
        if count < 0 or last_delta < 0 or count > last_delta + 1:
            raise KafkaBatchError(f"bad counts: {count} records, last offset delta {last_delta}")
        body = mv[pos + HEADER_SIZE:end]
        if codec:
            body = _decompress(codec, bytes(body))
        columns = (_decode_records(body, count, last_delta) if _CBatch is None
                   else _decode_records_c(body, count, last_delta))
        out.append(KafkaBatch(base_offset, epoch, attributes, last_delta, base_ts, max_ts,
                              pid, pepoch, base_seq, *columns))
        pos = end
    return out


# what aiokafka's reader sees in front of the records: a header with offsets and timestamps
# from 0 (so a record's offset and timestamp are its deltas), no codec, no LogAppendTime bit;
# it reads nothing of it but these fields and the record count
_C_HEAD = struct.Struct(">qiibIhiqqqhi")  # the header up to base_sequence; then the count
_C_PAD = bytes(64)
_OFFSET, _TIMESTAMP = attrgetter("offset"), attrgetter("timestamp")
_KEY, _VALUE, _HEADERS = attrgetter("key"), attrgetter("value"), attrgetter("headers")


def _decode_records_c(body, count: int, last_delta: int) -> tuple[list, ...]:
    """``_decode_records`` through aiokafka's Cython ``DefaultRecordBatch``: the same columns
    and the same errors (its bounds checks: every length inside the records, every record
    exactly its length, no bytes after the last). Its varint reads check one byte ahead, not
    ten, so the buffer it reads is followed by 64 zero bytes it is not told about: a
    malformed record reads those, never past them (each read is bounded before the next)."""
    head = _C_HEAD.pack(0, 0, 0, MAGIC, 0, 0, last_delta, 0, 0, -1, -1, -1) + count.to_bytes(
        4, "big", signed=True)
    buf = b"".join((head, body, _C_PAD))
    # a batch's thousands of record objects live together for a moment: without this the
    # collector walks them every 700 (2,500 young collections per million records, 7% of
    # the produce path); nothing here makes a reference cycle
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        recs = list(_CBatch(memoryview(buf)[:len(buf) - len(_C_PAD)]))
    except (_CCorrupt, UnicodeDecodeError) as e:
        raise KafkaBatchError(f"truncated or malformed record: {e}") from None
    finally:
        if collecting:
            gc.enable()
    offsets = list(map(_OFFSET, recs))  # C-level loops: a comprehension costs 2x
    if recs and (min(offsets) < 0 or max(offsets) > last_delta):
        bad = next(o for o in offsets if not 0 <= o <= last_delta)
        raise KafkaBatchError(f"offset delta {bad} outside 0..{last_delta}")
    headers = list(map(_HEADERS, recs))
    if any(headers):  # ours: None for none, else [name, value] lists
        headers = [list(map(list, h)) if h else None for h in headers]
    else:
        headers = [None] * len(recs)
    return (offsets, list(map(_TIMESTAMP, recs)), list(map(_KEY, recs)),
            list(map(_VALUE, recs)), headers)


_ZZ = [(b >> 1) ^ -(b & 1) for b in range(128)]  # one-byte zigzag varints, decoded


def _decode_records(body, count: int, last_delta: int) -> tuple[list, ...]:
    """The records section as columns. The hot loop inlines one-byte varints (and two-byte
    ones for the record length, offset delta and value length) and the common empty header
    list; anything else goes through ``_read_varint`` (a function call per varint was
    most of the cost)."""
    data = bytes(body)
    offsets, stamps, keys, values, headers = [], [], [], [], []
    pos, size = 0, len(data)
    read, zz = _read_varint, _ZZ
    try:
        for _ in range(count):
            b = data[pos]
            if b < 0x80:
                length, pos = zz[b], pos + 1
            elif data[pos + 1] < 0x80:  # two bytes: records of 64..8191 bytes
                z = (b & 0x7F) | (data[pos + 1] << 7)
                length, pos = (z >> 1) ^ -(z & 1), pos + 2
            else:
                length, pos = read(data, pos)
            end = pos + length
            if length < 6 or end > size:
                raise KafkaBatchError(f"bad record length {length}")
            b = data[pos + 1]  # after the record attributes (unused in v2)
            if b < 0x80:
                ts_delta, pos = zz[b], pos + 2
            else:
                ts_delta, pos = read(data, pos + 1)
            b = data[pos]
            if b < 0x80:
                offset_delta, pos = zz[b], pos + 1
            elif data[pos + 1] < 0x80:
                z = (b & 0x7F) | (data[pos + 1] << 7)
                offset_delta, pos = (z >> 1) ^ -(z & 1), pos + 2
            else:
                offset_delta, pos = read(data, pos)
            if not 0 <= offset_delta <= last_delta:
                raise KafkaBatchError(f"offset delta {offset_delta} outside 0..{last_delta}")
            b = data[pos]
            if b == 1:  # -1: null
                key, pos = None, pos + 1
            else:
                if b < 0x80:
                    n, pos = zz[b], pos + 1
                else:
                    n, pos = read(data, pos)
                if n < 0:
                    raise KafkaBatchError(f"bad key length {n}")
                key = data[pos:pos + n]
                pos += n
            b = data[pos]
            if b == 1:
                value, pos = None, pos + 1
            else:
                if b < 0x80:
                    n, pos = zz[b], pos + 1
                elif data[pos + 1] < 0x80:
                    z = (b & 0x7F) | (data[pos + 1] << 7)
                    n, pos = (z >> 1) ^ -(z & 1), pos + 2
                else:
                    n, pos = read(data, pos)
                if n < 0:
                    raise KafkaBatchError(f"bad value length {n}")
                value = data[pos:pos + n]
                pos += n
            if data[pos] == 0:  # no headers
                hs, pos = None, pos + 1
            else:
                hs, pos = _read_headers(data, pos, length)
            if pos != end:
                raise KafkaBatchError("record length does not match its fields")
            offsets.append(offset_delta)
            stamps.append(ts_delta)
            keys.append(key)
            values.append(value)
            headers.append(hs)
    except (IndexError, UnicodeDecodeError) as e:
        raise KafkaBatchError(f"truncated or malformed record: {e}") from None
    if pos != size:
        raise KafkaBatchError(f"{size - pos} bytes after the last record")
    return offsets, stamps, keys, values, headers


def _read_headers(data: bytes, pos: int, length: int) -> tuple[list, int]:
    read = _read_varint
    n, pos = read(data, pos)
    if n < 0 or n > length:
        raise KafkaBatchError(f"bad header count {n}")
    hs = []
    for _h in range(n):
        k, pos = read(data, pos)
        if k < 0:
            raise KafkaBatchError("null header name")
        name = data[pos:pos + k].decode()
        pos += k
        k, pos = read(data, pos)
        if k < -1:
            raise KafkaBatchError(f"bad header value length {k}")
        hs.append([name, None if k == -1 else data[pos:pos + k]])
        pos += max(k, 0)
    return hs, pos


# ------------------------------------------------------------------------------ encoding

def encode_records(offset_deltas, timestamp_deltas, keys, values, headers) -> bytes:
    """The records section of a batch (uncompressed) from columns (timestamp deltas in ms
    from the batch's base timestamp); ``headers[i]`` is None or a sequence of (name, value)
    pairs. ``offset_deltas`` None: 0, 1, 2, ..."""
    table, small, vi = _TABLE, _SMALL, varint
    null = table[0]
    zero = table[1]
    parts = []
    append = parts.append
    n = len(keys)
    deltas = range(n) if offset_deltas is None else offset_deltas
    for od, td, key, value, hs in zip(deltas, timestamp_deltas, keys, values, headers,
                                      strict=True):
        if key is None:
            kb = null
        else:
            kl = len(key)
            kb = (table[kl + 1] if kl < small else vi(kl)) + key
        if value is None:
            vb = null
        else:
            vl = len(value)
            vb = (table[vl + 1] if vl < small else vi(vl)) + value
        if hs:
            hb = [vi(len(hs))]
            for name, hv in hs:
                nb = name.encode()
                hb.append(vi(len(nb)))
                hb.append(nb)
                if hv is None:
                    hb.append(null)
                else:
                    hb.append(vi(len(hv)))
                    hb.append(hv)
            hbytes = b"".join(hb)
        else:
            hbytes = zero
        body = b"".join((
            b"\0",
            table[td + 1] if -1 <= td < small else vi(td),
            table[od + 1] if od < small else vi(od),
            kb, vb, hbytes,
        ))
        bl = len(body)
        append(table[bl + 1] if bl < small else vi(bl))
        append(body)
    return b"".join(parts)


def encode_batch(
    *,
    records: bytes,
    record_count: int,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
    attributes: int = 0,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """A whole v2 batch around an encoded records section, compressed with the codec of
    ``attributes``; the CRC-32C computed."""
    payload = compress(attributes & CODEC_MASK, records)
    buf = bytearray(HEADER_SIZE + len(payload))
    buf[HEADER_SIZE:] = payload
    seal(buf, base_offset, partition_leader_epoch, attributes, last_offset_delta,
         base_timestamp, max_timestamp, producer_id, producer_epoch, base_sequence, record_count)
    return bytes(buf)


def seal(buf: bytearray, base_offset: int, partition_leader_epoch: int, attributes: int,
         last_offset_delta: int, base_timestamp: int, max_timestamp: int, producer_id: int,
         producer_epoch: int, base_sequence: int, record_count: int) -> None:
    """Write the v2 header (the batch length from ``len(buf)``) into the first
    ``HEADER_SIZE`` bytes of ``buf``, whose records section follows, then its CRC-32C."""
    HEADER.pack_into(buf, 0, base_offset, len(buf) - LOG_OVERHEAD, partition_leader_epoch,
                     MAGIC, 0, attributes, last_offset_delta, base_timestamp, max_timestamp,
                     producer_id, producer_epoch, base_sequence, record_count)
    struct.pack_into(">I", buf, _CRC_AT, crc32c.crc32c(memoryview(buf)[_ATTRIBUTES_AT:]))
