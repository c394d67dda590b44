"""The web console's JSON API against a real broker (Starlette's TestClient, in-process)."""

from __future__ import annotations

import json
import time

import pytest
from starlette.testclient import TestClient

from rillet.admin import Admin
from rillet.console.app import make_app
from rillet.console.data import MAX_SHOWN_BYTES, ClusterView, show_bytes
from rillet.producer import Producer
from rillet.records import NewTopic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def cluster(shared_cluster):
    return shared_cluster


@pytest.fixture
def client(cluster):
    view = ClusterView(cluster.bootstrap_servers)
    try:
        with TestClient(make_app(view)) as c:
            yield c
    finally:
        view.close()


def _topic(cluster, name: str, partitions: int = 1) -> None:
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        admin.create_topics([NewTopic(name, partitions, 1)])


def _produce(cluster, topic: str, records) -> None:
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    try:
        for key, value, headers in records:
            producer.send(topic, value=value, key=key, partition=0, headers=headers)
        producer.flush()
    finally:
        producer.close()


def test_overview_topics_and_topic_detail(cluster, client) -> None:
    _topic(cluster, "api-orders", 2)
    o = client.get("/api/overview").json()
    assert [b["id"] for b in o["brokers"]] == [1] and o["controller_id"] == 1
    assert o["health"] == "healthy" and o["under_replicated"] == []
    topics = {t["name"]: t for t in client.get("/api/topics").json()}
    assert topics["api-orders"]["partitions"] == 2 and topics["api-orders"]["records"] == 0
    t = client.get("/api/topics/api-orders").json()
    assert [p["leader"] for p in t["partitions"]] == [1, 1]
    assert any(c["name"] == "retention.ms" for c in t["configs"])
    assert client.get("/").status_code == 200 and "Rillet console" in client.get("/").text


def test_message_browser_shows_json_text_binary_headers(cluster, client) -> None:
    _topic(cluster, "api-msgs")
    _produce(cluster, "api-msgs", [
        (b"k1", json.dumps({"a": 1}).encode(), [("h", b"v")]),
        (None, b"plain text", []),
        (b"\x00\xff", b"\x00\x01\xfe\xff", []),
    ])
    m = client.get("/api/topics/api-msgs/messages?partition=0&offset=0").json()
    assert [r["offset"] for r in m["records"]] == [0, 1, 2] and m["end_offset"] == 3
    first, second, third = m["records"]
    assert first["value"]["kind"] == "json" and first["value"]["text"] == '{\n  "a": 1\n}'
    assert first["headers"][0]["key"] == "h" and first["headers"][0]["value"]["text"] == "v"
    assert second["key"] is None and second["value"] == {
        "size": 10, "truncated": False, "kind": "text", "text": "plain text"}
    assert third["value"]["kind"] == "binary" and third["value"]["text"] == "00 01 fe ff"
    # from an offset, and by timestamp (the first record at or after it)
    assert [r["offset"] for r in client.get(
        "/api/topics/api-msgs/messages?offset=2").json()["records"]] == [2]
    ts = second["timestamp"]
    got = client.get(f"/api/topics/api-msgs/messages?timestamp={ts}").json()["records"]
    assert got and got[0]["timestamp"] >= ts and got[-1]["offset"] == 2


def test_bad_browser_requests_get_clear_errors_and_the_broker_lives(cluster, client) -> None:
    _topic(cluster, "api-bad")
    _produce(cluster, "api-bad", [(None, b"x" * (MAX_SHOWN_BYTES * 4), [])])
    r = client.get("/api/topics/api-bad/messages?offset=5")
    assert r.status_code == 400 and "past the end" in r.json()["error"]
    r = client.get("/api/topics/no-such-topic/messages?offset=0")
    assert r.status_code == 404 and "does not exist" in r.json()["error"]
    r = client.get("/api/topics/api-bad/messages?partition=7")
    assert r.status_code == 404 and "no partition 7" in r.json()["error"]
    r = client.get("/api/topics/api-bad/messages?offset=abc")
    assert r.status_code == 400 and "integer" in r.json()["error"]
    huge = client.get("/api/topics/api-bad/messages?offset=0").json()["records"][0]["value"]
    assert huge["truncated"] and huge["size"] == MAX_SHOWN_BYTES * 4
    assert len(huge["text"]) == MAX_SHOWN_BYTES
    assert client.get("/api/overview").json()["health"] == "healthy"  # broker unharmed


def test_delete_topic_needs_the_name_as_confirmation(cluster, client) -> None:
    _topic(cluster, "api-doomed")
    r = client.post("/api/topics/api-doomed/delete")
    assert r.status_code == 400 and "confirm" in r.json()["error"]
    r = client.post("/api/topics/api-doomed/delete?confirm=wrong")
    assert r.status_code == 400
    assert "api-doomed" in {t["name"] for t in client.get("/api/topics").json()}
    r = client.post("/api/topics/api-doomed/delete?confirm=api-doomed")
    assert r.status_code == 200
    assert "api-doomed" not in {t["name"] for t in client.get("/api/topics").json()}


def test_connectors_without_a_connect_url_say_so(client) -> None:
    r = client.get("/api/connectors")
    assert r.status_code == 400 and "--connect-url" in r.json()["error"]


def test_show_bytes_never_sends_more_than_the_cap() -> None:
    assert show_bytes(None) is None
    assert show_bytes(b"[1,2]")["kind"] == "json"
    assert show_bytes("héllo".encode())["kind"] == "text"
    big = show_bytes(b"\xff" * (MAX_SHOWN_BYTES + 10))
    assert big["kind"] == "binary" and big["truncated"]


def test_reset_offsets_needs_confirmation_and_an_empty_group(cluster, client) -> None:
    from rillet.consumer import Consumer

    _topic(cluster, "api-reset")
    _produce(cluster, "api-reset", [(None, b"r%d" % i, []) for i in range(4)])
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers,
                         "group.id": "api-reset-group", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    try:
        consumer.subscribe(["api-reset"])
        got = 0
        deadline = time.monotonic() + 30
        while got < 4 and time.monotonic() < deadline:
            got += sum(len(v) for v in consumer.poll(timeout_ms=500).values())
        consumer.commit()
        r = client.post("/api/groups/api-reset-group/reset-offsets?to=earliest"
                        "&confirm=api-reset-group")
        assert r.status_code == 400 and "active members" in r.json()["error"]
    finally:
        consumer.close()
    lag = client.get("/api/groups/api-reset-group").json()["partitions"]
    assert [p["lag"] for p in lag] == [0]
    r = client.post("/api/groups/api-reset-group/reset-offsets?to=earliest")
    assert r.status_code == 400 and "confirm" in r.json()["error"]
    r = client.post("/api/groups/api-reset-group/reset-offsets?to=earliest&confirm=api-reset-group")
    assert r.status_code == 200 and r.json()["offsets"] == {"api-reset-0": 0}
    assert [p["lag"] for p in client.get("/api/groups/api-reset-group").json()["partitions"]] \
        == [4]
    r = client.get("/api/groups/no-such-group")
    assert r.status_code == 404 and "does not exist" in r.json()["error"]


def test_connectors_status_pause_resume_restart_through_a_real_worker(cluster, tmp_path) -> None:
    from tests.integration.connect_helpers import WorkerProcess, write_json
    from tests.support import wait_until

    (tmp_path / "in.txt").write_text("a\nb\n")
    worker_cfg = write_json(tmp_path / "worker.json", {
        "bootstrap.servers": cluster.bootstrap_servers, "rest.port": 0,
        "offset.flush.interval.ms": 200})
    source = write_json(tmp_path / "source.json", {
        "name": "api-file", "connector.class": "file-source", "tasks.max": 1,
        "file": str(tmp_path / "in.txt"), "topic": "api-connect", "poll.interval.ms": 100,
        "value.converter": "string"})
    worker = WorkerProcess(tmp_path, worker_cfg, [source])
    url = worker.start(timeout=60)
    view = ClusterView(cluster.bootstrap_servers)
    try:
        with TestClient(make_app(view, connect_url=url)) as c:
            def state(want: str):
                got = c.get("/api/connectors").json()
                return got if got and got[0]["state"] == want and all(
                    t["state"] == want for t in got[0]["tasks"]) else None

            listed = wait_until(lambda: state("RUNNING"), 30, "the connector to run")
            assert listed[0]["name"] == "api-file" and listed[0]["tasks"]
            assert c.post("/api/connectors/api-file/pause").status_code == 200
            wait_until(lambda: state("PAUSED"), 30, "the connector to pause")
            assert c.post("/api/connectors/api-file/resume").status_code == 200
            wait_until(lambda: state("RUNNING"), 30, "the connector to resume")
            assert c.post("/api/connectors/api-file/restart").status_code == 200
            wait_until(lambda: state("RUNNING"), 30, "the connector to run after restart")
            r = c.post("/api/connectors/nope/pause")
            assert r.status_code == 404, r.text
            r = c.post("/api/connectors/api-file/explode")
            assert r.status_code == 400 and "unknown connector action" in r.json()["error"]
    finally:
        view.close()
        worker.stop()


def test_throughput_rates_come_from_log_end_offsets(cluster, client) -> None:
    _topic(cluster, "api-rate")
    first = client.get("/api/throughput").json()
    assert first["totals"]["api-rate"] == 0
    _produce(cluster, "api-rate", [(None, b"x", [])] * 10)
    second = client.get("/api/throughput").json()
    assert second["totals"]["api-rate"] == 10
    assert second["series"][-1]["rates"]["api-rate"] > 0
