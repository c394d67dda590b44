"""Talking to real broker processes in tests: raw requests, metadata, produce and read.

Shared by the integration tests (import from here, not from another test module)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rillet.logstore.batch import BatchBuilder, records
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

from tests.support import FAST_REPLICATION_CONFIGS as FAST
from tests.support import wait_until

__all__ = [
    "FAST",
    "batch",
    "call",
    "fetch_raw",
    "partition_meta",
    "produce",
    "produce_once_led",
    "rate_beside_trickle",
    "read_all",
    "wait_until",
]


def call(cluster, broker_id: int, request, timeout_ms: int = 3000):
    with ClientEndpoint() as endpoint:
        try:
            return endpoint.request(cluster.address(broker_id), request, timeout_ms).result(
                timeout_ms / 1000 + 2
            )
        except Exception:  # noqa: BLE001 - down or busy: the caller polls again
            return None


def partition_meta(cluster, topic: str, partition: int, via: list[int] | None = None):
    for b in via or cluster.broker_ids:
        if cluster.pid(b) is None:
            continue
        m = call(cluster, b, P.MetadataRequest(topics=(topic,)))
        if m is not None and m.topics and m.topics[0].partitions:
            return {p.partition: p for p in m.topics[0].partitions}[partition]
    return None


def batch(values) -> bytes:
    b = BatchBuilder()
    ts = int(time.time() * 1000)
    for v in values:
        b.append(ts, None, v)
    return b.build()


def produce(cluster, broker_id: int, topic: str, partition: int, values, acks: int = -1):
    req = P.ProduceRequest(
        acks=acks,
        timeout_ms=5000,
        topics=(
            P.ProduceTopic(
                name=topic,
                partitions=(P.ProducePartition(partition=partition, records=batch(values)),),
            ),
        ),
    )
    r = call(cluster, broker_id, req, 8000)
    return None if r is None else r.topics[0].partitions[0]


def produce_once_led(cluster, broker_id: int, topic: str, partition: int, values,
                     acks: int = -1, timeout_s: float = 10):
    """``produce``, retried while ``broker_id`` does not lead the partition yet: the metadata
    of one broker names a new leader before that leader has applied it, and the answers
    (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER) append nothing, as clients retry."""
    not_yet = (P.ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, P.ErrorCode.NOT_LEADER_OR_FOLLOWER)
    return wait_until(
        lambda: (r := produce(cluster, broker_id, topic, partition, values, acks)) is not None
        and r.error_code not in not_yet
        and r,
        timeout_s,
        f"broker {broker_id} to take writes to {topic}-{partition}",
    )


def fetch_raw(cluster, broker_id: int, topic: str, partition: int, offset: int) -> bytes:
    """The raw batches one Fetch (no wait) returns from ``offset``; b"" at the end."""
    req = P.FetchRequest(
        max_wait_ms=0,
        topics=(
            P.FetchTopic(
                name=topic,
                partitions=(P.FetchPartition(partition=partition, fetch_offset=offset),),
            ),
        ),
    )
    r = call(cluster, broker_id, req)
    assert r is not None
    part = r.topics[0].partitions[0]
    assert part.error_code == 0, part
    return part.records


def read_all(cluster, broker_id: int, topic: str, partition: int) -> list[bytes]:
    out, offset = [], 0
    while True:
        data = fetch_raw(cluster, broker_id, topic, partition, offset)
        if not data:
            return out
        got = [r for r in records(data) if r.offset >= offset]
        out.extend(r.value for r in got)
        offset = got[-1].offset + 1


def rate_beside_trickle(cluster, tp, marks: tuple[float, ...], flood: Callable[[], None],
                        send_one: Callable[[], None], record_bytes: int):
    """Quota tests: ``flood()`` called in a loop by one thread, ``send_one()`` (a send that
    waits for its answer) every 20 ms by another, while ``tp``'s log end offset is read at
    each of ``marks`` (seconds from the start). Returns the flood's byte rate between each
    two marks (from the log end offset), the trickle's latencies (ms) from the first mark to
    the last, and what either thread raised (check it after closing the clients)."""
    from rillet.admin import Admin

    stop = threading.Event()
    latencies: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def flooding() -> None:
        try:
            while not stop.is_set():
                flood()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    def trickle() -> None:
        try:
            while not stop.is_set():
                t = time.monotonic()
                send_one()
                latencies.append((t, (time.monotonic() - t) * 1000))
                stop.wait(0.02)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=f, daemon=True) for f in (flooding, trickle)]
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        start = time.monotonic()
        for t in threads:
            t.start()
        points = []
        for mark in marks:
            while time.monotonic() < start + mark:
                time.sleep(0.05)
            points.append((time.monotonic(), admin.list_offsets([tp])[tp]))
    stop.set()
    for t in threads:
        t.join(timeout=30)
    window = [ms for at, ms in latencies if points[0][0] <= at < points[-1][0]]
    rates = [(leo1 - leo0) * record_bytes / (t1 - t0)
             for (t0, leo0), (t1, leo1) in zip(points, points[1:], strict=False)]
    return rates, window, errors
