"""Kafka's ``consumer`` embedded protocol, read only: the bytes a classic group's members
exchange through the coordinator (JoinGroup metadata: ConsumerProtocolSubscription; SyncGroup
assignment: ConsumerProtocolAssignment). The coordinator never needs them, but rillet's
tools show a Kafka consumer's partitions (``rillet group describe``) and OffsetDelete refuses
the topics its members subscribe to, as Kafka does.

Both start ``int16 version`` then an array (``int32`` count) of ``string`` topics
(``int16`` length), the assignment's each followed by an array of ``int32`` partitions; what
follows (user data, owned partitions, rack) is not read. The bytes are the clients' own:
anything malformed decodes to nothing, never an error.
"""

from __future__ import annotations

import struct

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def _string(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = _I16.unpack_from(data, pos)
    if n < 0 or pos + 2 + n > len(data):
        raise struct.error("bad string")
    return bytes(data[pos + 2:pos + 2 + n]).decode(), pos + 2 + n


def subscription_topics(data: bytes) -> tuple[str, ...]:
    """The topics of a ConsumerProtocolSubscription (() when malformed)."""
    try:
        (count,) = _I32.unpack_from(data, 2)
        pos, topics = 6, []
        for _ in range(max(count, 0)):
            topic, pos = _string(data, pos)
            topics.append(topic)
        return tuple(topics)
    except (struct.error, UnicodeDecodeError):
        return ()


def assignment_partitions(data: bytes) -> dict[str, tuple[int, ...]]:
    """topic -> partitions of a ConsumerProtocolAssignment ({} when malformed)."""
    try:
        (count,) = _I32.unpack_from(data, 2)
        pos, out = 6, {}
        for _ in range(max(count, 0)):
            topic, pos = _string(data, pos)
            (k,) = _I32.unpack_from(data, pos)
            k = max(k, 0)
            out[topic] = tuple(sorted(struct.unpack_from(f">{k}i", data, pos + 4)))
            pos += 4 + 4 * k
        return out
    except (struct.error, UnicodeDecodeError):
        return {}
