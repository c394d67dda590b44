"""Transaction verification for partition leaders (KIP-890 part 1; docs/transactions.md,
"Partition wiring").

Before a partition leader writes the first transactional batch of ``(producer_id,
producer_epoch)`` it asks the transactional id's coordinator whether the partition is part
of that producer's ongoing transaction: ``AddPartitionsToTxnRequest(verify_only=True)`` to the
leader of ``__transaction_state`` partition ``partition_for(transactional_id, n)``. Without
that check a late or stray transactional write could open a transaction the coordinator never
ends (a *hanging transaction*: read_committed consumers would stop at it forever).

``TxnVerifier`` is the interface the partition actor is given (tests inject a fake):
``verify(transactional_id, producer_id, producer_epoch, topic, partition, answer)`` calls
``answer(error_code)`` exactly once, on any thread, never inside ``verify`` while the caller
must not block. ``RemoteTxnVerifier`` is the real one: it sends the request over the broker's
inter-broker client and maps the coordinator's answer to the error the producer gets, as
Kafka's ``AddPartitionsToTxnManager`` does:

| coordinator's answer | the produce gets |
|---|---|
| NONE | (appended) |
| INVALID_TXN_STATE (partition not in the transaction) | INVALID_TXN_STATE |
| PRODUCER_FENCED, INVALID_PRODUCER_EPOCH | INVALID_PRODUCER_EPOCH |
| no coordinator (no ``__transaction_state``, no leader), NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS, timeout, unreachable, an error response | COORDINATOR_NOT_AVAILABLE (retriable) |
| anything else (TRANSACTIONAL_ID_NOT_FOUND, INVALID_PRODUCER_ID_MAPPING, ...) | INVALID_TXN_STATE |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from loguru import logger
from rillet.transport import protocol as P

from .group_coordinator import partition_for

E = P.ErrorCode
TRANSACTION_STATE_TOPIC = "__transaction_state"
VERIFY_TIMEOUT_MS = 5_000

_RETRIABLE = frozenset(
    {
        E.NOT_COORDINATOR,
        E.COORDINATOR_NOT_AVAILABLE,
        E.COORDINATOR_LOAD_IN_PROGRESS,
        E.CONCURRENT_TRANSACTIONS,
        E.REQUEST_TIMED_OUT,
    }
)


class TxnVerifier(Protocol):
    def verify(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        topic: str,
        partition: int,
        answer: Callable[[int], None],
    ) -> None:
        """Ask whether ``topic``-``partition`` is in the ongoing transaction of
        ``producer_id`` at ``producer_epoch``; ``answer(error_code)`` once (any thread)."""


def produce_error(code: int) -> int:
    """The error a produce gets for the coordinator's verification answer ``code``."""
    if code in (E.NONE, E.INVALID_TXN_STATE, E.INVALID_PRODUCER_EPOCH):
        return code
    if code == E.PRODUCER_FENCED:
        return E.INVALID_PRODUCER_EPOCH
    if code in _RETRIABLE:
        return E.COORDINATOR_NOT_AVAILABLE
    return E.INVALID_TXN_STATE


def _answer_code(response: object, topic: str, partition: int) -> int:
    """The coordinator's code for our partition in an AddPartitionsToTxn answer."""
    if not isinstance(response, P.AddPartitionsToTxnResponse):
        return E.COORDINATOR_NOT_AVAILABLE  # an ErrorResponse: not served there (yet)
    if response.error_code != E.NONE:
        return response.error_code
    for t in response.results:
        if t.name == topic:
            for p in t.partitions:
                if p.partition == partition:
                    return p.error_code
    return E.INVALID_TXN_STATE  # the coordinator did not speak of it: not verified


class RemoteTxnVerifier:
    """The real verifier of one broker: finds the transactional id's coordinator in the
    current metadata image and asks it over the inter-broker client. Thread-safe (it keeps
    no state; ``image()`` and ``address_of()`` are read-mostly)."""

    def __init__(
        self,
        image: Callable[[], object],
        address_of: Callable[[int], str | None],
        request: Callable[[str, object, int], object],
        timeout_ms: int = VERIFY_TIMEOUT_MS,
    ) -> None:
        self._image = image  # () -> MetadataImage
        self._address_of = address_of  # broker id -> its inter-broker host:port
        self._request = request  # ClientEndpoint.request(address, msg, timeout_ms) -> Future
        self.timeout_ms = timeout_ms

    def coordinator_address(self, transactional_id: str) -> str | None:
        image = self._image()
        topic = image.topics.get(TRANSACTION_STATE_TOPIC)
        if topic is None or not topic.partitions:
            return None
        info = topic.partitions.get(partition_for(transactional_id, len(topic.partitions)))
        if info is None or info.leader < 0:
            return None
        return self._address_of(info.leader)

    def verify(self, transactional_id, producer_id, producer_epoch, topic, partition, answer):
        address = self.coordinator_address(transactional_id)
        if address is None:
            answer(E.COORDINATOR_NOT_AVAILABLE)
            return
        request = P.AddPartitionsToTxnRequest(
            transactional_id=transactional_id,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            topics=(P.TxnTopic(name=topic, partitions=(partition,)),),
            verify_only=True,
        )

        def done(future) -> None:
            try:
                code = _answer_code(future.result(), topic, partition)
            except Exception as e:  # noqa: BLE001 - timed out / unreachable: retriable
                logger.debug("transaction verification for {!r} failed: {}", transactional_id, e)
                code = E.COORDINATOR_NOT_AVAILABLE
            answer(produce_error(code))

        try:
            self._request(address, request, self.timeout_ms).add_done_callback(done)
        except Exception as e:  # noqa: BLE001 - the endpoint is closing
            logger.debug("transaction verification not sent: {}", e)
            answer(E.COORDINATOR_NOT_AVAILABLE)
