"""Prometheus metrics of real broker processes (docs/metrics.md), scraped over real HTTP:
bytes/messages in match what was produced, bytes out what was fetched, and bad HTTP input is
refused harmlessly. (The under-replicated gauge around a follower's death and return is in
test_metrics_quorum.py, on its three-broker cluster.)"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request

import pytest
from cluster_helpers import batch, call, fetch_raw, produce, wait_until
from prometheus_client.parser import text_string_to_metric_families
from rillet.transport import protocol as P

from rillet import Admin, NewTopic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def scrape(cluster, broker_id: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from the broker's /metrics."""
    url = cluster.metrics_url(broker_id)
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def create(cluster, name: str, partitions: int = 1, rf: int = 1, configs=None) -> None:
    with Admin({"bootstrap.servers": cluster.bootstrap_servers, "request.timeout.ms": 15000}) as a:
        a.create_topics([NewTopic(name, partitions, rf, configs=configs or {})])


def test_bytes_and_messages_in_match_what_was_produced(cluster):
    create(cluster, "m1")
    wait_until(lambda: produce(cluster, 1, "m1", 0, [b"warm"], acks=1), 30, "a leader")
    before = scrape(cluster, 1)
    sent_bytes, sent_records = 0, 0
    for i in range(10):
        values = [f"record-{i}-{j}".encode() * (j + 1) for j in range(7)]
        r = produce(cluster, 1, "m1", 0, values, acks=1)
        assert r is not None and r.error_code == 0, r
        sent_bytes += len(batch(values))
        sent_records += len(values)
    after = scrape(cluster, 1)
    got_records = value(after, "rillet_topic_messages_in_total", topic="m1") - value(
        before, "rillet_topic_messages_in_total", topic="m1"
    )
    got_bytes = value(after, "rillet_topic_bytes_in_total", topic="m1") - value(
        before, "rillet_topic_bytes_in_total", topic="m1"
    )
    assert got_records == sent_records == 70
    assert got_bytes == sent_bytes
    # one latency observation per Produce request, and the histogram is consistent
    native = {"api": "Produce", "listener": "CLIENT"}
    produces = value(after, "rillet_request_latency_seconds_count", **native)
    assert produces - value(before, "rillet_request_latency_seconds_count", **native) == 10
    assert value(after, "rillet_request_latency_seconds_bucket", le="+Inf", **native) == (
        produces
    )
    # a refused produce (unknown partition) counts an error, not bytes in
    r = produce(cluster, 1, "m1", 5, [b"nowhere"], acks=1)
    assert r is not None and r.error_code != 0
    errors = scrape(cluster, 1)
    assert value(errors, "rillet_topic_messages_in_total", topic="m1") == value(
        after, "rillet_topic_messages_in_total", topic="m1"
    )
    name = P.ErrorCode(r.error_code).name
    assert value(errors, "rillet_request_errors_total", error=name, **native) >= 1
    # bytes out: what a consumer fetch returned
    data = fetch_raw(cluster, 1, "m1", 0, 0)
    assert data
    out = scrape(cluster, 1)
    assert value(out, "rillet_topic_bytes_out_total", topic="m1") == len(data)
    # the log on disk holds at least every byte appended (batches are stored as sent)
    assert value(out, "rillet_log_size_bytes", topic="m1", partition="0") >= sent_bytes
    assert value(out, "rillet_leader_count") >= 1
    assert value(out, "rillet_active_controller") == 1
    # one per call() above
    assert value(out, "rillet_connection_creation_total", listener="CLIENT") >= 10


def test_bad_http_requests_are_refused_and_the_broker_is_unharmed(cluster):
    url = cluster.metrics_url(1)
    assert url is not None
    base = url.removesuffix("/metrics")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/nope", timeout=10)
    assert e.value.code == 404
    assert b"/metrics" in e.value.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=10)
    assert e.value.code == 405
    # garbage that is not HTTP at all, and a connection dropped mid-request
    host, port = base.removeprefix("http://").rsplit(":", 1)
    for junk in (b"\x00\xff" * 500 + b"\r\n\r\n", b"GET /metr"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(junk)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/metrics?x=" + "a" * 5000)
    assert conn.getresponse().status == 200
    conn.close()
    assert cluster.pid(1) is not None
    assert scrape(cluster, 1)  # still serving metrics
    assert call(cluster, 1, P.MetadataRequest()) is not None  # and clients


def test_metrics_off_serves_nothing_and_brokers_work(cluster_factory):
    c = cluster_factory(1, {"metrics.port": "-1"})
    assert c.metrics_url(1) is None
    assert call(c, 1, P.MetadataRequest()) is not None


def test_client_metrics_after_a_known_workload(cluster):
    from rillet import Consumer, Producer, TopicPartition

    create(cluster, "cm")
    wait_until(lambda: produce(cluster, 1, "cm", 0, [b"warm"], acks=1), 30, "a leader")
    with Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 5}) as p:
        for i in range(100):
            p.send("cm", f"v{i}".encode(), partition=0)
        p.flush(30)
        m = p.metrics()["producer-metrics"]
    assert m["record-send-total"] == 100
    assert m["record-retry-total"] == 0 and m["record-error-total"] == 0
    assert 1 <= m["request-total"] <= 100
    assert m["record-send-rate"] > 0
    assert 0 < m["request-latency-avg"] <= m["request-latency-max"] < 30_000
    assert m["batch-size-avg"] > 0
    tp = TopicPartition("cm", 0)
    with Consumer({"bootstrap.servers": cluster.bootstrap_servers}) as c:
        c.assign([tp])
        c.seek(tp, 0)
        got: list = []

        def upto(total: int) -> None:  # poll until ``got`` holds ``total`` records
            while len(got) < total:
                want = total - len(got)
                got.extend(wait_until(lambda w=want: c.poll(1000, w).get(tp), 30, "records"))

        upto(51)  # the warm-up record and 50 more
        lag = c.metrics()
        assert lag["consumer-fetch-manager-metrics"]["records-lag-max"] == 50
        assert lag["consumer-fetch-manager-metrics-by-partition"]["cm-0.records-lag"] == 50
        upto(101)
        m = c.metrics()["consumer-fetch-manager-metrics"]
    assert m["records-lag-max"] == 0
    assert m["records-consumed-total"] == 101
    assert m["fetch-total"] >= 1 and m["fetch-rate"] > 0
    assert m["bytes-consumed-total"] > 0
    assert m["fetch-latency-max"] >= m["fetch-latency-avg"] > 0
