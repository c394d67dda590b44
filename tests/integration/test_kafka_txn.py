"""Kafka clients' transactions on rillet's KAFKA listener (actors/kafka_txn.py): a real
confluent-kafka (librdkafka) transactional producer against a real broker process, with
read_committed confluent consumers; consume-transform-produce with a consumer group, exactly
once. librdkafka keeps its producer epoch across transactions (transaction version 1), so
several transactions of one producer also prove the coordinator's and partitions' TV1 path.

aiokafka (asyncio, pure Python: its own protocol codecs, another implementation than
librdkafka's and kafka-python's), unchanged: admin create topic, producer acks=all, a
consumer group with subscribe and commit (a second member of the group starts at the
commit), and a transactional producer with read_committed. One broker for the module."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.integration.conftest import TEST_BROKER_CONFIGS

pytestmark = pytest.mark.timeout(120)
KAFKA_CONFIGS = {  # the shared `kafka` fixture (tests/integration/conftest.py)
    **TEST_BROKER_CONFIGS,
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
}
KAFKA_TOPICS = (("txn-out", 2), ("ctp-in", 2), ("ctp-out", 2))
QUIET = {"log_level": 3, "fetch.wait.max.ms": 50}  # short long-polls: a fast test


def txn_producer(bootstrap: str, tid: str):
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                     "transaction.timeout.ms": 30000, "linger.ms": 5, "log_level": 3})


def read_all(bootstrap: str, topic: str, isolation: str, expected: int,
             timeout_s: float = 40) -> list[bytes]:
    """Every value of ``topic`` (from the start) at ``isolation``, polling until
    ``expected`` records came and the end offsets were reached."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}",
                  "isolation.level": isolation, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **QUIET})
    try:
        meta = c.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p, 0) for p in sorted(meta.topics[topic].partitions)]
        c.assign(parts)
        got: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while True:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m.value())
            if len(got) >= expected:
                ends = {p.partition: c.get_watermark_offsets(p, cached=False)[1] for p in parts}
                pos = {p.partition: p.offset for p in c.position(parts)}
                if all(pos[k] >= v for k, v in ends.items()):
                    return got
            assert time.monotonic() < deadline, f"read {len(got)} of {expected}: {got}"
    finally:
        c.close()


def test_commit_and_abort_read_committed(kafka) -> None:
    _cluster, bootstrap = kafka
    p = txn_producer(bootstrap, "kt-1")
    p.init_transactions(30)
    rounds = [("a", True, 3), ("b", False, 2), ("c", True, 2)]
    for name, commit, n in rounds:  # several transactions of one producer id and epoch
        p.begin_transaction()
        for i in range(n):
            p.produce("txn-out", key=f"{name}{i}".encode(), value=f"{name}{i}".encode(),
                      partition=i % 2)
        if commit:
            p.commit_transaction(30)
        else:
            p.flush(10)  # the aborted records are in the log before the abort
            p.abort_transaction(30)
    committed = sorted(f"{n}{i}".encode() for n, c, k in rounds if c for i in range(k))
    everything = sorted(f"{n}{i}".encode() for n, _c, k in rounds for i in range(k))
    assert sorted(read_all(bootstrap, "txn-out", "read_committed", len(committed))) == committed
    assert sorted(read_all(bootstrap, "txn-out", "read_uncommitted",
                           len(everything))) == everything


def test_consume_transform_produce_exactly_once(kafka) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    _cluster, bootstrap = kafka
    plain = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for i in range(10):
        plain.produce("ctp-in", key=str(i).encode(), value=f"v{i}".encode(), partition=i % 2)
    assert plain.flush(30) == 0

    def member():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ctp",
                      "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "session.timeout.ms": 10000, **QUIET})
        c.subscribe(["ctp-in"])
        return c

    def run(consumer, producer, *, abort_first: bool) -> int:
        """Transform until 10 records went through in committed transactions; the first
        transaction is aborted when ``abort_first`` (its records and offsets vanish)."""
        done, aborted = 0, not abort_first
        deadline = time.monotonic() + 60
        while done < 10:
            assert time.monotonic() < deadline, f"only {done} records transformed"
            msgs = consumer.consume(3, 0.5)  # several transactions
            msgs = [m for m in msgs if m.error() is None]
            if not msgs:
                continue
            producer.begin_transaction()
            for m in msgs:
                producer.produce("ctp-out", key=m.key(), value=m.value().upper(),
                                 partition=m.partition())
            offsets = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            if not aborted:
                producer.abort_transaction(30)
                aborted = True
                # back to the group's committed offsets (none yet: the beginning)
                for tp in consumer.committed(consumer.assignment(), 10):
                    consumer.seek(TopicPartition(tp.topic, tp.partition,
                                                 tp.offset if tp.offset >= 0 else 0))
                continue
            producer.commit_transaction(30)
            done += len(msgs)
        return done

    consumer = member()
    producer = txn_producer(bootstrap, "ctp-app")
    producer.init_transactions(30)
    try:
        assert run(consumer, producer, abort_first=True) == 10
        committed = consumer.committed([TopicPartition("ctp-in", 0), TopicPartition("ctp-in", 1)], 10)
        assert {tp.partition: tp.offset for tp in committed} == {0: 5, 1: 5}
    finally:
        consumer.close()
    out = read_all(bootstrap, "ctp-out", "read_committed", 10)
    assert sorted(out) == sorted(f"V{i}".encode() for i in range(10))  # each exactly once
    # a restarted member starts at the transactional commit: its first record is a new one
    plain.produce("ctp-in", value=b"v10", partition=0)
    assert plain.flush(30) == 0
    again = member()
    try:
        deadline = time.monotonic() + 30
        while True:
            m = again.poll(0.2)
            if m is not None and m.error() is None:
                assert (m.partition(), m.offset(), m.value()) == (0, 5, b"v10")
                break
            assert time.monotonic() < deadline, "nothing consumed"
    finally:
        again.close()


# --------------------------------------------------------------------------- aiokafka


async def consume(consumer, n: int, timeout_s: float = 30) -> list:
    """``n`` records from ``consumer`` (a deadline, not a sleep)."""
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        assert time.monotonic() < deadline, f"got {len(got)} of {n}"
        batches = await consumer.getmany(timeout_ms=200, max_records=n - len(got))
        for records in batches.values():
            got.extend(records)
    return got


def test_aiokafka_admin_produce_acks_all_group_commit(kafka) -> None:
    _cluster, bootstrap = kafka
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def main() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("aio", num_partitions=2, replication_factor=1)])
            deadline = time.monotonic() + 30
            while "aio" not in await admin.list_topics():
                assert time.monotonic() < deadline, "topic not listed"
                await asyncio.sleep(0.1)  # polling a condition with a deadline
        finally:
            await admin.close()

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    enable_idempotence=True)
        await producer.start()
        try:
            sent = [await producer.send_and_wait("aio", f"v{i}".encode(), key=f"k{i}".encode(),
                                                 partition=i % 2, headers=[("h", b"x")])
                    for i in range(8)]
        finally:
            await producer.stop()
        assert sorted((m.partition, m.offset) for m in sent) == sorted(
            [(0, o) for o in range(4)] + [(1, o) for o in range(4)])

        first = AIOKafkaConsumer("aio", bootstrap_servers=bootstrap, group_id="aio-g",
                                 enable_auto_commit=False, auto_offset_reset="earliest")
        await first.start()
        try:
            got = await consume(first, 8)
            assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(8))
            assert all(r.headers == (("h", b"x"),) for r in got)
            await first.commit()
        finally:
            await first.stop()

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("aio", b"after", partition=0)
        finally:
            await producer.stop()
        second = AIOKafkaConsumer("aio", bootstrap_servers=bootstrap, group_id="aio-g",
                                  enable_auto_commit=False, auto_offset_reset="earliest")
        await second.start()
        try:  # starts at the group's commit: only the record produced after it
            assert [r.value for r in await consume(second, 1)] == [b"after"]
        finally:
            await second.stop()

    asyncio.run(main())


def test_aiokafka_transactions_read_committed(kafka) -> None:
    _cluster, bootstrap = kafka
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def main() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("aio-txn", num_partitions=1,
                                                replication_factor=1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="aio-t")
        await producer.start()
        try:
            for i, commit in enumerate((True, False, True)):
                try:
                    async with producer.transaction():
                        await producer.send_and_wait("aio-txn", f"t{i}".encode())
                        if not commit:
                            raise RuntimeError("abort")
                except RuntimeError:
                    pass
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("aio-txn", bootstrap_servers=bootstrap,
                                    isolation_level="read_committed",
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            assert [r.value for r in await consume(consumer, 2)] == [b"t0", b"t2"]
        finally:
            await consumer.stop()

    asyncio.run(main())
