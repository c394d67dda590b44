"""The coordinator of a key on an internal topic (``__consumer_offsets``,
``__transaction_state``): FindCoordinator's answer, shared by the group and the transaction
coordinators (session thread)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    ``creatable(live broker count)`` and answer COORDINATOR_NOT_AVAILABLE (retry)."""
    image = ctx.image
    topic = image.topics.get(topic_name)
    if topic is None or not topic.partitions:
        if ctx.controller is not None:
            from . import controller as C

            live = max(1, len(image.live_brokers()))
            create = P.CreateTopicsRequest(topics=(creatable(live),))
            ctx.controller.tell(C.Admin(create, lambda _response: None))
        return P.FindCoordinatorResponse(error_code=E.COORDINATOR_NOT_AVAILABLE,
                                          error_message=f"creating {topic_name}")
    info = topic.partitions.get(partition_of(len(topic.partitions)))
    broker = image.brokers.get(info.leader) if info is not None else None
    if broker is None or broker.fenced:
        return P.FindCoordinatorResponse(error_code=E.COORDINATOR_NOT_AVAILABLE,
                                          error_message="the coordinator has no leader")
    return P.FindCoordinatorResponse(node_id=broker.broker_id, host=broker.host, port=broker.port)
