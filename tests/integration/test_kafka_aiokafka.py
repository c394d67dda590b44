"""aiokafka (asyncio, pure Python: its own protocol codecs, another implementation than
librdkafka's and kafka-python's) against rillet's KAFKA listener, unchanged: admin create
topic, producer acks=all, a consumer group with subscribe and commit (a second member of the
group starts at the commit), and a transactional producer with read_committed. One broker
for the module."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from rillet.launcher import LocalCluster
from tests.integration.conftest import TEST_BROKER_CONFIGS
from tests.support import wait_until

pytestmark = pytest.mark.timeout(120)
CONFIGS = {
    **TEST_BROKER_CONFIGS,
    "listeners": "KAFKA://127.0.0.1:0",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
}


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory):
    """The broker's KAFKA address."""
    cluster = LocalCluster(tmp_path_factory.mktemp("aiokafka"), 1, CONFIGS)
    try:
        cluster.start(timeout_s=30)
        path = Path(cluster.broker_dir(cluster.broker_ids[0])) / "kafka-listener"
        wait_until(path.exists, timeout_s=30, what="the KAFKA listener's address")
        yield path.read_text().strip()
    finally:
        cluster.stop(timeout_s=10)


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


def test_admin_produce_acks_all_group_commit(bootstrap) -> None:
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


def test_transactions_read_committed(bootstrap) -> None:
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
