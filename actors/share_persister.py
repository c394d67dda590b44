"""Where a partition leader keeps its share-partition state: the share-state coordinator.

``SharePersister`` is the interface the share-partition manager (actors/share_partition.py)
is given (the same as share-state's ShareStateClient), so tests can inject a fake (such as
tests/integration/share_memory_broker.py). ``read(group_id, topic, partition, leader_epoch,
answer)`` and
``write(request, answer)`` call ``answer(response)`` exactly once, on any thread, with a
``ReadShareGroupStateResponse`` / ``WriteShareGroupStateResponse`` (an error code in it when
the coordinator could not be reached: never an exception).

``RemoteSharePersister`` is the real one: the coordinator of ``(group, topic, partition)`` is
the leader of ``__share_group_state`` partition ``partition_for(f"{group}:{topic}:{partition}",
n)`` (FindCoordinator key_type 2; actors/share_state.py serves it); the request goes over the
broker's inter-broker client. While ``__share_group_state`` does not exist it asks the
controller to create it (``share.coordinator.state.topic.*``) and answers
COORDINATOR_NOT_AVAILABLE, which the manager retries on its tick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from loguru import logger
from rillet.transport import protocol as P

from .group_coordinator import partition_for

E = P.ErrorCode
SHARE_STATE_TOPIC = "__share_group_state"
REQUEST_TIMEOUT_MS = 5_000


class SharePersister(Protocol):
    def read(
        self,
        group_id: str,
        topic: str,
        partition: int,
        leader_epoch: int,
        answer: Callable[[P.ReadShareGroupStateResponse], None],
    ) -> None: ...

    def write(
        self,
        request: P.WriteShareGroupStateRequest,
        answer: Callable[[P.WriteShareGroupStateResponse], None],
    ) -> None: ...


def state_key(group: str, topic: str, partition: int) -> str:
    """The FindCoordinator key (key_type 2) of a share-partition's state."""
    return f"{group}:{topic}:{partition}"


class RemoteSharePersister:
    """Thread-safe (no state of its own besides a creation flag)."""

    def __init__(
        self,
        image: Callable[[], object],
        address_of: Callable[[int], str | None],
        request: Callable[[str, object, int], object],
        create_topic: Callable[[], None] | None = None,
        timeout_ms: int = REQUEST_TIMEOUT_MS,
    ) -> None:
        self._image = image  # () -> MetadataImage
        self._address_of = address_of  # broker id -> its inter-broker host:port
        self._request = request  # ClientEndpoint.request(address, msg, timeout_ms) -> Future
        self._create_topic = create_topic
        self.timeout_ms = timeout_ms

    def coordinator_address(self, group: str, topic: str, partition: int) -> str | None:
        image = self._image()
        state_topic = image.topics.get(SHARE_STATE_TOPIC)
        if state_topic is None or not state_topic.partitions:
            if self._create_topic is not None:
                self._create_topic()
            return None
        n = len(state_topic.partitions)
        info = state_topic.partitions.get(partition_for(state_key(group, topic, partition), n))
        if info is None or info.leader < 0:
            return None
        return self._address_of(info.leader)

    def read(self, group_id, topic, partition, leader_epoch, answer) -> None:
        request = P.ReadShareGroupStateRequest(group_id=group_id, topic=topic,
                                               partition=partition, leader_epoch=leader_epoch)
        self._send(request, answer, P.ReadShareGroupStateResponse)

    def write(self, request, answer) -> None:
        self._send(request, answer, P.WriteShareGroupStateResponse)

    def _send(self, request, answer, response_type) -> None:
        address = self.coordinator_address(request.group_id, request.topic, request.partition)
        if address is None:
            answer(response_type(error_code=E.COORDINATOR_NOT_AVAILABLE,
                                 error_message="no share-state coordinator yet"))
            return

        def done(future) -> None:
            try:
                response = future.result()
            except Exception as e:  # noqa: BLE001 - timed out / unreachable: retriable
                response = response_type(error_code=E.COORDINATOR_NOT_AVAILABLE,
                                         error_message=f"share-state coordinator: {e}")
            if not isinstance(response, response_type):  # an ErrorResponse
                response = response_type(
                    error_code=getattr(response, "error_code", E.UNKNOWN_SERVER_ERROR)
                    or E.UNKNOWN_SERVER_ERROR,
                    error_message=getattr(response, "error_message", None),
                )
            answer(response)

        try:
            self._request(address, request, self.timeout_ms).add_done_callback(done)
        except Exception as e:  # noqa: BLE001 - the endpoint is closing
            logger.debug("{} not sent: {}", request.API, e)
            answer(response_type(error_code=E.COORDINATOR_NOT_AVAILABLE, error_message=str(e)))


def state_topic_creator(ctx, broker_configs: Mapping[str, str]) -> Callable[[], None]:
    """A ``create_topic`` for RemoteSharePersister: asks the controller (at most once a
    second) to create ``__share_group_state`` compacted, RF capped at the live brokers."""
    last = [0.0]
    lock = threading.Lock()

    def create() -> None:
        import time

        from . import controller as C

        with lock:
            if time.monotonic() - last[0] < 1.0 or ctx.controller is None:
                return
            last[0] = time.monotonic()
        live = max(1, len(ctx.image.live_brokers()))
        creatable = P.CreatableTopic(
            name=SHARE_STATE_TOPIC,
            num_partitions=int(broker_configs.get(
                "share.coordinator.state.topic.num.partitions", "50")),
            replication_factor=min(int(broker_configs.get(
                "share.coordinator.state.topic.replication.factor", "3")), live),
            configs={"cleanup.policy": "compact"},
        )
        ctx.controller.tell(C.Admin(P.CreateTopicsRequest(topics=(creatable,)), lambda _r: None))

    return create
