"""The KAFKA listener's traffic in a real broker's Prometheus metrics (docs/metrics.md):
a confluent-kafka (librdkafka) producer and consumer through the KAFKA listener, then a
scrape over HTTP shows their records and bytes in and out per topic, their requests per API
under ``listener="KAFKA"`` (and none under the native listener), a refused produce as a
Produce error, the listener's connections and socket bytes, and a long-polling consumer in
the Fetch purgatory. One broker for the module."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_kafka_data import _kafka_batch, _partitions, _produce_body, _raw

from rillet.admin import Admin, NewTopic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RECORDS = 60


def scrape(cluster) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(cluster.metrics_url(1), timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_confluent_kafka_traffic_is_counted_per_topic_api_and_listener(kafka) -> None:
    import confluent_kafka as ck

    cluster, bootstrap = kafka
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        admin.create_topics([NewTopic("km", 1, 1)])
    before = scrape(cluster)
    native_produces = value(before, "rillet_request_latency_seconds_count", api="Produce",
                            listener="CLIENT")
    producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                            "log_level": 0})
    failures = []
    for i in range(RECORDS):
        producer.produce("km", f"value-{i}".encode() * 3, key=b"k%d" % i, partition=0,
                         on_delivery=lambda err, _m: err and failures.append(err))
    assert producer.flush(60) == 0 and not failures, failures
    # a refused produce: partition 7 of a one-partition topic (raw: librdkafka would not send)
    refused = _partitions(_raw(bootstrap, 0, 9, _produce_body("km", {7: _kafka_batch([b"x"])})))
    assert int(refused[("km", 7)].error_code) == 3  # UNKNOWN_TOPIC_OR_PARTITION

    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "km-unused",
                            "enable.auto.commit": False, "fetch.wait.max.ms": 500,
                            "log_level": 0})
    try:
        consumer.assign([ck.TopicPartition("km", 0, 0)])
        got, deadline = [], time.monotonic() + 60
        while len(got) < RECORDS and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                got.append(m)
        assert len(got) == RECORDS
        # caught up: the consumer's fetches now wait in a long poll (the Fetch purgatory)
        deadline = time.monotonic() + 30
        while True:
            s = scrape(cluster)
            if value(s, "rillet_purgatory_size", delayed_operation="Fetch") >= 1:
                break
            assert time.monotonic() < deadline, "no Kafka fetch seen in the Fetch purgatory"
            consumer.poll(0.05)
        assert value(s, "rillet_connection_count", listener="KAFKA") >= 1
    finally:
        consumer.close()

    after = scrape(cluster)

    def count(api: str) -> float:
        return value(after, "rillet_request_latency_seconds_count", api=api, listener="KAFKA")

    # per topic: every record in and out; the bytes are the stored batches' (what the log holds)
    assert value(after, "rillet_topic_messages_in_total", topic="km") == RECORDS
    bytes_in = value(after, "rillet_topic_bytes_in_total", topic="km")
    assert bytes_in == value(after, "rillet_log_size_bytes", topic="km", partition="0") > 0
    assert value(after, "rillet_topic_messages_out_total", topic="km") >= RECORDS
    assert value(after, "rillet_topic_bytes_out_total", topic="km") >= bytes_in
    # per API on the KAFKA listener; the native listener saw no produce
    assert count("ApiVersions") >= 2 and count("Metadata") >= 2
    assert count("Produce") >= 2 and count("Fetch") >= 1  # librdkafka batches; one refused
    assert value(after, "rillet_request_latency_seconds_bucket", api="Produce",
                 listener="KAFKA", le="+Inf") == count("Produce")
    assert value(after, "rillet_request_latency_seconds_count", api="Produce",
                 listener="CLIENT") == native_produces
    assert value(after, "rillet_request_errors_total", api="Produce", listener="KAFKA",
                 error="UNKNOWN_TOPIC_OR_PARTITION") == 1
    # connections and socket bytes of the KAFKA listener
    assert value(after, "rillet_connection_creation_total", listener="KAFKA") >= 3
    assert value(after, "rillet_listener_incoming_bytes_total", listener="KAFKA") > bytes_in / 2
    assert value(after, "rillet_listener_outgoing_bytes_total", listener="KAFKA") > bytes_in / 2
    assert value(after, "rillet_connection_close_bad_input_total", listener="KAFKA") == 0
