"""rillet.retry and `rillet queue redrive` against a real broker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet.retry import RetryingHandler

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def _read_all(servers: str, topic: str, n: int, timeout_s: float = 20.0):
    c = Consumer({"bootstrap.servers": servers, "auto.offset.reset": "earliest"})
    try:
        parts = sorted(c.partitions_for_topic(topic))
        c.assign([TopicPartition(topic, p) for p in parts])
        out, deadline = [], time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                out.extend(recs)
        return out
    finally:
        c.close()


def test_retry_helper_retries_then_dead_letters_on_a_real_broker(cluster) -> None:
    servers = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": servers}) as admin:
        admin.create_topics([NewTopic("payments", 1, 1)])
    with Producer({"bootstrap.servers": servers}) as producer:
        for i in range(4):
            producer.send("payments", value=f"p{i}".encode(), key=f"k{i}".encode(),
                          headers=[("trace", f"t{i}".encode())])
        producer.flush(10)
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "billing",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": servers})
    calls: dict[bytes, list[float]] = {}

    def handle(record):
        calls.setdefault(record.value, []).append(time.monotonic())
        if record.value in (b"p1", b"p3"):
            raise RuntimeError(f"503 for {record.value.decode()}")

    retrying = RetryingHandler(handle, producer, group_id="billing", retry_backoff_ms=100,
                               retry_backoff_multiplier=2, max_attempts=3)
    try:
        consumer.subscribe(["payments"])
        seen, deadline = 0, time.monotonic() + 30
        while seen < 4 and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    retrying.process(r)
                    consumer.commit({tp: r.offset + 1})
                    seen += 1
        assert seen == 4
        assert consumer.committed([TopicPartition("payments", 0)]) == {
            TopicPartition("payments", 0): 4}
    finally:
        retrying.close()
        consumer.close()
        producer.close()
    assert [len(calls[v]) for v in (b"p0", b"p1", b"p2", b"p3")] == [1, 3, 1, 3]
    t = calls[b"p1"]
    assert t[1] - t[0] >= 0.1 and t[2] - t[1] >= 0.2  # the back-off, never early
    dlq = _read_all(servers, "payments.dlq", 2)
    assert [r.value for r in dlq] == [b"p1", b"p3"]
    h = dict(dlq[0].headers)
    assert h["trace"] == b"t1" and dlq[0].key == b"k1"
    assert h["rillet.dlq.topic"] == b"payments" and h["rillet.dlq.offset"] == b"1"
    assert h["rillet.dlq.delivery.count"] == b"3" and h["rillet.dlq.group"] == b"billing"
    assert h["rillet.dlq.reason"] == b"RuntimeError: 503 for p1"


def _dead_letter(i: int, reason: str) -> dict:
    return dict(value=f"v{i}".encode(), key=f"k{i}".encode(), headers=[
        ("app", b"x"), ("rillet.dlq.topic", b"orders"), ("rillet.dlq.partition", b"0"),
        ("rillet.dlq.offset", str(i).encode()), ("rillet.dlq.delivery.count", b"5"),
        ("rillet.dlq.group", b"crawler"), ("rillet.dlq.reason", reason.encode())])


def test_redrive_cli_moves_filtered_dead_letters_back_and_resumes(cluster) -> None:
    servers = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": servers}) as admin:
        admin.create_topics([NewTopic("orders", 2, 1), NewTopic("orders.dlq", 1, 1)])
    with Producer({"bootstrap.servers": servers}) as producer:
        for i in range(6):
            producer.send("orders.dlq", **_dead_letter(i, "HTTP 503" if i % 2 else "HTTP 404"))
        producer.flush(10)
    env = {**os.environ, "RILLET_BROKERS": servers}

    def redrive(*args):
        out = subprocess.run([*RILLET, "queue", "redrive", "--from", "orders.dlq", "--to",
                              "orders", *args], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "Would redrive 3 record(s)" in redrive("--filter", "reason~=503", "--dry-run")
    out = redrive("--filter", "reason~=503")
    assert "Redrove 3 record(s) from orders.dlq to orders; 3 skipped" in out, out
    assert "HTTP 503" in out
    moved = _read_all(servers, "orders", 3)
    assert sorted(r.value for r in moved) == [b"v1", b"v3", b"v5"]
    h = dict(moved[0].headers)
    assert h["app"] == b"x" and "rillet.dlq.reason" not in h
    assert h["rillet.redrive.reason"] == b"HTTP 503"
    # a re-run with the same filter continues where it stopped: nothing left
    assert "Redrove 0 record(s)" in redrive("--filter", "reason~=503")
    # new dead letters arrive: only those are moved
    with Producer({"bootstrap.servers": servers}) as producer:
        producer.send("orders.dlq", **_dead_letter(7, "HTTP 503"))
        producer.flush(10)
    assert "Redrove 1 record(s)" in redrive("--filter", "reason~=503")
    # by key, with a limit, into the same topic as the others
    assert "Redrove 1 record(s)" in redrive("--filter", "key=k0", "--limit", "1")
    assert len(_read_all(servers, "orders", 5)) == 5
    # a bad filter is a usage error, nothing moved
    bad = subprocess.run([*RILLET, "queue", "redrive", "--from", "orders.dlq", "--to",
                          "orders", "--filter", "reason~=("], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "bad regular expression" in bad.stderr
