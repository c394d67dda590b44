"""Dead-letter writes of share-partition leaders (docs/queues.md, "Share-partition").

A record rejected by a consumer, or released/expired at the delivery limit, is first
persisted as DEAD_LETTER_PENDING (with its reason), then written here to the group's
dead-letter topic, then archived (persisted ARCHIVED). A new leader finds the
DEAD_LETTER_PENDING records in the state it loads and writes them again: the dead-letter
topic gets each record at least once, never none; a reader can drop repeats by the
``rillet.dlq.*`` headers (topic, partition, offset name the record uniquely).

``DeadLetterWriter.write(...)`` reads the records of ``first``..``last`` through the source
partition's actor (this broker leads it), copies key, value, timestamp and headers, adds

    rillet.dlq.topic, rillet.dlq.partition, rillet.dlq.offset,
    rillet.dlq.delivery.count, rillet.dlq.group, rillet.dlq.reason     (utf-8 strings)

and appends them with acks=all to the dead-letter topic's partition ``source partition mod
its partition count``: through the local replica actor when this broker leads it, else as a
Produce to the leader's inter-broker listener. The topic is created on first use through the
controller (1 partition, replication factor min(3, live brokers)). ``done(error_code,
written_until)`` is called once (any thread): the records of ``first``..``written_until - 1``
are in the dead-letter topic (a read may stop short of ``last`` at ``MAX_READ_BYTES``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka
from rillet.logstore import batch as B
from rillet.transport import protocol as P

from . import partition as R

E = P.ErrorCode
MAX_READ_BYTES = 4 << 20
WRITE_TIMEOUT_MS = 10_000
DLQ_REPLICATION_FACTOR = 3


def dead_letter_headers(topic: str, partition: int, offset: int, delivery_count: int,
                        group: str, reason: str) -> list[tuple[str, bytes]]:
    return [
        ("rillet.dlq.topic", topic.encode()),
        ("rillet.dlq.partition", str(partition).encode()),
        ("rillet.dlq.offset", str(offset).encode()),
        ("rillet.dlq.delivery.count", str(delivery_count).encode()),
        ("rillet.dlq.group", group.encode()),
        ("rillet.dlq.reason", reason.encode()),
    ]


class DeadLetterWriter:
    """Thread-safe: keeps no state; ``ctx`` is the broker's BrokerContext."""

    def __init__(self, ctx: Any, send_to_broker: Callable[[int, object, int], Any] | None):
        self.ctx = ctx
        self._send_to_broker = send_to_broker  # (broker id, request, timeout ms) -> Future

    def write(self, *, group: str, topic: str, partition: int, first: int, last: int,
              delivery_count: int, reason: str, dlq_topic: str,
              done: Callable[[int, int], None]) -> None:
        source = self.ctx.replicas.get((topic, partition))
        if source is None:
            done(E.NOT_LEADER_OR_FOLLOWER, first)
            return
        target = self._target(dlq_topic, partition)
        if isinstance(target, int):
            done(target, first)
            return

        def on_read(r: P.FetchPartitionResponse) -> None:
            try:
                self._append(r, group, topic, partition, first, last, delivery_count, reason,
                             target, done)
            except Exception:  # noqa: BLE001 - answered, retried by the manager
                done(E.UNKNOWN_SERVER_ERROR, first)

        try:
            source.tell(R.Read(first, MAX_READ_BYTES, reply=on_read, on_data=None))
        except pykka.ActorDeadError:
            done(E.NOT_LEADER_OR_FOLLOWER, first)

    def _target(self, dlq_topic: str, partition: int) -> tuple[str, int, int] | int:
        """(topic, partition, its leader) or an error code (the topic is being made)."""
        image = self.ctx.image
        topic = image.topics.get(dlq_topic)
        if topic is None or not topic.partitions:
            self._create(dlq_topic)
            return E.UNKNOWN_TOPIC_OR_PARTITION
        p = partition % len(topic.partitions)
        info = topic.partitions.get(p)
        if info is None or info.leader < 0:
            return E.LEADER_NOT_AVAILABLE
        return dlq_topic, p, info.leader

    def _create(self, dlq_topic: str) -> None:
        controller = self.ctx.controller
        if controller is None:
            return
        from . import controller as C

        # capped at the registered brokers, fenced ones included (internal_topics.py says why)
        brokers = max(1, len(self.ctx.image.brokers))
        create = P.CreateTopicsRequest(topics=(P.CreatableTopic(
            name=dlq_topic, num_partitions=1,
            replication_factor=min(DLQ_REPLICATION_FACTOR, brokers)),))
        controller.tell(C.Admin(create, lambda _r: None))

    def _append(self, r, group, topic, partition, first, last, delivery_count, reason,
                target, done) -> None:
        if r.error_code != E.NONE:
            done(r.error_code, first)
            return
        builder = B.BatchBuilder()
        count = 0
        until = first
        for header, view in B.iter_batches(r.records, validate=False):
            if header.base_offset > last:
                break
            until = min(last + 1, header.next_offset)
            if header.is_control:
                continue
            for rec in B.decode_records(view, validate=False):
                if first <= rec.offset <= last:
                    count += 1
                    builder.append(rec.timestamp, rec.key, rec.value, [
                        *rec.headers,
                        *dead_letter_headers(topic, partition, rec.offset, delivery_count,
                                             group, reason),
                    ])
        if until == first and r.high_watermark > last:
            until = last + 1  # nothing stored there any more (compacted, deleted)
        if not count:  # no record in the range (control batches only): nothing to write
            done(E.NONE, until)
            return
        dlq_topic, p, leader = target
        self._produce(builder.build(), dlq_topic, p, leader, until, done)

    def _produce(self, batch: bytes, dlq_topic: str, p: int, leader: int, until: int,
                 done: Callable[[int, int], None]) -> None:
        def answered(response: P.ProducePartitionResponse) -> None:
            done(response.error_code, until)

        if leader == self.ctx.broker_id:
            ref = self.ctx.replicas.get((dlq_topic, p))
            if ref is None:
                done(E.NOT_LEADER_OR_FOLLOWER, until)
                return
            try:
                ref.tell(R.Append(batch, answered, acks=-1, timeout_ms=WRITE_TIMEOUT_MS))
            except pykka.ActorDeadError:
                done(E.NOT_LEADER_OR_FOLLOWER, until)
            return
        request = P.ProduceRequest(acks=-1, timeout_ms=WRITE_TIMEOUT_MS, topics=(
            P.ProduceTopic(name=dlq_topic, partitions=(
                P.ProducePartition(partition=p, records=batch),)),))
        future = self._send_to_broker(leader, request, WRITE_TIMEOUT_MS + 2000) if (
            self._send_to_broker is not None) else None
        if future is None:
            done(E.LEADER_NOT_AVAILABLE, until)
            return

        def produced(f) -> None:
            try:
                response = f.result()
                code = response.topics[0].partitions[0].error_code
            except Exception:  # noqa: BLE001 - timed out, unreachable, an ErrorResponse
                code = E.REQUEST_TIMED_OUT
            done(code, until)

        future.add_done_callback(produced)
