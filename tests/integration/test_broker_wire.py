"""One real broker process over real sockets: the request types and their errors."""

from __future__ import annotations

import time

import pytest
from rillet.logstore.batch import BatchBuilder, records
from rillet.transport import protocol as P

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
E = P.ErrorCode


@pytest.fixture
def cluster(shared_cluster):
    """One broker for the whole module: every test uses topics of its own."""
    return shared_cluster


def batch(values, *, keys=None, timestamp=None, is_control=False) -> bytes:
    b = BatchBuilder(is_control=is_control)
    ts = timestamp if timestamp is not None else int(time.time() * 1000)
    for i, v in enumerate(values):
        b.append(ts, keys[i] if keys else None, v)
    return b.build()


def test_produce_fetch_list_offsets_round_trip(wire) -> None:
    assert wire.create_topic("orders", partitions=2).error_code == E.NONE
    first = wire.produce("orders", 0, batch([b"a", b"b", b"c"], keys=[b"k1", b"k2", None]))
    assert (first.error_code, first.base_offset) == (E.NONE, 0)
    ts = int(time.time() * 1000) + 60_000
    second = wire.produce("orders", 0, batch([b"d", b"e"], timestamp=ts))
    assert second.base_offset == 3
    assert wire.produce("orders", 1, batch([b"x"])).base_offset == 0

    got = wire.fetch_all("orders", 0)
    assert [(r.offset, r.key, r.value) for r in got] == [
        (0, b"k1", b"a"),
        (1, b"k2", b"b"),
        (2, None, b"c"),
        (3, None, b"d"),
        (4, None, b"e"),
    ]
    part = wire.fetch("orders", 0, 3)
    assert part.high_watermark == 5 and part.log_start_offset == 0
    assert [r.value for r in records(part.records)] == [b"d", b"e"]
    assert [r.value for r in wire.fetch_all("orders", 1)] == [b"x"]

    assert wire.list_offset("orders", 0, P.EARLIEST_TIMESTAMP).offset == 0
    assert wire.list_offset("orders", 0, P.LATEST_TIMESTAMP).offset == 5
    assert wire.list_offset("orders", 0, ts - 1).offset == 3
    assert wire.list_offset("orders", 0, ts + 1).offset == -1

    meta = wire.call(P.MetadataRequest(topics=("orders", "nope")))
    assert [b.port for b in meta.brokers] == [int(wire.address.rsplit(":", 1)[1])]
    orders, nope = meta.topics
    assert [(p.partition, p.leader, p.replicas, p.isr) for p in orders.partitions] == [
        (0, 1, (1,), (1,)),
        (1, 1, (1,), (1,)),
    ]
    assert nope.error_code == E.UNKNOWN_TOPIC_OR_PARTITION


def test_acks_zero_appends_without_reply(wire) -> None:
    wire.create_topic("fire")
    assert wire.produce("fire", 0, batch([b"1"]), acks=0) is None
    deadline = time.monotonic() + 10
    while wire.list_offset("fire", 0, P.LATEST_TIMESTAMP).offset != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_long_poll_returns_as_soon_as_data_arrives(wire) -> None:
    wire.create_topic("poll")
    started = time.monotonic()
    empty = wire.fetch("poll", 0, 0, max_wait_ms=300)
    assert empty.records == b"" and time.monotonic() - started >= 0.25

    future = wire.endpoint.request(
        wire.address,
        P.FetchRequest(
            max_wait_ms=20_000,
            topics=(
                P.FetchTopic(
                    name="poll", partitions=(P.FetchPartition(partition=0, fetch_offset=0),)
                ),
            ),
        ),
        30_000,
    )
    time.sleep(0.2)
    assert not future.done()
    produced_at = time.monotonic()
    wire.produce("poll", 0, batch([b"wake"]))
    part = future.result(10).topics[0].partitions[0]
    assert time.monotonic() - produced_at < 5  # far below max_wait_ms
    assert [r.value for r in records(part.records)] == [b"wake"]
    # min_bytes not reached: the broker waits max_wait_ms, then returns what it has.
    started = time.monotonic()
    part = wire.fetch("poll", 0, 0, max_wait_ms=400, min_bytes=1 << 20)
    assert time.monotonic() - started >= 0.35 and len(list(records(part.records))) == 1


def test_topic_admin_and_config_errors(wire) -> None:
    bad = wire.create_topic("bad", configs={"retention.mss": "1"})
    assert bad.error_code == E.INVALID_CONFIG and "did you mean 'retention.ms'" in bad.error_message
    bad = wire.create_topic("bad", configs={"cleanup.policy": "sometimes"})
    assert bad.error_code == E.INVALID_CONFIG
    assert wire.create_topic("bad name!").error_code == E.INVALID_TOPIC_EXCEPTION
    assert wire.create_topic("wide", rf=3).error_code == E.INVALID_REPLICATION_FACTOR
    assert wire.create_topic("t", partitions=1).error_code == E.NONE
    assert wire.create_topic("t").error_code == E.TOPIC_ALREADY_EXISTS

    grow = wire.call(
        P.CreatePartitionsRequest(topics=(P.CreatePartitionsTopic(name="t", count=3),))
    )
    assert grow.results[0].error_code == E.NONE
    shrink = wire.call(
        P.CreatePartitionsRequest(topics=(P.CreatePartitionsTopic(name="t", count=2),))
    )
    assert shrink.results[0].error_code == E.INVALID_PARTITIONS
    assert wire.produce("t", 2, batch([b"p2"])).error_code == E.NONE

    alter = wire.call(
        P.AlterConfigsRequest(
            resources=(
                P.AlterConfigsResource(
                    resource_type=P.ConfigResourceType.TOPIC,
                    resource_name="t",
                    configs=(P.AlterableConfig(name="retention.ms", value="12345"),),
                ),
            )
        )
    )
    assert alter.results[0].error_code == E.NONE
    typo = wire.call(
        P.AlterConfigsRequest(
            resources=(
                P.AlterConfigsResource(
                    resource_type=P.ConfigResourceType.TOPIC,
                    resource_name="t",
                    configs=(P.AlterableConfig(name="segment.byte", value="1"),),
                ),
            )
        )
    )
    assert typo.results[0].error_code == E.INVALID_CONFIG
    assert "segment.bytes" in typo.results[0].error_message
    described = wire.call(
        P.DescribeConfigsRequest(
            resources=(
                P.ConfigResource(resource_type=P.ConfigResourceType.TOPIC, resource_name="t"),
            )
        )
    )
    entries = {e.name: e for e in described.results[0].configs}
    assert entries["retention.ms"].value == "12345" and not entries["retention.ms"].is_default
    assert entries["cleanup.policy"].value == "delete" and entries["cleanup.policy"].is_default
    assert wire.produce("t", 0, batch([b"after-reconfigure"])).error_code == E.NONE

    gone = wire.call(P.DeleteTopicsRequest(topic_names=("t", "never")))
    assert [r.error_code for r in gone.results] == [E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION]
    assert wire.create_topic("t").error_code == E.NONE  # recreated empty
    assert wire.fetch_all("t", 0) == []


def test_partition_level_errors(wire) -> None:
    wire.create_topic("small", configs={"max.message.bytes": "2000"})
    assert wire.produce("nope", 0, batch([b"x"])).error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    assert wire.produce("small", 7, batch([b"x"])).error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    assert wire.fetch("nope", 0, 0).error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    assert wire.produce("small", 0, batch([b"x" * 5000])).error_code == E.MESSAGE_TOO_LARGE
    corrupt = bytearray(batch([b"payload"]))
    corrupt[-1] ^= 0xFF
    assert wire.produce("small", 0, bytes(corrupt)).error_code == E.CORRUPT_MESSAGE
    assert wire.produce("small", 0, b"\x00" * 10).error_code == E.CORRUPT_MESSAGE
    control = batch([b"c"], is_control=True)
    assert wire.produce("small", 0, control).error_code == E.INVALID_RECORD
    assert wire.fetch("small", 0, 99).error_code == E.OFFSET_OUT_OF_RANGE
    # nothing rejected was appended
    ok = wire.produce("small", 0, batch([b"fine"]))
    assert (ok.error_code, ok.base_offset) == (E.NONE, 0)
    bad_acks = wire.call(
        P.ProduceRequest(
            acks=2,
            topics=(
                P.ProduceTopic(
                    name="small",
                    partitions=(P.ProducePartition(partition=0, records=batch([b"y"])),),
                ),
            ),
        )
    )
    assert bad_acks.topics[0].partitions[0].error_code == E.INVALID_REQUIRED_ACKS


def test_duplicate_partitions_in_one_request_are_rejected(wire) -> None:
    from rillet.transport.errors import ProtocolError

    wire.create_topic("dup")
    part = P.ProducePartition(partition=0, records=batch([b"x"]))
    request = P.ProduceRequest(
        acks=1, topics=(P.ProduceTopic(name="dup", partitions=(part, part)),)
    )
    with pytest.raises(ProtocolError, match="more than once") as info:
        wire.call(request)
    assert info.value.code == E.INVALID_REQUEST and info.value.remote
    assert wire.fetch_all("dup", 0) == []
