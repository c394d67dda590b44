"""A transaction end to end over the wire, from the partition's point of view: InitProducerId
(transactional) -> AddPartitionsToTxn -> transactional produce (verified by the leader with
the coordinator) -> EndTxn -> markers written by the coordinator -> a read_committed fetch
sees the records after a COMMIT and skips them after an ABORT."""

from __future__ import annotations

import time

import pytest
from rillet.logstore.batch import BatchBuilder, iter_batches, records
from rillet.transport import protocol as P

from tests.support import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
]
E = P.ErrorCode
TID = "e2e-app"
RETRY = (
    E.COORDINATOR_NOT_AVAILABLE,
    E.COORDINATOR_LOAD_IN_PROGRESS,
    E.NOT_COORDINATOR,
    E.CONCURRENT_TRANSACTIONS,
)


def retried(call, what: str, timeout_s: float = 30.0):
    """``call()`` until its answer's error is not retriable (polled, with a deadline)."""
    answers: list = []

    def done() -> bool:
        answers.append(call())
        return answers[-1].error_code not in RETRY

    wait_until(done, timeout_s, what)
    return answers[-1]


def txn_batch(pid: int, epoch: int, seq: int, values) -> bytes:
    b = BatchBuilder(
        producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=True
    )
    for v in values:
        b.append(int(time.time() * 1000), None, v)
    return b.build()


def fetch_committed(wire, offset: int = 0) -> P.FetchPartitionResponse:
    part = P.FetchPartition(partition=0, fetch_offset=offset)
    request = P.FetchRequest(
        max_wait_ms=0,
        isolation_level=P.READ_COMMITTED,
        topics=(P.FetchTopic(name="out", partitions=(part,)),),
    )
    return wire.call(request).topics[0].partitions[0]


def visible(response: P.FetchPartitionResponse) -> list[bytes]:
    """The read_committed consumer's filter: no control batches, no aborted data."""
    aborted = {(a.producer_id, a.first_offset) for a in response.aborted_transactions or ()}
    out = []
    for header, view in iter_batches(response.records):
        if header.is_control:
            continue
        if header.is_transactional and any(
            pid == header.producer_id and first <= header.base_offset for pid, first in aborted
        ):
            continue
        out.extend(r.value for r in records(bytes(view)))
    return out


def one_transaction(wire, pid: int, epoch: int, seq: int, values, commit: bool):
    """Add the partition, write ``values``, end; the EndTxn answer (the next pair)."""
    added = retried(
        lambda: wire.call(
            P.AddPartitionsToTxnRequest(
                transactional_id=TID,
                producer_id=pid,
                producer_epoch=epoch,
                topics=(P.TxnTopic(name="out", partitions=(0,)),),
            )
        ),
        "AddPartitionsToTxn",
    )
    assert added.error_code == E.NONE, added
    assert [p.error_code for t in added.results for p in t.partitions] == [E.NONE]
    part = P.ProducePartition(partition=0, records=txn_batch(pid, epoch, seq, values))
    produced = (
        wire.call(
            P.ProduceRequest(
                acks=-1,
                transactional_id=TID,
                topics=(P.ProduceTopic(name="out", partitions=(part,)),),
            )
        )
        .topics[0]
        .partitions[0]
    )
    assert produced.error_code == E.NONE, produced
    held = fetch_committed(wire)
    assert held.last_stable_offset <= produced.base_offset  # the open transaction holds it
    ended = retried(
        lambda: wire.call(
            P.EndTxnRequest(
                transactional_id=TID, producer_id=pid, producer_epoch=epoch, committed=commit
            )
        ),
        "EndTxn",
    )
    assert ended.error_code == E.NONE, ended
    return ended, produced.base_offset


def test_commit_is_visible_to_read_committed_and_abort_is_not(cluster, wire) -> None:
    assert wire.create_topic("out").error_code == E.NONE
    found = retried(
        lambda: wire.call(P.FindCoordinatorRequest(key=TID, key_type=P.COORDINATOR_TRANSACTION)),
        "FindCoordinator",
    )
    assert found.error_code == E.NONE and found.node_id == 1, found
    init = retried(
        lambda: wire.call(
            P.InitProducerIdRequest(transactional_id=TID, transaction_timeout_ms=60_000)
        ),
        "InitProducerId",
    )
    assert init.error_code == E.NONE and init.producer_id >= 0, init
    pid, epoch = init.producer_id, init.producer_epoch

    ended, _ = one_transaction(wire, pid, epoch, 0, [b"c1", b"c2"], commit=True)
    wait_until(lambda: visible(fetch_committed(wire)) == [b"c1", b"c2"], 30, "committed")
    pid, epoch = ended.producer_id, ended.producer_epoch  # bumped (KIP-890 part 2)

    _, first = one_transaction(wire, pid, epoch, 0, [b"a1"], commit=False)
    wait_until(
        lambda: (
            (r := fetch_committed(wire)).last_stable_offset == r.high_watermark
            and r.high_watermark > first + 1
        ),
        30,
        "the abort marker replicated",
    )
    response = fetch_committed(wire)
    assert P.AbortedTransaction(producer_id=pid, first_offset=first) in (
        response.aborted_transactions or ()
    )
    assert visible(response) == [b"c1", b"c2"]
