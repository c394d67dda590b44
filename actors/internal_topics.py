"""The coordinator of a key on an internal topic (``__consumer_offsets``,
``__transaction_state``): FindCoordinator's answer, shared by the group and the transaction
coordinators (session thread), and the decoding of their logs on load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
from rillet.logstore.batch import decode_records, iter_batches
from rillet.transport import protocol as P

E = P.ErrorCode


def coordinator_of(
    ctx: Any,
    topic_name: str,
    partition_of: Callable[[int], int],
    creatable: Callable[[int], P.CreatableTopic],
) -> P.FindCoordinatorResponse:
    """The leader of ``topic_name``'s partition ``partition_of(partition count)``, from the
    metadata image. While the topic does not exist, ask the controller to create
    ``creatable(registered broker count)`` and answer COORDINATOR_NOT_AVAILABLE (retry).

    The replication factor is capped at the *registered* brokers, fenced ones included, not
    at the live ones: a cluster's first FindCoordinator often comes while a broker that has
    just started is still fenced, and a topic created then with one replica fewer (and its
    min ISR capped with it) loses its writes, and so its coordinator, when one broker dies
    (min ISR 2 of 2). The controller refuses a factor above the live brokers, so creation
    waits until all are unfenced, as Kafka's does until the cluster has the factor's
    brokers; a one-broker cluster still gets factor 1."""
    image = ctx.image
    topic = image.topics.get(topic_name)
    if topic is None or not topic.partitions:
        if ctx.controller is not None:
            from . import controller as C

            brokers = max(1, len(image.brokers))
            create = P.CreateTopicsRequest(topics=(creatable(brokers),))
            ctx.controller.tell(C.Admin(create, lambda _response: None))
        return P.FindCoordinatorResponse(error_code=E.COORDINATOR_NOT_AVAILABLE,
                                          error_message=f"creating {topic_name}")
    info = topic.partitions.get(partition_of(len(topic.partitions)))
    broker = image.brokers.get(info.leader) if info is not None else None
    if broker is None or broker.fenced:
        return P.FindCoordinatorResponse(error_code=E.COORDINATOR_NOT_AVAILABLE,
                                          error_message="the coordinator has no leader")
    return P.FindCoordinatorResponse(node_id=broker.broker_id, host=broker.host, port=broker.port)


def decode_log(data: bytes, from_offset: int, barrier_key: bytes,
               from_kv: Callable[[Any, Any], Any]) -> tuple[list, int, list[int]]:
    """The records in ``data`` (whole batches) at or after ``from_offset``, each CBOR key and
    value turned into a core record by ``from_kv``: ``(records, the offset after the last
    batch, offsets of unreadable records)``. Barriers are skipped; a foreign record is
    reported, never fatal."""
    out: list = []
    skipped: list[int] = []
    next_offset = from_offset
    for header, mv in iter_batches(data, validate=True):
        if header.next_offset <= from_offset:
            continue
        for rec in decode_records(mv, validate=False):
            if rec.offset < from_offset or rec.key == barrier_key:
                continue
            try:
                value = None if rec.value is None else cbor2.loads(rec.value)
                out.append(from_kv(cbor2.loads(rec.key), value))
            except Exception:  # noqa: BLE001 - anything malformed: skip it, keep loading
                skipped.append(rec.offset)
        next_offset = header.next_offset
    return out, next_offset, skipped
