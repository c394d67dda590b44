"""The persisted share-partition state (KIP-932) and the records of ``__share_group_state``.

One key per share-partition, ``(group_id, topic, partition)``. The topic is compacted: each
record's value is the WHOLE state of its key after a write (never a delta), so the latest
record per key is the state and a tombstone (``value is None``) is a deleted state. The
state is bounded: batches are offset ranges, and the partition leader keeps at most
``group.share.partition.max.record.locks`` records in flight past ``start_offset``.

``to_kv`` gives plain dicts (str/int/lists) for the actor to CBOR-encode; ``from_kv`` checks
every field strictly and raises :class:`InvalidShareRecord` on anything else::

    key    {"type": "share", "group_id": str, "topic": str, "partition": int}
    value  {"version": 0, "state_epoch": int, "leader_epoch": int, "start_offset": int,
            "batches": [[first_offset, last_offset, delivery_state, delivery_count,
                         available_at_ms, reason], ...]}   (sorted, disjoint)

Replay (:func:`replay`) applies records in log order with :func:`apply`, the same function
the coordinator applies its own records with, so replaying what was written gives the
state the writes built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rillet.frozen import frozen

VERSION = 0
RECORD_TYPE = "share"

#: delivery states that are persisted (Kafka's RecordState numbers; ACQUIRED never is)
AVAILABLE = 0
ACKNOWLEDGED = 2
ARCHIVED = 4
DEAD_LETTER_PENDING = 5  # rillet: archived, its dead-letter write not yet confirmed
PERSISTED_STATES = frozenset({AVAILABLE, ACKNOWLEDGED, ARCHIVED, DEAD_LETTER_PENDING})

MAX_REASON_CHARS = 1024  # a dead-letter reason header, not a payload
_VALUE_KEYS = frozenset({"version", "state_epoch", "leader_epoch", "start_offset", "batches"})


class InvalidShareRecord(ValueError):
    """A record of ``__share_group_state`` that is not one this module writes."""


@dataclass(frozen=True, slots=True, order=True)
class SharePartitionKey:
    group_id: str
    topic: str
    partition: int

    def coordinator_key(self) -> str:
        """FindCoordinator key_type 2's key: ``group:topic:partition``."""
        return f"{self.group_id}:{self.topic}:{self.partition}"


@frozen
class StateBatch:
    """Offsets ``first_offset``..``last_offset`` (inclusive) share this state."""

    first_offset: int
    last_offset: int
    delivery_state: int
    delivery_count: int
    available_at_ms: int = 0  # AVAILABLE records released with a delay: not before this
    reason: str = ""  # DEAD_LETTER_PENDING: the reason for the dead-letter headers

    def same_state(self, other: StateBatch) -> bool:
        return (self.delivery_state, self.delivery_count, self.available_at_ms,
                self.reason) == (other.delivery_state, other.delivery_count,
                                 other.available_at_ms, other.reason)

    def problem(self) -> str | None:
        """Why this batch may not be stored, or None."""
        if not (0 <= self.first_offset <= self.last_offset):
            return f"bad offset range {self.first_offset}..{self.last_offset}"
        if self.delivery_state not in PERSISTED_STATES:
            return f"delivery state {self.delivery_state} is not persisted"
        if self.delivery_count < 0 or self.available_at_ms < 0:
            return "negative delivery count or available_at_ms"
        if len(self.reason) > MAX_REASON_CHARS:
            return f"reason longer than {MAX_REASON_CHARS} characters"
        return None


@frozen
class ShareState:
    """What is stored for one share-partition. ``batches`` sorted and disjoint, all at or
    above ``start_offset`` (-1: no start offset known yet)."""

    state_epoch: int
    leader_epoch: int
    start_offset: int
    batches: tuple[StateBatch, ...] = ()


@frozen
class ShareStateRecord:
    """The state of ``key`` from now on; ``state`` None is a tombstone (deleted)."""

    key: SharePartitionKey
    state: ShareState | None


def to_kv(record: ShareStateRecord) -> tuple[dict[str, Any], dict[str, Any] | None]:
    k = record.key
    key = {"type": RECORD_TYPE, "group_id": k.group_id, "topic": k.topic,
           "partition": k.partition}
    s = record.state
    if s is None:
        return key, None
    return key, {
        "version": VERSION,
        "state_epoch": s.state_epoch,
        "leader_epoch": s.leader_epoch,
        "start_offset": s.start_offset,
        "batches": [[b.first_offset, b.last_offset, b.delivery_state, b.delivery_count,
                     b.available_at_ms, b.reason] for b in s.batches],
    }


def _int(v: Any, what: str) -> int:
    if type(v) is not int:
        raise InvalidShareRecord(f"{what} must be an int, got {type(v).__name__}")
    return v


def key_of(key: Mapping[str, Any]) -> SharePartitionKey:
    if not isinstance(key, Mapping) or set(key) != {"type", "group_id", "topic", "partition"}:
        raise InvalidShareRecord(f"bad key {key!r}")
    group, topic = key["group_id"], key["topic"]
    if key["type"] != RECORD_TYPE or type(group) is not str or type(topic) is not str:
        raise InvalidShareRecord(f"bad key {key!r}")
    return SharePartitionKey(group, topic, _int(key["partition"], "partition"))


def from_kv(key: Mapping[str, Any], value: Mapping[str, Any] | None) -> ShareStateRecord:
    k = key_of(key)
    if value is None:
        return ShareStateRecord(k, None)
    if not isinstance(value, Mapping) or set(value) != _VALUE_KEYS:
        raise InvalidShareRecord(f"bad value fields for {k}")
    if value["version"] != VERSION:
        raise InvalidShareRecord(f"unknown record version {value['version']!r}")
    raw = value["batches"]
    if not isinstance(raw, list):
        raise InvalidShareRecord("batches must be a list")
    batches = []
    for b in raw:
        if not (isinstance(b, list) and len(b) == 6 and type(b[5]) is str):
            raise InvalidShareRecord(f"bad batch {b!r}")
        batch = StateBatch(*(_int(x, "batch field") for x in b[:5]), reason=b[5])
        if (problem := batch.problem()) is not None:
            raise InvalidShareRecord(problem)
        if batches and batch.first_offset <= batches[-1].last_offset:
            raise InvalidShareRecord("batches overlap or are not sorted")
        batches.append(batch)
    state = ShareState(
        state_epoch=_int(value["state_epoch"], "state_epoch"),
        leader_epoch=_int(value["leader_epoch"], "leader_epoch"),
        start_offset=_int(value["start_offset"], "start_offset"),
        batches=tuple(batches),
    )
    return ShareStateRecord(k, state)


def apply(states: dict[SharePartitionKey, ShareState], record: ShareStateRecord) -> None:
    """Apply one record to ``states``, in place."""
    if record.state is None:
        states.pop(record.key, None)
    else:
        states[record.key] = record.state


def replay(records: Iterable[ShareStateRecord]) -> dict[SharePartitionKey, ShareState]:
    """The states that ``records`` (in log order) leave."""
    states: dict[SharePartitionKey, ShareState] = {}
    for record in records:
        apply(states, record)
    return states
