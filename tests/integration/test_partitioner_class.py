"""`partitioner.class` (issue #21): Kafka's round-robin partitioner and a custom one (a
callable, or module:attr from the working directory), against a real broker."""

from __future__ import annotations

import pytest

from rillet import Admin, NewTopic, Producer
from rillet.errors import ConfigError

pytestmark = [pytest.mark.integration]


def last_partition(key, all_partitions, available):
    return all_partitions[-1]


def test_round_robin_and_custom_partitioners(cluster, tmp_path, monkeypatch) -> None:
    servers = cluster.bootstrap_servers
    with Admin(bootstrap_servers=servers) as admin:
        admin.create_topics([NewTopic("spread", 3, 1)])
    rr = Producer({"bootstrap.servers": servers,
                   "partitioner.class": "org.apache.kafka.clients.producer.RoundRobinPartitioner"})
    got = [rr.send("spread", b"v", key=b"same").get(30).partition for _ in range(6)]
    rr.close()
    assert got == [0, 1, 2, 0, 1, 2]  # keyed or not, each record to the next partition
    custom = Producer(bootstrap_servers=servers, partitioner_class=last_partition)
    assert {custom.send("spread", b"v").get(30).partition for _ in range(3)} == {2}
    assert custom.send("spread", b"v", partition=0).get(30).partition == 0  # explicit wins
    custom.close()
    (tmp_path / "mypart.py").write_text("def first(key, all_, available):\n    return 0\n")
    monkeypatch.chdir(tmp_path)
    named = Producer({"bootstrap.servers": servers, "partitioner.class": "mypart:first"})
    assert named.send("spread", b"v", key=b"k").get(30).partition == 0
    named.close()
    with pytest.raises(ConfigError, match="cannot load"):
        Producer({"bootstrap.servers": servers, "partitioner.class": "nosuch:thing"})
