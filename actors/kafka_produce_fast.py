"""Kafka's ProduceResponse (v3-v11) as rillet answers it, encoded by hand.

kio's generic writer walks each entity's fields with a typed writer per field and checks
every primitive's type on the way: ~60% of the broker's CPU for an unbatched Kafka produce
(a client at ``linger.ms=0``) went into building and writing the answer (docs/runtime.md,
"Hosted sessions"). rillet's answer never carries record errors, a current leader or node
endpoints, so its encoding is a handful of ``struct`` packs. The frame is byte for byte what
kio writes for the same response (tests/unit/test_kafka_produce_fast.py compares them for
every served version).

``ProduceAnswer`` is a dataclass shaped like kio's response (``responses`` ->
``partition_responses`` -> ``error_code``, ``throttle_time``), so quotas
(``dataclasses.replace`` of the throttle) and the listener's metrics (its error-code scan)
treat it as they treat kio's; ``kafka_wire.encode_response`` calls its ``encode_frame``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import timedelta

from .kafka_batch import uvarint_bytes as _uvarint

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_PARTITION = struct.Struct(">ihqq")  # index, error_code, base_offset, log_append_time
_I64 = struct.Struct(">q")
FIRST_FLEXIBLE = 9  # ProduceResponse v9+: compact arrays and strings, tagged fields


@dataclass(frozen=True, slots=True)
class PartitionAnswer:
    index: int
    error_code: int
    base_offset: int
    log_append_time: int  # ms; -1: CreateTime (or an error)
    log_start_offset: int
    error_message: str | None


@dataclass(frozen=True, slots=True)
class TopicAnswer:
    name: str
    partition_responses: tuple[PartitionAnswer, ...]


@dataclass(frozen=True, slots=True)
class ProduceAnswer:
    version: int
    responses: tuple[TopicAnswer, ...]
    throttle_time: timedelta

    def encode_frame(self, correlation_id: int) -> bytes:
        """The size-prefixed frame: the response header of this version, then the body."""
        v = self.version
        flexible = v >= FIRST_FLEXIBLE
        parts = [b"", _I32.pack(correlation_id)]
        if flexible:
            parts.append(b"\0")  # the header's tagged fields
        parts.append(_length(len(self.responses), flexible))
        for topic in self.responses:
            parts.append(_string(topic.name, flexible))
            parts.append(_length(len(topic.partition_responses), flexible))
            for p in topic.partition_responses:
                parts.append(_PARTITION.pack(p.index, p.error_code, p.base_offset,
                                             p.log_append_time))
                if v >= 5:
                    parts.append(_I64.pack(p.log_start_offset))
                if v >= 8:
                    parts.append(_length(0, flexible))  # record_errors
                    parts.append(_nullable_string(p.error_message, flexible))
                if flexible:
                    parts.append(b"\0")
            if flexible:
                parts.append(b"\0")
        parts.append(_I32.pack(int(self.throttle_time.total_seconds() * 1000)))
        if flexible:
            parts.append(b"\0")
        size = sum(map(len, parts))
        parts[0] = _I32.pack(size)
        return b"".join(parts)


def _length(n: int, flexible: bool) -> bytes:
    return _uvarint(n + 1) if flexible else _I32.pack(n)


def _string(value: str, flexible: bool) -> bytes:
    data = value.encode()
    return (_uvarint(len(data) + 1) if flexible else _I16.pack(len(data))) + data


def _nullable_string(value: str | None, flexible: bool) -> bytes:
    if value is None:
        return b"\0" if flexible else _I16.pack(-1)
    return _string(value, flexible)
