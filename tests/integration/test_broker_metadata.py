"""The broker's metadata log and partition directories across restarts and crashes."""

from __future__ import annotations

import time

import pytest
from rillet.logstore.batch import BatchBuilder
from rillet.logstore.fs import FileSystem
from rillet.transport import protocol as P

from tests.support import logged_errors, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
E = P.ErrorCode


def batch(values) -> bytes:
    b = BatchBuilder()
    for v in values:
        b.append(int(time.time() * 1000), None, v)
    return b.build()


def test_torn_metadata_record_is_cut_and_the_rest_kept(cluster, wire_factory) -> None:
    wire = wire_factory(cluster)
    wire.create_topic("kept", partitions=3)
    cluster.kill(1)
    segment = sorted((cluster.broker_dir(1) / "__cluster_metadata").glob("*.log"))[-1]
    good = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(batch([b'[{"type":"DeleteTopic","name":"kept"}]'])[:60])  # a torn append
    cluster.start()
    wire = wire_factory(cluster)
    meta = wire.call(P.MetadataRequest(topics=("kept",)))
    assert meta.topics[0].error_code == E.NONE and len(meta.topics[0].partitions) == 3
    assert segment.stat().st_size >= good  # the torn tail was cut, then new entries came
    assert wire.create_topic("later").error_code == E.NONE  # the log accepts appends again


def test_recreated_topic_never_serves_old_records(cluster, wire_factory) -> None:
    wire = wire_factory(cluster)
    wire.create_topic("again")
    wire.produce("again", 0, batch([b"old-1", b"old-2"]))
    wire.call(P.DeleteTopicsRequest(topic_names=("again",)))
    assert wire.create_topic("again").error_code == E.NONE
    assert wire.fetch_all("again", 0) == []
    wire.produce("again", 0, batch([b"new"]))
    cluster.kill(1)
    cluster.start()
    wire = wire_factory(cluster)
    assert [r.value for r in wire.fetch_all("again", 0)] == [b"new"]
    leftovers = [p.name for p in cluster.broker_dir(1).iterdir() if p.name.endswith("-delete")]
    assert leftovers == []


def _create_until_free(wire, name: str, partitions: int = 1) -> None:
    """Create ``name`` once the deletion of the topic it had is applied (TOPIC_ALREADY_EXISTS
    until then; any other error fails)."""
    deadline = time.monotonic() + 30
    while (code := wire.create_topic(name, partitions=partitions).error_code) != E.NONE:
        assert code == E.TOPIC_ALREADY_EXISTS and time.monotonic() < deadline, code
        time.sleep(0.01)


def test_a_topic_deleted_and_created_again_while_starting_keeps_clean_directories(
        cluster, wire_factory) -> None:
    """Delete a topic of many partitions while its replicas are still starting, and create it
    again: every partition ends with one directory of the last topic, nothing is left to
    delete, no actor failed, and the last topic's records survive a kill -9 (a replica whose
    start came after its topic's deletion made the directory again, and with the name created
    meanwhile the two replicas removed each other's directory)."""
    wire = wire_factory(cluster)
    n = 300

    for _ in range(3):
        _create_until_free(wire, "churn", n)
        assert wire.call(P.DeleteTopicsRequest(topic_names=("churn",))).results[0].error_code == 0
    _create_until_free(wire, "churn", n)
    parts = tuple(P.ProducePartition(partition=i, records=batch([b"r%d" % i])) for i in range(n))
    answer = wire.call(P.ProduceRequest(acks=-1, topics=(P.ProduceTopic(name="churn",
                                                                        partitions=parts),)))
    assert {p.error_code for p in answer.topics[0].partitions} == {E.NONE}
    data = cluster.broker_dir(1)
    wait_until(lambda: not [d for d in data.iterdir() if d.name.endswith("-delete")], 30,
               "the deleted topics' directories to go")
    ids = {(d / "partition.metadata").read_text() for d in data.iterdir()
           if d.name.startswith("churn-")}
    assert len(ids) == 1, ids  # one topic's directories, none made again by an older replica
    assert logged_errors(cluster) == []
    cluster.kill(1)
    cluster.start()
    wire = wire_factory(cluster)
    for i in range(0, n, 37):
        assert [r.value for r in wire.fetch_all("churn", i)] == [b"r%d" % i]


def test_a_deleted_topics_high_watermark_is_not_kept_for_the_next_topic_of_its_name(
        cluster_factory, wire_factory) -> None:
    """The broker-wide high watermark checkpoint is keyed by topic name: the entry of a deleted
    topic stayed for a new topic of the same name until that one's high watermark moved, and
    a restart meanwhile started it from the old value (above what its ISR had)."""
    cluster = cluster_factory(configs={"replica.high.watermark.checkpoint.interval.ms": "100"})
    wire = wire_factory(cluster)
    checkpoint = cluster.broker_dir(1) / "replication-offset-checkpoint"

    def entry() -> list | None:
        entries = FileSystem().read_checkpoint(checkpoint) or []
        return next((list(e) for e in entries if list(e[:2]) == ["again", 0]), None)

    assert wire.create_topic("again").error_code == E.NONE
    assert wire.produce("again", 0, batch([b"a", b"b", b"c"])).error_code == E.NONE
    wait_until(lambda: entry() == ["again", 0, 3], 10, "the old topic's high watermark written")
    assert wire.call(P.DeleteTopicsRequest(topic_names=("again",))).results[0].error_code == 0
    _create_until_free(wire, "again")
    wait_until(lambda: entry() is None, 10, "the old topic's entry to leave the checkpoint")


def test_multi_partition_long_poll_waits_for_min_bytes_in_total(wire) -> None:
    wire.create_topic("two", partitions=2)
    request = P.FetchRequest(
        max_wait_ms=20_000,
        min_bytes=1,
        topics=(
            P.FetchTopic(
                name="two",
                partitions=(
                    P.FetchPartition(partition=0, fetch_offset=0),
                    P.FetchPartition(partition=1, fetch_offset=0),
                ),
            ),
        ),
    )
    future = wire.endpoint.request(wire.address, request, 30_000)
    time.sleep(0.2)
    assert not future.done()
    wire.produce("two", 1, batch([b"on-one"]))
    response = future.result(10)
    p0, p1 = response.topics[0].partitions
    assert (p0.partition, p0.records, p0.high_watermark) == (0, b"", 0)
    assert p1.partition == 1 and p1.high_watermark == 1 and p1.records
