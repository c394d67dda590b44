"""Framing of fetched record batches without decoding them (the consumer's fetch engine and
its I/O thread, see rillet/fetcher.py): one ``struct`` unpack per batch header.

The batch layout is written down once, in ``rillet.logstore.batch``'s docstring.
"""

from __future__ import annotations

import struct

from blake3 import blake3

from rillet.logstore.batch import CODEC_MASK, CONTROL_FLAG, HEADER_SIZE, MAGIC, Codec
from rillet.logstore.errors import CorruptBatchError

# the record batch header (layout in rillet.logstore.batch's docstring), unpacked as a plain
# tuple: a BatchHeader dataclass per batch costs more than the rest of the batch's framing
_unpack_header = struct.Struct(">qiiB32shiqqqhii").unpack_from
_MAX_CODEC = int(Codec.LZ4)
_DIGEST_END = 49  # first byte after the digest


def _digest(mv: memoryview, start: int, end: int) -> bytes:
    """The blake3 digest of the batch at mv[start:end] (layout: rillet.logstore.batch)."""
    h = blake3(mv[start + _DIGEST_END:end])
    h.update(mv[start + 8:start + 12])
    h.update(mv[start + 16:start + 17])
    return h.digest()


def scan_batches(buf: bytes, after: int, validate: bool, digests: bool = True,
                 stop_at_corrupt: bool = False):
    """Walk a fetched run of whole batches without decoding records.

    Returns ([(base_offset, attributes, first_timestamp, last_offset_delta, record_count,
    start, end, digest)] of the data batches with records at or after offset ``after``
    (control batches and batches wholly before it are skipped), next offset to fetch).
    Checks what ``logstore.batch.iter_batches`` checks (magic, length, truncation; with
    ``validate`` also attributes, counts and, unless ``digests`` is False, the blake3
    digest), raising CorruptBatchError likewise. With ``stop_at_corrupt`` a corrupt batch
    ends the walk instead: the result is (batches before it, its offset (the next offset
    after them), the error, or None if there was none).
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
            if attributes & CODEC_MASK > _MAX_CODEC or attributes & ~0x37:
                raise CorruptBatchError(f"bad attributes {attributes:#x}", pos)
            if last_delta < 0 or not 1 <= count <= last_delta + 1:
                raise CorruptBatchError(
                    f"bad counts: record_count {count}, last_offset_delta {last_delta}", pos)
            if digests and _digest(mv, pos, end) != digest:
                raise CorruptBatchError("digest mismatch", pos)
        batch_next = base + last_delta + 1
        if batch_next > next_offset:
            next_offset = progress[0] = batch_next
            if not attributes & CONTROL_FLAG:
                out.append((base, attributes, first, last_delta, count, pos, end, digest))
        pos = end
    return out, next_offset
