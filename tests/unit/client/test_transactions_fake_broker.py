"""The transactional producer and the read_committed consumer over the real wire protocol,
against an in-memory broker with a minimal coordinator (faketxn.py). The same behaviour
against real brokers: tests/integration/test_transactions.py."""

from __future__ import annotations

import threading
import time

import pytest
from rillet.logstore import batch as rb
from rillet.transport.protocol import COORDINATOR_TRANSACTION, ErrorCode

from rillet import Consumer, Producer, TopicPartition
from rillet.errors import (
    CommitFailedError,
    IllegalStateError,
    InvalidTxnStateError,
    ProducerFencedError,
    RilletError,
    TransactionAbortableError,
    TransactionAbortedError,
    TransactionTimeoutError,
)
from rillet.records import ConsumerGroupMetadata
from tests.unit.client.faketxn import FakeTxnBroker

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def broker():
    b = FakeTxnBroker().start()
    b.create("t", 2)
    try:
        yield b
    finally:
        b.close()


def producer(broker, tid: str = "app-1", **kw) -> Producer:
    return Producer({"bootstrap.servers": broker.address, "transactional.id": tid,
                     "linger.ms": 1, "max.block.ms": 5000, **kw})


def read(broker, level: str, topic: str = "t", partitions=(0, 1)) -> tuple[list, Consumer]:
    """Every record a consumer at ``level`` gets from the start (until nothing comes)."""
    c = Consumer({"bootstrap.servers": broker.address, "auto.offset.reset": "earliest",
                  "isolation.level": level, "consumer.timeout.ms": 300})
    c.assign([TopicPartition(topic, i) for i in partitions])
    return [r.value for r in c], c


def test_a_committed_transaction_is_visible_to_read_committed(broker) -> None:
    with producer(broker) as p:
        p.init_transactions()
        p.begin_transaction()
        futures = [p.send("t", f"v{i}".encode(), partition=i % 2) for i in range(10)]
        p.commit_transaction()
        assert all(f.done() for f in futures)  # commit flushed first
    find = [r for r in broker.find_requests if r.key == "app-1"]
    assert find and find[0].key_type == COORDINATOR_TRANSACTION
    init = broker.init_requests[0]
    assert (init.transactional_id, init.transaction_timeout_ms) == ("app-1", 60000)
    # each partition was added before its first batch; EndTxn came after every answer
    api = broker.requests
    assert api.index("AddPartitionsToTxn") < api.index("Produce") < api.index("EndTxn")
    assert broker.end_requests[0].committed
    assert {(b.partition, b.transactional) for b in broker.produced} == {(0, True), (1, True)}
    values, c = read(broker, "read_committed")
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(10))
    # the position moved past the COMMIT markers (the last batch of each partition)
    assert c.position(TopicPartition("t", 0)) == broker.logs["t"][0].log_end_offset
    c.close()


def test_an_aborted_transaction_is_hidden_from_read_committed_only(broker) -> None:
    with producer(broker) as p:
        p.init_transactions()
        p.begin_transaction()
        p.send("t", b"aborted", partition=0)
        p.flush(5)
        p.abort_transaction()
        p.begin_transaction()
        p.send("t", b"committed", partition=0)
        p.commit_transaction()
    values, c = read(broker, "read_committed", partitions=(0,))
    assert values == [b"committed"]
    assert c.position(TopicPartition("t", 0)) == broker.logs["t"][0].log_end_offset
    c.close()
    values, c = read(broker, "read_uncommitted", partitions=(0,))
    assert values == [b"aborted", b"committed"]  # data of every transaction, never markers
    c.close()


def test_abort_drops_what_was_not_sent(broker) -> None:
    with producer(broker, **{"linger.ms": 60000, "batch.size": 1 << 20}) as p:
        p.init_transactions()
        p.begin_transaction()
        futures = [p.send("t", b"never", partition=1) for _ in range(3)]
        p.abort_transaction()
        for f in futures:
            with pytest.raises(TransactionAbortedError):
                f.get(1)
        assert "EndTxn" not in broker.requests  # nothing reached the coordinator
        assert broker.logs["t"][1].log_end_offset == 0
        p.begin_transaction()  # and the producer goes on
        p.send("t", b"after", partition=1)
        p.commit_transaction()
    assert read(broker, "read_committed", partitions=(1,))[0] == [b"after"]


def test_each_transaction_gets_the_new_epoch_and_sequences_from_zero(broker) -> None:
    with producer(broker) as p:
        p.init_transactions()
        for txn in range(3):
            p.begin_transaction()
            for i in range(4):
                p.send("t", f"{txn}-{i}".encode(), partition=0)
                p.flush(5)  # one batch each
            p.commit_transaction()
    # the fake refuses any sequence that does not start at 0 in its epoch, so all got in
    epochs = [(b.producer_epoch, b.base_sequence) for b in broker.produced]
    assert epochs == [(e, s) for e in range(3) for s in range(4)]
    assert [e.producer_epoch for e in broker.end_requests] == [0, 1, 2]


def test_a_second_instance_fences_the_first_for_good(broker) -> None:
    first = producer(broker)
    first.init_transactions()
    first.begin_transaction()
    first.send("t", b"zombie", partition=0)
    first.flush(5)
    with producer(broker) as second:
        second.init_transactions()  # aborts the first one's transaction, bumps the epoch
        with pytest.raises(ProducerFencedError):
            first.commit_transaction()
        # fatal: every later call says so
        for call in (first.begin_transaction, first.abort_transaction,
                     first.commit_transaction, lambda: first.send("t", b"x"),
                     lambda: first.send_offsets_to_transaction({}, "g")):
            with pytest.raises(ProducerFencedError):
                call()
        second.begin_transaction()
        second.send("t", b"fresh", partition=0)
        second.commit_transaction()
    first.close()
    assert read(broker, "read_committed", partitions=(0,))[0] == [b"fresh"]


def test_a_fenced_batch_makes_the_producer_fatal(broker) -> None:
    p = producer(broker)
    p.init_transactions()
    p.begin_transaction()
    p.send("t", b"a", partition=0)
    p.flush(5)
    with producer(broker) as other:
        other.init_transactions()
    future = p.send("t", b"late", partition=0)  # refused by the partition: an old epoch
    with pytest.raises(ProducerFencedError):
        future.get(5)
    with pytest.raises(ProducerFencedError):
        p.send("t", b"more", partition=0)
    p.close()


def test_an_abortable_error_allows_only_abort_then_goes_on(broker) -> None:
    with producer(broker, **{"delivery.timeout.ms": 2000}) as p:
        p.init_transactions()
        p.begin_transaction()
        broker.fail_next["Produce"] = [ErrorCode.INVALID_RECORD]  # not retriable
        with pytest.raises(RilletError, match="INVALID_RECORD"):
            p.send("t", b"bad", partition=0).get(5)
        with pytest.raises(TransactionAbortableError):
            p.commit_transaction()
        with pytest.raises(TransactionAbortableError):
            p.send("t", b"x", partition=0)
        with pytest.raises(TransactionAbortableError):
            p.begin_transaction()
        p.abort_transaction()
        p.begin_transaction()
        p.send("t", b"ok", partition=0)
        p.commit_transaction()
    assert read(broker, "read_committed", partitions=(0,))[0] == [b"ok"]


def test_concurrent_transactions_and_coordinator_moves_are_retried(broker) -> None:
    broker.fail_next["InitProducerId"] = [ErrorCode.COORDINATOR_LOAD_IN_PROGRESS]
    broker.fail_next["AddPartitionsToTxn"] = [ErrorCode.CONCURRENT_TRANSACTIONS,
                                              ErrorCode.NOT_COORDINATOR]
    broker.fail_next["EndTxn"] = [ErrorCode.CONCURRENT_TRANSACTIONS]
    with producer(broker) as p:
        p.init_transactions()
        p.begin_transaction()
        p.send("t", b"v", partition=0)
        p.commit_transaction()
    assert not any(broker.fail_next.values())  # every failure was answered and retried
    assert len([r for r in broker.find_requests if r.key == "app-1"]) >= 2  # found again
    assert read(broker, "read_committed", partitions=(0,))[0] == [b"v"]


def test_calls_out_of_order_are_refused_clearly(broker) -> None:
    with producer(broker) as p:
        with pytest.raises(InvalidTxnStateError, match="init_transactions"):
            p.begin_transaction()
        p.init_transactions()
        with pytest.raises(InvalidTxnStateError, match="begin_transaction"):
            p.send("t", b"x")
        with pytest.raises(InvalidTxnStateError):
            p.commit_transaction()
        p.begin_transaction()
        with pytest.raises(TypeError, match="group_metadata"):
            p.send_offsets_to_transaction({TopicPartition("t", 0): 1}, 42)
        with pytest.raises(ValueError, match="must be an int >= 0"):
            p.send_offsets_to_transaction({TopicPartition("t", 0): -1}, "g")
        assert "AddOffsetsToTxn" not in broker.requests  # refused before anything was sent
        p.commit_transaction()  # an empty transaction: nothing to end at the coordinator
        assert "EndTxn" not in broker.requests
    with Producer({"bootstrap.servers": broker.address}) as plain:
        with pytest.raises(IllegalStateError, match="transactional.id"):
            plain.init_transactions()


def test_offsets_commit_with_the_transaction_and_vanish_with_an_abort(broker) -> None:
    broker.create("in", 1)
    tp = TopicPartition("in", 0)
    c = Consumer({"bootstrap.servers": broker.address, "group.id": "g",
                  "isolation.level": "read_committed"})
    meta = c.group_metadata()
    assert meta == ConsumerGroupMetadata("g", -1, "", None)
    with producer(broker) as p:
        p.init_transactions()
        p.begin_transaction()
        p.send("t", b"out", partition=0)
        p.send_offsets_to_transaction({tp: 5}, meta)
        p.abort_transaction()
        assert c.committed([tp]) == {tp: None}
        p.begin_transaction()
        p.send_offsets_to_transaction({tp: 7}, "g")  # offsets alone: still a transaction
        # pending: a read_committed consumer's OffsetFetch waits (UNSTABLE_OFFSET_COMMIT)
        got = {}
        t = threading.Thread(target=lambda: got.update(c.committed([tp])))
        t.start()
        deadline = time.monotonic() + 10
        while broker.requests.count("OffsetFetch") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert t.is_alive() and broker.requests.count("OffsetFetch") >= 3
        p.commit_transaction()
        t.join(10)
    assert got == {tp: 7}
    commit = broker.offset_commits[-1]
    assert (commit.group_id, commit.generation_id, commit.member_id) == ("g", -1, "")
    c.close()


def test_offsets_of_a_stale_generation_make_the_transaction_abortable(broker) -> None:
    broker.generations["g"] = 4
    with producer(broker) as p:
        p.init_transactions()
        p.begin_transaction()
        with pytest.raises(CommitFailedError, match="ILLEGAL_GENERATION"):
            p.send_offsets_to_transaction({TopicPartition("t", 0): 1},
                                          ConsumerGroupMetadata("g", 3, "member-1"))
        with pytest.raises(TransactionAbortableError):
            p.commit_transaction()
        p.abort_transaction()


def test_a_fencing_after_the_transaction_timeout_says_timeout(broker) -> None:
    p = producer(broker, **{"transaction.timeout.ms": 100})
    p.init_transactions()
    p.begin_transaction()
    p.send("t", b"slow", partition=0)
    p.flush(5)
    started = time.monotonic()
    while time.monotonic() - started < 0.15:  # the transaction outlives its timeout
        time.sleep(0.01)
    broker.expire("app-1")  # what the coordinator does then
    with pytest.raises(TransactionTimeoutError):
        p.commit_transaction()
    with pytest.raises(ProducerFencedError):  # fatal, as any fencing
        p.begin_transaction()
    p.close()
    assert read(broker, "read_committed", partitions=(0,))[0] == []


def test_transactional_batches_carry_the_attribute_and_the_id(broker) -> None:
    with producer(broker, **{"compression.type": "gzip"}) as p:
        p.init_transactions()
        p.begin_transaction()
        p.send("t", b"z" * 100, partition=0)
        p.commit_transaction()
    data = broker.logs["t"][0].batches[0][1]
    header = rb.validate(data)
    assert header.is_transactional and not header.is_control and header.codec == 1
