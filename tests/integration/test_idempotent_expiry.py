"""An idempotent producer's batch that expires (delivery.timeout.ms) leaves a hole in its
partition's sequence numbers. Like Kafka's client (KIP-360), the producer then bumps the
partition's epoch and renumbers from 0, so later sends succeed: without that, every later
batch of the partition is refused with OUT_OF_ORDER_SEQUENCE_NUMBER until it expires too.
Real broker processes: the followers are stopped (min.insync.replicas=2) so acks=all batches
are refused until they expire, then the followers return."""

from __future__ import annotations

import pytest
from cluster_helpers import FAST, partition_meta, read_all, wait_until
from fault_run import create_topic

from rillet import Producer
from rillet.errors import DeliveryTimeoutError

pytestmark = [pytest.mark.integration]


@pytest.mark.slow  # a fault schedule of ~18 s (two followers stopped past delivery.timeout.ms)
@pytest.mark.timeout(120)
def test_sends_after_an_expired_batch_succeed_without_duplicates(cluster_factory):
    # one controller voter (broker 1): stopping both followers keeps a controller
    c = cluster_factory(3, FAST, start=False)
    c.voters = [1]
    c.start(timeout_s=30)
    create_topic(c, "x", 3)
    parts = [wait_until(lambda i=i: partition_meta(c, "x", i), 10, "metadata") for i in range(3)]
    meta = next((p for p in parts if p.leader == 1), None)
    assert meta is not None, "placement spreads leaders over the brokers"
    n, followers = meta.partition, [b for b in c.broker_ids if b != 1]
    producer = Producer(
        {
            "bootstrap.servers": c.bootstrap_servers,
            "acks": "all",
            "linger.ms": 0,
            "request.timeout.ms": 2000,
            "delivery.timeout.ms": 8000,  # the later sends must not expire on a busy machine
            "retry.backoff.max.ms": 200,
        }
    )
    try:
        assert producer._sender.idempotent
        first = [producer.send("x", f"before-{i}".encode(), partition=n) for i in range(3)]
        assert [f.get(20).offset for f in first] == [0, 1, 2]
        for b in followers:
            c.stop_broker(b)

        def shrunk():
            p = partition_meta(c, "x", n, [1])
            return p if p is not None and list(p.isr) == [1] else None

        wait_until(shrunk, 15, "the ISR to shrink to the leader")
        # refused (NOT_ENOUGH_REPLICAS) until delivery.timeout.ms: their sequences are never
        # written; several batches, so later ones were numbered after the hole too
        expired = []
        for i in range(6):
            expired.append(producer.send("x", f"expired-{i}".encode(), partition=n))
        for f in expired:
            with pytest.raises(DeliveryTimeoutError):
                f.get(30)
        assert producer._sender.unresolved, "the expired batches left the partition unresolved"
        for b in followers:
            c.start_broker(b)
        c.wait_ready(30, broker_ids=followers)

        def in_sync():
            p = partition_meta(c, "x", n, [1])
            return p if p is not None and sorted(p.isr) == [1, 2, 3] else None

        wait_until(in_sync, 30, "the followers to rejoin the ISR")
        # later sends to the partition succeed (a new epoch, sequences from 0), in order
        after = [producer.send("x", f"after-{i}".encode(), partition=n) for i in range(20)]
        assert [f.get(30).offset for f in after] == list(range(3, 23))
        assert producer._sender.epochs.get(("x", n), -1) > producer._sender.producer_epoch
        # the other partitions never noticed
        other = (n + 1) % 3
        assert producer.send("x", b"elsewhere", partition=other).get(30).offset == 0
    finally:
        try:
            producer.close(10)
        except Exception:  # noqa: BLE001 - a failed close must not hide the test's error
            pass
    values = read_all(c, 1, "x", n)
    expected = [f"before-{i}".encode() for i in range(3)] + [
        f"after-{i}".encode() for i in range(20)
    ]
    assert values == expected, values
