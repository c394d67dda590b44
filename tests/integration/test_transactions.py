"""Transactions end to end: the rillet client against real broker processes (issue #14).

Commit makes a transaction's records visible to read_committed consumers, abort hides them
(read_uncommitted sees both); a second producer with the same transactional.id fences the
first; consume-transform-produce commits its output and its input offsets atomically (abort:
neither); a transaction that outlives transaction.timeout.ms is aborted by the coordinator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet.errors import ProducerFencedError
from tests.support import FAST_REPLICATION_CONFIGS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
]

ROOT = Path(__file__).resolve().parents[2]

# the coordinator checks for timed-out transactions this often (Kafka's default: 10 s)
CONFIGS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"}


@pytest.fixture
def bootstrap(cluster_factory) -> str:
    cluster = cluster_factory(1, CONFIGS)
    with Admin(bootstrap_servers=cluster.bootstrap_servers) as admin:
        admin.create_topics([NewTopic("in", num_partitions=1, replication_factor=1),
                             NewTopic("out", num_partitions=1, replication_factor=1)])
    return cluster.bootstrap_servers


def _producer(bootstrap: str, tid: str, **kw) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 1,
                     **kw})


def _log_end(bootstrap: str, topic: str) -> int:
    tp = TopicPartition(topic, 0)
    with Consumer({"bootstrap.servers": bootstrap}) as c:  # read_uncommitted: the log end
        return c.end_offsets([tp])[tp]


def _read(bootstrap: str, topic: str, level: str, timeout_s: float = 20) -> list[bytes]:
    """The values of ``topic``-0 a consumer at ``level`` sees from the start: until its
    position reaches the log end (past the last marker), so nothing is still on its way."""
    tp = TopicPartition(topic, 0)
    end = _log_end(bootstrap, topic)
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
                   "isolation.level": level}) as c:
        c.assign([tp])
        out: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while c.position(tp) < end:
            assert time.monotonic() < deadline, f"at {c.position(tp)} of {end}: {out}"
            for records in c.poll(200).values():
                out.extend(r.value for r in records)
        return out


def test_commit_is_visible_to_read_committed_and_abort_is_not(bootstrap) -> None:
    with _producer(bootstrap, "t-commit") as p:
        p.init_transactions()
        p.begin_transaction()
        p.send("out", b"committed-1")
        p.send("out", b"committed-2")
        p.commit_transaction()
        p.begin_transaction()
        p.send("out", b"aborted")
        p.flush(10)  # written, then aborted: the marker hides it
        p.abort_transaction()
    assert _read(bootstrap, "out", "read_committed") == [b"committed-1", b"committed-2"]
    assert _read(bootstrap, "out", "read_uncommitted") == [
        b"committed-1", b"committed-2", b"aborted"]


def test_an_open_transaction_holds_read_committed_consumers_back(bootstrap) -> None:
    with _producer(bootstrap, "t-open") as p:
        p.init_transactions()
        p.begin_transaction()
        p.send("out", b"pending")
        p.flush(10)
        assert _read(bootstrap, "out", "read_uncommitted") == [b"pending"]
        tp = TopicPartition("out", 0)
        with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
                       "isolation.level": "read_committed"}) as c:
            c.assign([tp])
            assert c.poll(500) == {}  # below the LSO there is nothing yet
            p.commit_transaction()
            got: list[bytes] = []
            deadline = time.monotonic() + 10
            while not got:
                assert time.monotonic() < deadline
                got = [r.value for rs in c.poll(200).values() for r in rs]
        assert got == [b"pending"]


def test_a_second_producer_fences_the_first(bootstrap) -> None:
    first = _producer(bootstrap, "t-fence")
    first.init_transactions()
    first.begin_transaction()
    first.send("out", b"zombie")
    first.flush(10)
    with _producer(bootstrap, "t-fence") as second:
        second.init_transactions()  # bumps the epoch, aborts the first one's transaction
        with pytest.raises(ProducerFencedError):
            first.send("out", b"late").get(10)
        with pytest.raises(ProducerFencedError):
            first.commit_transaction()
        second.begin_transaction()
        second.send("out", b"fresh")
        second.commit_transaction()
    first.close()
    assert _read(bootstrap, "out", "read_committed") == [b"fresh"]


def _transform_once(bootstrap: str, commit: bool) -> None:
    """Read ``in`` as group g, write the upper-cased values to ``out`` and the input offsets
    in one transaction; commit or abort it."""
    with Consumer({"bootstrap.servers": bootstrap, "group.id": "g",
                   "auto.offset.reset": "earliest", "enable.auto.commit": False,
                   "isolation.level": "read_committed"}) as consumer, \
            _producer(bootstrap, "t-eos") as producer:
        consumer.subscribe(["in"])
        producer.init_transactions()
        records = []
        deadline = time.monotonic() + 20
        while len(records) < 3:
            assert time.monotonic() < deadline, records
            for rs in consumer.poll(200).values():
                records.extend(rs)
        producer.begin_transaction()
        for r in records:
            producer.send("out", r.value.upper(), key=r.key)
        offsets = {TopicPartition("in", 0): records[-1].offset + 1}
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()


def test_consume_transform_produce_commits_output_and_offsets_atomically(bootstrap) -> None:
    with Producer({"bootstrap.servers": bootstrap}) as plain:
        for v in (b"a", b"b", b"c"):
            plain.send("in", v)
    tp = TopicPartition("in", 0)

    _transform_once(bootstrap, commit=False)  # abort: neither output nor offsets
    assert _read(bootstrap, "out", "read_committed") == []
    with Consumer({"bootstrap.servers": bootstrap, "group.id": "g",
                   "isolation.level": "read_committed"}) as c:
        assert c.committed([tp]) == {tp: None}

    _transform_once(bootstrap, commit=True)  # commit: both
    assert _read(bootstrap, "out", "read_committed") == [b"A", b"B", b"C"]
    with Consumer({"bootstrap.servers": bootstrap, "group.id": "g",
                   "isolation.level": "read_committed"}) as c:
        assert c.committed([tp]) == {tp: 3}


def test_the_coordinator_aborts_a_transaction_that_outlives_its_timeout(bootstrap) -> None:
    p = _producer(bootstrap, "t-timeout", **{"transaction.timeout.ms": 1000})
    p.init_transactions()
    p.begin_transaction()
    p.send("out", b"abandoned")
    p.flush(10)
    # no commit: the coordinator aborts it after 1 s; the LSO then moves past its marker
    # and a read_committed consumer reaches the log end without seeing the record
    assert _read(bootstrap, "out", "read_committed", timeout_s=30) == []
    assert _read(bootstrap, "out", "read_uncommitted") == [b"abandoned"]
    with pytest.raises(ProducerFencedError):  # TransactionTimeoutError, a ProducerFencedError
        p.commit_transaction()
    p.close()


@pytest.mark.timeout(120)
def test_a_commit_survives_the_death_of_the_coordinators_broker(cluster_factory) -> None:
    cluster = cluster_factory(3, {**FAST_REPLICATION_CONFIGS, **CONFIGS})
    bootstrap = cluster.bootstrap_servers
    with Admin(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic("out", num_partitions=1, replication_factor=3)])
    with _producer(bootstrap, "t-failover", **{"max.block.ms": 60000}) as p:
        p.init_transactions()
        p.begin_transaction()
        p.send("out", b"before")
        p.commit_transaction()
        coordinator = p._txn.locator.address(10)
        victim = next(b for b in cluster.broker_ids if cluster.address(b) == coordinator)
        p.begin_transaction()
        p.send("out", b"during")
        p.flush(30)
        cluster.kill(victim)  # the client finds the new coordinator (NOT_COORDINATOR, ...)
        p.commit_transaction()
        assert p._txn.locator.address(10) != coordinator  # it moved, and the client followed
        p.begin_transaction()
        p.send("out", b"after")
        p.commit_transaction()
    live = ",".join(cluster.address(b) for b in cluster.broker_ids if b != victim)
    assert _read(live, "out", "read_committed", timeout_s=30) == [b"before", b"during", b"after"]


def test_the_exactly_once_example(cluster) -> None:
    env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "transactions.py")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # the failed transaction went back to where the first one committed
    first = next(line for line in lines if line.startswith("transaction 1:"))
    committed = first.rsplit(" ", 1)[1]
    assert f"transaction 2: simulated failure, aborted; back to offset {committed}" in lines
    assert "eos-output (read_committed): 10 records, 10 distinct" in lines
    results = sorted(line.strip() for line in lines if line.startswith("  "))
    assert results == sorted(f"customer-{i % 3}: ORDER {i}" for i in range(10))
