"""rillet._send_many (the streams sinks' batched writes) against a real broker: records of
one partition appended at once land in order with their keys, values, timestamps and
headers, in batches closed at batch.size (one future per batch, each acknowledged), and
inside a transaction they are committed or aborted with it."""

from __future__ import annotations

import time

import pytest

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet._send_many import send_many
from rillet.errors import UnknownTopicOrPartitionError


@pytest.fixture
def cluster(shared_cluster):
    return shared_cluster


def _read(bootstrap: str, tp: TopicPartition, n: int, **config) -> list:
    out: list = []
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
                   **config}) as c:
        c.assign([tp])
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            for records in c.poll(200).values():
                out.extend(records)
    return out


def test_send_many_keeps_order_and_splits_batches(cluster) -> None:
    b = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": b}) as admin:
        admin.create_topics([NewTopic("many", 2)])
    keys = [f"k{i}".encode() for i in range(300)]
    values = [b"v" * 40 + str(i).encode() for i in range(300)]
    timestamps = [1_700_000_000_000 + i for i in range(300)]
    headers = [(("n", str(i).encode()),) if i % 3 == 0 else () for i in range(300)]
    with Producer({"bootstrap.servers": b, "batch.size": 4096, "linger.ms": 5}) as p:
        with pytest.raises(UnknownTopicOrPartitionError):
            send_many(p, "many", 2, keys[:1], values[:1], timestamps[:1])
        futures = send_many(p, "many", 1, keys, values, timestamps, headers)
        p.flush(30)
        assert len(futures) > 2  # closed at batch.size, as send() would
        metas = [f.get(30) for f in futures]
    assert metas[-1].offset == 299 and all(m.partition == 1 for m in metas)
    got = _read(b, TopicPartition("many", 1), 300)
    assert [(r.key, r.value, r.timestamp) for r in got] == list(zip(keys, values, timestamps,
                                                                     strict=True))
    assert [tuple(r.headers or ()) for r in got] == [tuple(h) for h in headers]


def test_send_many_belongs_to_the_transaction(cluster) -> None:
    b = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": b}) as admin:
        admin.create_topics([NewTopic("many-txn", 1)])
    tp = TopicPartition("many-txn", 0)
    with Producer({"bootstrap.servers": b, "transactional.id": "many-txn"}) as p:
        p.init_transactions()
        p.begin_transaction()
        send_many(p, "many-txn", 0, [b"a"] * 3, [b"aborted"] * 3, [1, 2, 3])
        p.abort_transaction()
        p.begin_transaction()
        send_many(p, "many-txn", 0, [b"b"] * 2, [b"x", b"y"], [4, 5])
        p.commit_transaction()
    got = _read(b, tp, 2, **{"isolation.level": "read_committed"})
    assert [r.value for r in got] == [b"x", b"y"]
