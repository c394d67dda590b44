"""kafka-python forms a user reaches for first (issue #21): positional topics, committed(tp),
future.add_callback/add_errback, consumer.topics(), the *_consumer_groups admin calls and
NewTopic(topic_configs=), against a real broker."""

from __future__ import annotations

import threading

import pytest

from rillet import Admin, KafkaConsumer, KafkaProducer, NewTopic
from rillet.records import TopicPartition

pytestmark = [pytest.mark.integration]


def test_kafka_python_forms(cluster) -> None:
    servers = cluster.bootstrap_servers
    admin = Admin(bootstrap_servers=servers)
    admin.create_topics([NewTopic("parity", 1, 1, topic_configs={"retention.ms": "123456"})])
    assert admin.describe_configs(["parity"])["parity"]["retention.ms"].value == "123456"
    producer = KafkaProducer(bootstrap_servers=servers)
    delivered, failed = threading.Event(), []
    seen = []
    future = producer.send("parity", b"v").add_callback(
        lambda meta, tag: (seen.append((tag, meta.offset)), delivered.set()), "ok")
    future.add_errback(lambda error: failed.append(error))
    producer.flush()
    assert delivered.wait(30) and seen == [("ok", 0)] and failed == []
    producer.close()

    consumer = KafkaConsumer("parity", bootstrap_servers=servers, group_id="parity-g",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    assert consumer.subscription() == {"parity"}
    assert "parity" in consumer.topics()
    records = []
    for _ in range(100):
        for batch in consumer.poll(300).values():
            records += batch
        if records:
            break
    assert [r.value for r in records] == [b"v"]
    tp = TopicPartition("parity", 0)
    assert consumer.committed(tp) is None
    consumer.commit()
    assert consumer.committed(tp) == 1
    consumer.close()
    assert "parity-g" in [g.group_id for g in admin.list_consumer_groups()]
    assert "parity-g" in admin.describe_consumer_groups(["parity-g"])
    assert admin.delete_consumer_groups(["parity-g"]) == {"parity-g": None}
    admin.close()
