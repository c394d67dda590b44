"""The fetch path's transcoder: a stored rillet batch -> a Kafka v2 batch (uncompressed),
exactly the bytes of ``kafka_batch.encode_batch(records=kafka_batch.encode_records(...))``
over the cbor2-decoded columns (the record-by-record encoder ``to_kafka_parts`` ran before).

``encode(fields, buf, start)`` takes the batch's header fields (``logstore.batch.HEADER``
unpacked). Three paths:

* fixed shape: dense offsets, every timestamp delta in 0..23 (one CBOR byte, one varint
  byte), keys all null or all of one length, values all null or all of one length, no
  headers (what producers send most). The payload's columns are read in place
  (``batch_fast._bytes_items``: a strided compare and one ``struct`` unpack, no cbor2); the
  records section is one ``bytearray.join`` of cached per-record prefixes (length,
  attributes, offset delta, key/value length) interleaved with the keys and values, the
  timestamp bytes then written with a strided slice per run of records of one size. No
  Python code runs per record.
* columns: other dense batches without headers (null and non-null keys or values mixed,
  lengths varying, larger timestamp deltas): every record's pieces built with C-level
  ``map``s over whole columns and joined once.
* record by record (``kafka_batch.encode_records``): batches with headers and compacted ones
  (sparse offsets: no faster by columns).

tests/unit/test_kafka_transcode_fast.py checks every path against the record-by-record
encoder over varied shapes (hypothesis); bench/kafka_transcode_bench.py measures them.
"""

from __future__ import annotations

import io
from itertools import repeat
from operator import add

import cbor2
from rillet.logstore import batch as B
from rillet.logstore import batch_fast as BF

from . import kafka_batch as KB

_TABLE = KB._TABLE  # noqa: SLF001 - zigzag varint of n at index n + 1, -1 <= n < 16384
_V = _TABLE[1:]  # zigzag varint of n at index n, 0 <= n < 16384
_LIMIT = len(_V)  # 16384: records (and lengths) the cached tables cover
_NULL = _TABLE[0]  # varint(-1): a null key or value
_ZERO = b"\x00"
# the bits a stored batch keeps in Kafka's format (TIMESTAMP_TYPE == B.LOG_APPEND_TIME_FLAG,
# set by the leader)
_FLAGS_OUT = KB.TRANSACTIONAL_FLAG | KB.CONTROL_FLAG | KB.TIMESTAMP_TYPE_FLAG
_HEADER_SPACE = bytes(KB.HEADER_SIZE)
_ZZ1 = bytes((2 * b) & 0xFF for b in range(256))  # zigzag of 0..63 as one varint byte
_DENSE = B.DENSE_PAYLOAD_PREFIX
_SMALL_UINTS = bytes(range(24))  # one-byte CBOR uints
_UNZIGZAG = bytes(b // 2 for b in range(256))  # the inverse of _ZZ1 on its results
_ONE_BYTE_DELTAS = bytes(range(64))  # timestamp deltas whose zigzag varint is one byte
_VLEN = list(map(len, _V))  # the size of varint(n)
_VSIZE = list(map(add, _VLEN, range(_LIMIT)))  # ... plus n: a length-prefixed field


# ------------------------------------------------------------------------------ decoding

def _ts_column(buf: bytes, p: int, n: int):
    """(the timestamp deltas' zigzag varint bytes, position after the column) of the dense
    payload's second column at ``p`` when every delta is in 0..23, else None."""
    ah = BF.array_head(n)
    if not buf.startswith(ah, p):
        return None
    p += len(ah)
    deltas = buf[p:p + n]
    if len(deltas) != n or deltas.translate(None, _SMALL_UINTS):
        return None  # a delta of 24 or more (several bytes): the columns path
    return deltas.translate(_ZZ1), p + n


def _bytes_column(buf: bytes, p: int, end: int, n: int):
    """(-1 and None when all ``n`` items are null, else (length, tuple of byte strings) of one
    length; position after it) of the byte-string column at ``p``, or None."""
    ah = BF.array_head(n)
    if not buf.startswith(ah, p):
        return None
    p += len(ah)
    if buf.startswith(BF._null_items(n), p):  # noqa: SLF001
        return -1, None, p + n
    items = BF._bytes_items(buf, p, n, end)  # noqa: SLF001
    if items is None:
        return None
    col, after = items
    return len(col[0]), col, after


# ------------------------------------------------------------------------ the fixed shape

class _Shape:
    """Per (key length, value length) (-1: null): ``tables``, (the record prefixes for offset
    deltas 0, 1, ..., the runs of records whose timestamp bytes lie one stride apart), built
    for at least as many records as asked and replaced whole (two transcoding threads)."""

    __slots__ = ("klen", "vlen", "tables")

    def __init__(self, klen: int, vlen: int) -> None:
        self.klen, self.vlen = klen, vlen
        self.tables: tuple[list[bytes], list[tuple[int, int, int, int]]] = ([], [])

    def build(self, n: int) -> None:
        """A record's prefix: the previous record's header count (0) from the second record
        on, the length varint, attributes (0), the timestamp delta byte (0: written later),
        the offset delta, the key length (and with a null key the value length: the value
        follows). A run: (first record, end record, position of the first timestamp byte in
        the records section, stride)."""
        klen, vlen = self.klen, self.vlen
        kpart = _NULL if klen < 0 else _V[klen]
        vpart = _NULL if vlen < 0 else _V[vlen]
        fixed = len(kpart) + max(klen, 0) + len(vpart) + max(vlen, 0) + 3  # attrs, ts, hdrs
        size = min(max(n, 2 * len(self.tables[0]), 64), _LIMIT)
        pres, ts_at = [], []
        pos = 0
        for i in range(size):
            ov = _V[i]
            body = fixed + len(ov)
            lead = (_ZERO if i else b"") + KB.varint(body)
            pres.append(lead + b"\x00\x00" + ov + kpart + (vpart if klen < 0 else b""))
            ts_at.append(pos + len(lead) + 1)
            pos += len(lead) + body - 1  # the header count byte goes with the next record
        runs = []
        i0 = 0
        while i0 < size:
            stride = ts_at[i0 + 1] - ts_at[i0] if i0 + 1 < size else 1
            i1 = i0 + 1
            while i1 < size and ts_at[i1] - ts_at[i1 - 1] == stride:
                i1 += 1
            runs.append((i0, i1, ts_at[i0], stride))
            i0 = i1
        self.tables = (pres, runs)


_shapes: dict[tuple[int, int], _Shape] = {}


def _tables(klen: int, vlen: int, n: int) -> tuple[list, list]:
    s = _shapes.get((klen, vlen))
    if s is None:
        if len(_shapes) >= 32:  # many distinct lengths: stay bounded
            _shapes.clear()
        s = _shapes[(klen, vlen)] = _Shape(klen, vlen)
    tables = s.tables
    if len(tables[0]) < n:
        s.build(n)
        tables = s.tables
    return tables


def _fixed(n: int, tz: bytes, klen: int, keys, vlen: int, values) -> bytearray:
    """The batch (header space, then the records section) of the fixed shape."""
    pres, runs = _tables(klen, vlen, n)
    cols: list = [pres[:n]]
    if klen >= 0:
        cols.append(keys)
        cols.append([_NULL if vlen < 0 else _V[vlen]] * n)
    if vlen >= 0:
        cols.append(values)
    k = len(cols)
    parts: list = [None] * (k * n + 2)
    parts[0] = _HEADER_SPACE
    for j, col in enumerate(cols):
        parts[1 + j:1 + k * n:k] = col
    parts[-1] = _ZERO
    buf = bytearray().join(parts)
    if tz.count(0) != n:  # some timestamp delta is not 0: write them, run by run
        base = KB.HEADER_SIZE
        for i0, i1, at, stride in runs:
            if i0 >= n:
                break
            m = min(i1, n) - i0
            start = base + at
            buf[start:start + (m - 1) * stride + 1:stride] = tz[i0:i0 + m]
    return buf


def _dense_payload(buf: bytes, p: int, end: int, n: int) -> bytearray | None:
    """The batch of a dense payload without headers whose second column starts at ``p``:
    ``_fixed`` when every column has the fixed shape, ``_columns`` when only the timestamp
    deltas do not (the keys and values still read in place, not by cbor2); None when a key
    or value column has no fixed shape or some record has headers."""
    ts = _ts_column(buf, p, n)
    if ts is None:  # some delta below 0 or above 23: cbor2 reads that column alone
        fp = io.BytesIO(memoryview(buf)[p:end])
        try:
            tds = cbor2.CBORDecoder(fp).decode()
        except Exception:  # noqa: BLE001 - the general reader reports what is wrong
            return None
        if type(tds) is not list or len(tds) != n:
            return None
        tz, p = None, p + fp.tell()
    else:
        tz, p = ts
    got = _bytes_column(buf, p, end, n)
    if got is None:
        return None
    klen, keys, p = got
    got = _bytes_column(buf, p, end, n)
    if got is None:
        return None
    vlen, values, p = got
    nulls = BF.nulls(n)
    if p + len(nulls) != end or not buf.startswith(nulls, p):
        return None  # headers (or trailing bytes): not this path
    if tz is None or max(klen, vlen) >= _LIMIT - 64:
        return _columns(None, tds if tz is None else tz.translate(_UNZIGZAG),
                        [None] * n if keys is None else keys,
                        [None] * n if values is None else values)
    return _fixed(n, tz, klen, keys, vlen, values)


# ------------------------------------------------------------------------------ columns

def _varints(ints) -> list:
    """The zigzag varint of every int (C-level lookups while all are in -1..16382)."""
    if not ints:
        return []
    if min(ints) >= -1 and max(ints) < _LIMIT - 1:
        return list(map(_TABLE.__getitem__, map(add, ints, repeat(1))))
    return list(map(KB.varint, ints))


def _lengths(lengths: list) -> tuple[list, list]:
    """(varints, varint size + length) of non-negative lengths."""
    try:
        return list(map(_V.__getitem__, lengths)), list(map(_VSIZE.__getitem__, lengths))
    except IndexError:  # a length of 16384 or more
        heads = list(map(KB.varint, lengths))
        return heads, list(map(add, map(len, heads), lengths))


def _field(items: list) -> tuple:
    """(length varints, items, sizes) of a key or value column, each a list per record or
    one bytes / int for every record: null as varint(-1) and nothing."""
    n = len(items)
    nulls = items.count(None)
    if nulls == n:
        return _NULL, b"", 1
    if not nulls:
        heads, sizes = _lengths(list(map(len, items)))
        return heads, items, sizes
    heads = [_NULL if x is None else KB.varint(len(x)) for x in items]
    items = [b"" if x is None else x for x in items]
    return heads, items, list(map(add, map(len, heads), map(len, items)))


def _timestamps(tds) -> tuple:
    """(varints, sizes) of the timestamp deltas, one bytes / int when all are 0."""
    try:
        small = bytes(tds)
    except ValueError:  # a negative delta or one above 255
        small = None
    if small is not None and not small.translate(None, _ONE_BYTE_DELTAS):
        if small.count(0) == len(small):
            return _ZERO, 1
        return list(map(_V.__getitem__, small)), 1
    tvs = _varints(tds)
    return tvs, list(map(len, tvs))


def _columns(offs, tds, keys: list, values: list) -> bytearray:
    """The batch (header space, then the records section) of any batch without headers:
    every record's pieces (length, attributes, timestamp delta, offset delta, key length,
    key, value length, value, header count) interleaved by whole columns (a piece that is
    the same for every record given once), then joined once."""
    n = len(keys)
    tvs, tsize = _timestamps(tds)
    if offs is None and n <= _LIMIT:
        ovs, osize = _V[:n], _VLEN[:n]
    else:
        ovs = _varints(list(range(n)) if offs is None else offs)
        osize = list(map(len, ovs))
    kps, ks, ksize = _field(keys)
    vps, vs, vsize = _field(values)
    fixed = 2  # attributes, header count
    size = None
    for part in (tsize, osize, ksize, vsize):
        if type(part) is int:
            fixed += part
        else:
            size = part if size is None else list(map(add, size, part))
    size = list(map(add, size, repeat(fixed)))  # osize is a list: size is one
    try:
        lvs = list(map(_V.__getitem__, size))
    except IndexError:
        lvs = list(map(KB.varint, size))
    pieces: list = []
    for piece in (lvs, _ZERO, tvs, ovs, kps, ks, vps, vs, _ZERO):
        if type(piece) is bytes:
            if piece:
                if pieces and type(pieces[-1]) is bytes:
                    pieces[-1] += piece  # constants side by side: one piece
                else:
                    pieces.append(piece)
        else:
            pieces.append(piece)
    k = len(pieces)
    parts: list = [None] * (k * n + 1)
    parts[0] = _HEADER_SPACE
    for j, col in enumerate(pieces):
        parts[1 + j::k] = [col] * n if type(col) is bytes else col
    return bytearray().join(parts)


# ---------------------------------------------------------------------------- reference

def reference(stamped: bytes) -> list[bytes]:
    """Every stored batch of ``stamped`` transcoded record by record, as ``to_kafka_parts``
    did before this module: what ``encode`` must equal byte for byte (its tests and
    bench/kafka_transcode_bench.py compare with it)."""
    out = []
    for h, mv in B.iter_batches(stamped, validate=False):
        offs, tds, keys, values, headers = B._payload_columns(mv, h)  # noqa: SLF001
        out.append(KB.encode_batch(
            records=KB.encode_records(offs, tds, keys, values, headers),
            record_count=h.record_count, base_offset=h.base_offset,
            partition_leader_epoch=h.leader_epoch, attributes=h.attributes & _FLAGS_OUT,
            last_offset_delta=h.last_offset_delta, base_timestamp=h.first_timestamp,
            max_timestamp=h.max_timestamp, producer_id=h.producer_id,
            producer_epoch=h.producer_epoch, base_sequence=h.base_sequence))
    return out


# ------------------------------------------------------------------------------- encode

def encode(fields: tuple, buf: bytes, start: int) -> bytearray:
    """The Kafka batch (uncompressed) of the stored batch at ``buf[start:]`` (``buf`` bytes),
    whose header ``fields`` are ``B.HEADER`` unpacked (a whole batch: checked by the caller).
    A bytearray, which the caller keeps and writes as it is (never changed afterwards)."""
    (base_offset, length, epoch, _magic, _digest, attributes, last_delta, first_ts, max_ts,
     pid, pepoch, seq, n) = fields
    p, end = start + B.HEADER_SIZE, start + length
    codec = attributes & B.CODEC_MASK
    if codec:
        buf = B._decompress(B.Codec(codec), memoryview(buf)[p:end], 0)  # noqa: SLF001
        p, end = 0, len(buf)
    out = None
    if n == last_delta + 1 and n < _LIMIT and buf.startswith(_DENSE, p):
        out = _dense_payload(buf, p + len(_DENSE), end, n)
    if out is None:
        payload = memoryview(buf)[p:end]
        offs, tds, keys, values, headers = B._columns_of(  # noqa: SLF001
            payload, B.BatchHeader(*fields))
        if offs is None and headers.count(None) == n:
            out = _columns(offs, tds, keys, values)
        else:  # headers, or compacted offsets (no faster by columns): record by record
            out = bytearray(_HEADER_SPACE)
            out += KB.encode_records(offs, tds, keys, values, headers)
    KB.seal(out, base_offset, epoch, attributes & _FLAGS_OUT, last_delta, first_ts, max_ts, pid,
            pepoch, seq, n)
    return out  # a bytearray nothing writes to again: not copied into bytes
