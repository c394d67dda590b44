"""Restarts and crashes of a real broker process; retention on its schedule."""

from __future__ import annotations

import time

import pytest
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
E = P.ErrorCode


def batch(values, keys=None, timestamp=None) -> bytes:
    b = BatchBuilder()
    ts = timestamp if timestamp is not None else int(time.time() * 1000)
    for i, v in enumerate(values):
        b.append(ts, keys[i] if keys else None, v)
    return b.build()


def _restart(cluster, wire_factory, *, crash: bool):
    if crash:
        cluster.kill(1)
    else:
        cluster.stop_broker(1)
    cluster.start()
    return wire_factory(cluster)


def test_kill_9_keeps_every_flushed_record(cluster, wire_factory) -> None:
    wire = wire_factory(cluster)
    # group-commit: a produce is acknowledged only after its fsync.
    assert wire.create_topic("durable", configs={"flush.mode": "group-commit"}).error_code == 0
    acked = []
    for i in range(50):
        values = [f"{i}-{j}".encode() for j in range(20)]
        part = wire.produce("durable", 0, batch(values))
        assert part.error_code == E.NONE
        acked.extend(values)
    cluster.kill(1)
    cluster.start()
    wire = wire_factory(cluster)
    got = wire.fetch_all("durable", 0)
    assert [r.value for r in got] == acked
    assert [r.offset for r in got] == list(range(len(acked)))
    # the log keeps going where it stopped
    assert wire.produce("durable", 0, batch([b"next"])).base_offset == len(acked)


def test_graceful_restart_keeps_topics_records_and_configs(cluster, wire_factory) -> None:
    wire = wire_factory(cluster)
    wire.create_topic("kept", partitions=2, configs={"retention.ms": "3600000"})
    for p in (0, 1):
        wire.produce("kept", p, batch([b"a", b"b"]))
    wire = _restart(cluster, wire_factory, crash=False)
    meta = wire.call(P.MetadataRequest(topics=("kept",)))
    assert len(meta.topics[0].partitions) == 2
    assert [r.value for r in wire.fetch_all("kept", 1)] == [b"a", b"b"]
    described = wire.call(
        P.DescribeConfigsRequest(
            resources=(
                P.ConfigResource(
                    resource_type=P.ConfigResourceType.TOPIC,
                    resource_name="kept",
                    config_names=("retention.ms",),
                ),
            )
        )
    )
    assert described.results[0].configs[0].value == "3600000"


def test_graceful_stop_writes_clean_shutdown_markers(cluster, wire_factory) -> None:
    wire = wire_factory(cluster)
    wire.create_topic("marked")
    wire.produce("marked", 0, batch([b"x"]))
    cluster.stop_broker(1)
    assert (cluster.broker_dir(1) / "marked-0" / "clean-shutdown").exists()
    assert "stopped cleanly" in (cluster.broker_dir(1) / "broker.log").read_text()


def test_retention_runs_on_its_schedule(cluster, wire_factory) -> None:
    wire = wire_factory(cluster)
    # tiny segments, 1 s retention: old segments go at the next check (every 500 ms here)
    wire.create_topic("short", configs={"segment.bytes": "1024", "retention.ms": "1000"})
    old = int(time.time() * 1000) - 60_000
    for i in range(10):
        wire.produce("short", 0, batch([bytes(300) + bytes([i])], timestamp=old))
    deadline = time.monotonic() + 20
    while wire.list_offset("short", 0, P.EARLIEST_TIMESTAMP).offset == 0:
        assert time.monotonic() < deadline, "retention never deleted a segment"
        time.sleep(0.1)
    start = wire.list_offset("short", 0, P.EARLIEST_TIMESTAMP).offset
    assert wire.fetch("short", 0, 0).error_code == E.OFFSET_OUT_OF_RANGE
    assert wire.fetch_all("short", 0, start)[0].offset == start


def test_compaction_runs_on_its_schedule(cluster, wire_factory) -> None:
    wire = wire_factory(cluster)
    wire.create_topic(
        "latest",
        configs={"cleanup.policy": "compact", "segment.bytes": "1024", "segment.ms": "100"},
    )
    for i in range(30):
        wire.produce("latest", 0, batch([b"v%d" % i + bytes(100)], keys=[b"k%d" % (i % 3)]))
    deadline = time.monotonic() + 20
    while True:
        got = wire.fetch_all("latest", 0)
        if len(got) < 30:
            break
        assert time.monotonic() < deadline, "compaction never removed a record"
        time.sleep(0.2)
    latest = {}
    for r in got:
        latest[r.key] = r.value
    assert latest[b"k0"].startswith(b"v27") and latest[b"k2"].startswith(b"v29")
