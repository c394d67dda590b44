"""The values the share-partition core (partition.py) takes and returns: its config, the
acknowledgements it is given, what it hands out and what it decides (``Changes``), the
persisted form of a range and a description. Pure, immutable."""

from __future__ import annotations

from rillet.frozen import frozen

# AcknowledgementBatch.acknowledge_types (Kafka's numbers; the wire's ACK_*)
ACK_GAP, ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_RENEW = 0, 1, 2, 3, 4
REASON_LIMIT = "delivery count limit reached"


class ShareStateError(Exception):
    """A refused request: ``code`` is Kafka's error name (mapped to the wire by the actor)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@frozen
class SharePartitionConfig:
    """The group's settings as this core needs them (ms; Kafka's names in the comments)."""

    record_lock_duration_ms: int = 30_000  # share.record.lock.duration.ms
    delivery_count_limit: int = 5  # share.delivery.count.limit
    max_record_locks: int = 2000  # group.share.partition.max.record.locks
    retry_backoff_ms: int = 1000  # retry.backoff.ms
    retry_backoff_multiplier: float = 2.0  # retry.backoff.multiplier
    retry_backoff_max_ms: int = 60_000  # retry.backoff.max.ms
    dead_letter_topic: str = ""  # errors.deadletterqueue.topic.name resolved; "": none


@frozen
class Acquired:
    first_offset: int
    last_offset: int
    delivery_count: int


@frozen
class Ack:
    """One acknowledgement batch (the wire's AcknowledgementBatch)."""

    first_offset: int
    last_offset: int
    acknowledge_types: tuple[int, ...]
    delay_ms: int = -1
    reason: str = ""


@frozen
class DeadLetter:
    """Offsets to write to the dead-letter topic, then report with ``dead_lettered``."""

    first_offset: int
    last_offset: int
    delivery_count: int
    reason: str


@frozen
class Changes:
    dirty: bool = False  # the persisted state changed: write it
    dead_letters: tuple[DeadLetter, ...] = ()
    released: bool = False  # records became AVAILABLE: parked fetches may get them


NO_CHANGES = Changes()


@frozen
class StateBatch:
    """The persisted form of a range (the wire's ShareStateBatch)."""

    first_offset: int
    last_offset: int
    delivery_state: int
    delivery_count: int
    available_at_ms: int = 0
    reason: str = ""


@frozen
class Description:
    start_offset: int
    end_offset: int
    high_watermark: int
    lag: int
    available: int
    delayed: int
    acquired: int
    acknowledged: int
    archived: int
    dead_lettered: int
    delivery_counts: tuple[tuple[int, int], ...]  # (delivery count, in-flight records)


def coalesced(acks) -> list[Ack]:
    """Neighbouring batches of one type (and delay, reason) as one: a client that sends one
    batch per record costs what one batch per range does."""
    out: list[Ack] = []
    run: Ack | None = None  # the first batch of the current run
    last = -2
    for a in acks:
        if (run is not None and last + 1 == a.first_offset and len(a.acknowledge_types) == 1
                and a.acknowledge_types == run.acknowledge_types
                and a.delay_ms == run.delay_ms and a.reason == run.reason):
            last = a.last_offset
            continue
        if run is not None:
            out.append(run if run.last_offset == last else Ack(
                run.first_offset, last, run.acknowledge_types, run.delay_ms, run.reason))
        run, last = (a, a.last_offset) if len(a.acknowledge_types) == 1 else (None, -2)
        if run is None:
            out.append(a)
    if run is not None:
        out.append(run if run.last_offset == last else Ack(
            run.first_offset, last, run.acknowledge_types, run.delay_ms, run.reason))
    return out


def runs(a: Ack):
    """(first, last, type) runs of equal acknowledge types in one batch."""
    types = a.acknowledge_types
    if len(types) == 1:
        yield a.first_offset, a.last_offset, types[0]
        return
    start = 0
    for k in range(1, len(types) + 1):
        if k == len(types) or types[k] != types[start]:
            yield a.first_offset + start, a.first_offset + k - 1, types[start]
            start = k
