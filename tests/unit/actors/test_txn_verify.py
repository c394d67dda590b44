"""RemoteTxnVerifier (actors/txn_verify.py): which broker it asks and what a produce gets
for each answer, with a fake metadata image and a fake inter-broker client."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from rillet.actors.group_coordinator import partition_for
from rillet.actors.txn_verify import TRANSACTION_STATE_TOPIC, RemoteTxnVerifier, produce_error
from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
from rillet.transport import protocol as P
from rillet.transport.errors import ProtocolError, RequestTimedOutError

pytestmark = pytest.mark.timeout(10)
E = P.ErrorCode


def image(leaders: dict[int, int] | None) -> MetadataImage:
    if leaders is None:
        return MetadataImage()
    parts = {
        p: PartitionInfo(partition=p, replicas=(b,), isr=(b,), leader=b, leader_epoch=0)
        for p, b in leaders.items()
    }
    topic = TopicInfo(name=TRANSACTION_STATE_TOPIC, topic_id="x", partitions=parts)
    return MetadataImage(topics={TRANSACTION_STATE_TOPIC: topic})


class FakeClient:
    def __init__(self, outcome) -> None:
        self.outcome = outcome
        self.sent: list = []

    def request(self, address, msg, timeout_ms) -> Future:
        self.sent.append((address, msg))
        f: Future = Future()
        if isinstance(self.outcome, Exception):
            f.set_exception(self.outcome)
        else:
            f.set_result(self.outcome)
        return f


def verify(img, outcome, tid="app-1") -> tuple[int, FakeClient]:
    client = FakeClient(outcome)
    verifier = RemoteTxnVerifier(lambda: img, lambda b: f"host:{b}", client.request)
    got: list[int] = []
    verifier.verify(tid, 5, 2, "t", 3, got.append)
    assert len(got) == 1
    return got[0], client


def answer(code: int, top: int = E.NONE) -> P.AddPartitionsToTxnResponse:
    return P.AddPartitionsToTxnResponse(
        error_code=top,
        results=(
            P.TopicPartitionErrors(
                name="t", partitions=(P.PartitionError(partition=3, error_code=code),)
            ),
        ),
    )


def test_asks_the_leader_of_the_transactional_ids_partition() -> None:
    n = 4
    leaders = {p: 10 + p for p in range(n)}
    code, client = verify(image(leaders), answer(E.NONE))
    assert code == E.NONE
    ((address, msg),) = client.sent
    assert address == f"host:{10 + partition_for('app-1', n)}"
    assert msg == P.AddPartitionsToTxnRequest(
        transactional_id="app-1",
        producer_id=5,
        producer_epoch=2,
        topics=(P.TxnTopic(name="t", partitions=(3,)),),
        verify_only=True,
    )


def test_no_coordinator_is_retriable_and_sends_nothing() -> None:
    for img in (image(None), image({0: -1})):
        code, client = verify(img, answer(E.NONE))
        assert code == E.COORDINATOR_NOT_AVAILABLE and client.sent == []


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (answer(E.INVALID_TXN_STATE), E.INVALID_TXN_STATE),
        (answer(E.PRODUCER_FENCED, E.PRODUCER_FENCED), E.INVALID_PRODUCER_EPOCH),
        (answer(E.NONE, E.NOT_COORDINATOR), E.COORDINATOR_NOT_AVAILABLE),
        (answer(E.CONCURRENT_TRANSACTIONS), E.COORDINATOR_NOT_AVAILABLE),
        (answer(E.TRANSACTIONAL_ID_NOT_FOUND, E.TRANSACTIONAL_ID_NOT_FOUND), E.INVALID_TXN_STATE),
        (P.AddPartitionsToTxnResponse(), E.INVALID_TXN_STATE),  # our partition not named
        (RequestTimedOutError("h:1", "AddPartitionsToTxn", 5000), E.COORDINATOR_NOT_AVAILABLE),
        (ProtocolError(E.INVALID_REQUEST, "not handled"), E.COORDINATOR_NOT_AVAILABLE),
    ],
)
def test_answers_map_to_the_produce_error(outcome, expected) -> None:
    code, _ = verify(image({0: 1}), outcome)
    assert code == expected


def test_produce_error_table() -> None:
    assert produce_error(E.NONE) == E.NONE
    assert produce_error(E.COORDINATOR_LOAD_IN_PROGRESS) == E.COORDINATOR_NOT_AVAILABLE
    assert produce_error(E.INVALID_PRODUCER_ID_MAPPING) == E.INVALID_TXN_STATE
