"""A history checker for produce/consume runs, after Jepsen's Kafka queue checker.

A test records what its clients did — each send with its outcome, and each record a consumer
read — and :func:`check` reports the anomalies of ``reliability.md`` §1.5 / §2.7:

=====================  ===================================================================
anomaly                meaning
=====================  ===================================================================
``lost``               an acknowledged send never read, though reads covered its partition
                       past the offset the ack named (or to the end, in a final drain)
``duplicate``          one value read (or acknowledged) at two or more offsets
``inconsistent``       one (partition, offset) seen holding two different values
``reordered``          one producer's acknowledged sends to a partition appear in the log in
                       another order than they were sent (``nonmonotonic-send``)
``unexpected``         a value read that no producer ever sent
``aborted_read``       a value whose send *definitely* failed was read (G1a)
``nonmonotonic_poll``  one consumer, in assign mode, read offsets of a partition that went
                       backwards or skipped an offset that exists in the log
=====================  ===================================================================

Values must be unique per run (a value identifies its send). An ``info`` outcome (timeout,
connection lost: the send may or may not have landed) is allowed to be read or not, but if it
is read it must still be read at one offset only.

The checker is pure: build a :class:`History`, then ``check(history).ok``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

OK, INFO, FAIL = "ok", "info", "fail"


@dataclass(slots=True)
class Send:
    producer: str
    value: bytes
    partition: int | None = None
    outcome: str | None = None  # ok | info | fail, None while in flight
    offset: int | None = None  # the offset the ack named


@dataclass(slots=True)
class History:
    """What happened in one run, recorded by the test's clients (not thread-safe: lock it)."""

    sends: dict[bytes, Send] = field(default_factory=dict)
    send_order: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    # consumer -> list of (partition, offset, value) in the order read
    reads: dict[str, list[tuple[int, int, bytes]]] = field(default_factory=lambda: defaultdict(list))
    drained: set[int] = field(default_factory=set)  # partitions read from 0 to the end

    def send(self, producer: str, value: bytes, partition: int | None = None) -> None:
        if value in self.sends:
            raise ValueError(f"value {value!r} sent twice: values must be unique per run")
        self.sends[value] = Send(producer, value, partition)
        self.send_order[producer].append(value)

    def ack(self, value: bytes, partition: int, offset: int) -> None:
        s = self.sends[value]
        s.outcome, s.partition, s.offset = OK, partition, offset

    def fail(self, value: bytes) -> None:
        """A definite failure: the send is known not to have been written."""
        self.sends[value].outcome = FAIL

    def info(self, value: bytes) -> None:
        """An indeterminate outcome (timeout, lost connection)."""
        self.sends[value].outcome = INFO

    def read(self, consumer: str, partition: int, offset: int, value: bytes) -> None:
        self.reads[consumer].append((partition, offset, value))

    def drain(self, partition: int) -> None:
        """Mark that some consumer read ``partition`` from its start to its end after faults healed."""
        self.drained.add(partition)


@dataclass(slots=True)
class Report:
    lost: list[bytes] = field(default_factory=list)
    duplicate: dict[bytes, list[tuple[int, int]]] = field(default_factory=dict)
    inconsistent: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    reordered: list[tuple[str, int, bytes, bytes]] = field(default_factory=list)
    unexpected: list[bytes] = field(default_factory=list)
    aborted_read: list[bytes] = field(default_factory=list)
    nonmonotonic_poll: list[tuple[str, int, int, int]] = field(default_factory=list)
    acked: int = 0
    read_values: int = 0

    @property
    def ok(self) -> bool:
        return not any(
            (self.lost, self.duplicate, self.inconsistent, self.reordered, self.unexpected,
             self.aborted_read, self.nonmonotonic_poll)
        )

    def summary(self) -> str:
        parts = [f"acked={self.acked}", f"read={self.read_values}"]
        for name in ("lost", "duplicate", "inconsistent", "reordered", "unexpected",
                     "aborted_read", "nonmonotonic_poll"):
            found = getattr(self, name)
            if found:
                sample = list(found.items())[:3] if isinstance(found, dict) else found[:3]
                parts.append(f"{name}={len(found)} e.g. {sample}")
        return ", ".join(parts)


def check(history: History, *, assign_mode: bool = True) -> Report:
    """Analyse ``history``; ``assign_mode`` makes skips and backward polls per consumer errors."""
    report = Report()
    # (partition, offset) -> values seen there, from acks and reads
    at: dict[tuple[int, int], set[bytes]] = defaultdict(set)
    # value -> offsets seen
    where: dict[bytes, set[tuple[int, int]]] = defaultdict(set)
    for s in history.sends.values():
        if s.outcome == OK:
            report.acked += 1
            at[(s.partition, s.offset)].add(s.value)
            where[s.value].add((s.partition, s.offset))
    read_values: set[bytes] = set()
    for rows in history.reads.values():
        for partition, offset, value in rows:
            at[(partition, offset)].add(value)
            where[value].add((partition, offset))
            read_values.add(value)
    report.read_values = len(read_values)

    report.inconsistent = {k: sorted(v) for k, v in at.items() if len(v) > 1}
    report.duplicate = {v: sorted(o) for v, o in where.items() if len(o) > 1}
    report.unexpected = sorted(v for v in read_values if v not in history.sends)
    report.aborted_read = sorted(
        v for v in read_values if v in history.sends and history.sends[v].outcome == FAIL
    )
    report.lost = _lost(history, read_values)
    report.reordered = _reordered(history, where)
    if assign_mode:
        report.nonmonotonic_poll = _nonmonotonic_polls(history, at)
    return report


def _lost(history: History, read_values: set[bytes]) -> list[bytes]:
    highest_read: dict[int, int] = defaultdict(lambda: -1)
    for rows in history.reads.values():
        for partition, offset, _ in rows:
            highest_read[partition] = max(highest_read[partition], offset)
    lost = []
    for s in history.sends.values():
        if s.outcome != OK or s.value in read_values:
            continue
        # Jepsen's lost-write: some poll saw past the offset the ack named; or a final drain
        # covered the whole partition.
        if s.partition in history.drained or s.offset <= highest_read[s.partition]:
            lost.append(s.value)
    return sorted(lost)


def _reordered(
    history: History, where: dict[bytes, set[tuple[int, int]]]
) -> list[tuple[str, int, bytes, bytes]]:
    found = []
    for producer, values in history.send_order.items():
        last: dict[int, tuple[int, bytes]] = {}
        for value in values:
            if history.sends[value].outcome == FAIL or not where.get(value):
                continue
            partition, offset = min(where[value])
            prev = last.get(partition)
            if prev is not None and offset < prev[0]:
                found.append((producer, partition, prev[1], value))
            last[partition] = (offset, value) if prev is None or offset > prev[0] else prev
    return found


def _nonmonotonic_polls(
    history: History, at: dict[tuple[int, int], set[bytes]]
) -> list[tuple[str, int, int, int]]:
    """Per consumer and partition: offsets strictly increase and skip no offset that exists.

    Offsets may have gaps in a compacted log or after transaction markers; an offset counts as
    existing only if some client saw a value there.
    """
    existing: dict[int, list[int]] = defaultdict(list)
    for partition, offset in at:
        existing[partition].append(offset)
    rank = {p: {o: i for i, o in enumerate(sorted(offs))} for p, offs in existing.items()}
    found = []
    for consumer, rows in history.reads.items():
        prev: dict[int, int] = {}
        for partition, offset, _ in rows:
            if partition in prev:
                before = prev[partition]
                if offset <= before or rank[partition][offset] != rank[partition][before] + 1:
                    found.append((consumer, partition, before, offset))
            prev[partition] = offset
    return found
