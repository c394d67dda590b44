"""Real Kafka clients (kafka-python, confluent-kafka) against rillet's KAFKA listener."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rillet.admin import Admin, NewTopic


def kafka_bootstrap(cluster, timeout_s: float = 60.0) -> str:
    """Every broker's advertised KAFKA address (written by the broker at start)."""
    deadline = time.monotonic() + timeout_s
    out = []
    for broker_id in cluster.broker_ids:
        path = Path(cluster.broker_dir(broker_id)) / "kafka-listener"
        while not path.exists():
            assert time.monotonic() < deadline, f"broker {broker_id} wrote no {path.name}"
            time.sleep(0.05)
        out.append(path.read_text().strip())
    return ",".join(out)


@pytest.fixture
def two_brokers(cluster_factory):
    cluster = cluster_factory(brokers=2, configs={"listeners": "KAFKA://127.0.0.1:0"})
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers})
    try:
        admin.create_topics([NewTopic("kmeta", 4, 2)])
    finally:
        admin.close()
    return cluster


@pytest.mark.timeout(180)
def test_metadata_lists_every_broker_at_its_kafka_address(two_brokers) -> None:
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaAdminClient

    bootstrap = kafka_bootstrap(two_brokers)
    addresses = set(bootstrap.split(","))
    first = bootstrap.split(",")[0]  # one address is enough: Metadata names the others
    deadline = time.monotonic() + 60
    while True:
        md = AdminClient({"bootstrap.servers": first}).list_topics(timeout=30)
        seen = {f"{b.host}:{b.port}" for b in md.brokers.values()}
        ready = seen == addresses and "kmeta" in md.topics and all(
            p.leader >= 0 for p in md.topics["kmeta"].partitions.values())
        if ready or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert seen == addresses
    assert set(md.brokers) == set(two_brokers.broker_ids)
    parts = md.topics["kmeta"].partitions
    assert sorted(parts) == [0, 1, 2, 3]
    assert all(len(p.replicas) == 2 and p.leader in p.replicas for p in parts.values())
    # kafka-python negotiates its own versions (ApiVersions, then Metadata)
    admin = KafkaAdminClient(bootstrap_servers=first, request_timeout_ms=30000)
    try:
        # it asks any broker it knows, and the second one's image may not have kmeta yet
        deadline = time.monotonic() + 30
        while "kmeta" not in admin.list_topics():
            assert time.monotonic() < deadline, "kafka-python never listed kmeta"
            time.sleep(0.2)
        described = admin.describe_cluster()
        ids = {b["broker_id"] for b in described["brokers"]}
        assert ids == set(two_brokers.broker_ids), described
    finally:
        admin.close()
