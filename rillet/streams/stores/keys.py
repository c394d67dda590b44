"""The binary keys window and session stores write to their changelog topics, as Kafka's
(``WindowKeySchema.toStoreKeyBinary``, ``SessionKeySchema.toBinary``), so that restoring a
changelog rebuilds the store exactly:

* window store: ``key bytes + 8-byte big-endian window start + 4-byte big-endian sequence
  number`` (the sequence number is 0 unless the store retains duplicates; Kafka writes the
  four bytes in both cases, and so do we, so one decoder reads both);
* session store: ``key bytes + 8-byte big-endian session end + 8-byte big-endian start``.

Bytes in, bytes out; no I/O.
"""

from __future__ import annotations

import struct

_START_SEQ = struct.Struct(">qi")
_END_START = struct.Struct(">qq")
WINDOW_SUFFIX = _START_SEQ.size  # 12
SESSION_SUFFIX = _END_START.size  # 16
SEQ_MASK = 0x7FFFFFFF  # Kafka's sequence numbers wrap within a positive int32


def window_key(key: bytes, window_start: int, seq: int = 0) -> bytes:
    return key + _START_SEQ.pack(window_start, seq)


def split_window_key(data: bytes) -> tuple[bytes, int, int]:
    """``(key, window_start, seq)`` of a window changelog key; ValueError if too short."""
    if len(data) < WINDOW_SUFFIX:
        raise ValueError(f"a window store changelog key has at least {WINDOW_SUFFIX} bytes, "
                         f"got {len(data)}")
    start, seq = _START_SEQ.unpack_from(data, len(data) - WINDOW_SUFFIX)
    return bytes(data[:-WINDOW_SUFFIX]), start, seq


def session_key(key: bytes, start: int, end: int) -> bytes:
    return key + _END_START.pack(end, start)


def split_session_key(data: bytes) -> tuple[bytes, int, int]:
    """``(key, start, end)`` of a session changelog key; ValueError if too short."""
    if len(data) < SESSION_SUFFIX:
        raise ValueError(f"a session store changelog key has at least {SESSION_SUFFIX} "
                         f"bytes, got {len(data)}")
    end, start = _END_START.unpack_from(data, len(data) - SESSION_SUFFIX)
    return bytes(data[:-SESSION_SUFFIX]), start, end
