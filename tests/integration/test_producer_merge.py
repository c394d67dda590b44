"""A backlog of batches for one partition leaves as one record batch (one sequence range, one
append), and a merge the broker refuses as too large is split back and delivered exactly once.

The backlog is made deterministic: the broker is paused (SIGSTOP) once the producer has a
batch in flight for the partition (unanswered, so later ones wait), more records are sent,
then it is resumed.
"""

from __future__ import annotations

import os
import signal

import pytest
from cluster_helpers import fetch_raw, wait_until
from rillet.logstore.batch import iter_batches, records

from rillet import Admin, NewTopic, Producer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
TOPIC = "merge"


def _raw_batches(cluster, topic: str) -> list[tuple[int, int, list[bytes]]]:
    """(record count, bytes, values) of every stored batch of partition 0, in order."""
    out, offset = [], 0
    while data := fetch_raw(cluster, cluster.broker_ids[0], topic, 0, offset):
        for header, view in iter_batches(data):
            values = [r.value for r in records(bytes(view))]
            out.append((header.record_count, header.length, values))
            offset = header.base_offset + header.last_offset_delta + 1
    return out


def _produce_through_a_pause(cluster, configs: dict[str, str]) -> tuple[list, list[bytes]]:
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        admin.create_topics([NewTopic(TOPIC, 1, 1, configs=configs)])
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 16384,
            "request.timeout.ms": 30000,
        }
    )
    sender = producer._sender
    assert sender.idempotent
    pid = cluster.pid(cluster.broker_ids[0])
    values = [f"{i:08d}".encode() * 12 for i in range(6000)]  # 96 B each, ~580 KB
    futures = [producer.send(TOPIC, values[0], partition=0)]
    futures[0].get(20)  # producer id and metadata in hand
    paused = False
    try:
        os.kill(pid, signal.SIGSTOP)
        paused = True
        futures += [producer.send(TOPIC, v, partition=0) for v in values[1:1000]]
        wait_until(lambda: sender.batches_in_flight[(TOPIC, 0)] >= 1, 20, "a batch in flight")
        futures += [producer.send(TOPIC, v, partition=0) for v in values[1000:]]
    finally:
        if paused:
            os.kill(pid, signal.SIGCONT)
    try:
        producer.flush(60)
        offsets = [f.get(10).offset for f in futures]
    finally:
        producer.close()
    return offsets, values


def test_a_backlog_leaves_as_merged_record_batches(cluster) -> None:
    offsets, values = _produce_through_a_pause(cluster, {})
    assert offsets == list(range(len(values)))
    stored = _raw_batches(cluster, TOPIC)
    assert [v for _, _, vs in stored for v in vs] == values
    # a 16 KiB batch holds < 150 of these records; the backlog went out in far bigger ones
    assert max(count for count, _, _ in stored) > 300, [c for c, _, _ in stored]
    assert len(stored) < len(values) // 150


def test_a_merge_too_large_for_the_topic_is_split_and_delivered_once(cluster) -> None:
    limit = 40000
    offsets, values = _produce_through_a_pause(cluster, {"max.message.bytes": str(limit)})
    assert offsets == list(range(len(values)))  # every record acknowledged at its own offset
    stored = _raw_batches(cluster, TOPIC)
    assert [v for _, _, vs in stored for v in vs] == values  # once each, in order
    assert all(size <= limit for _, size, _ in stored)
