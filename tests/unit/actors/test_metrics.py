"""actors/metrics.py without a broker: record counting from batch headers, the hot-path
counters, the gauges computed from a metadata image at scrape time, and the HTTP server's
answers (a real socket on loopback, a fake broker context)."""

from __future__ import annotations

import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rillet.actors.configs import ConfigError, validate_broker_configs
from rillet.actors.metrics import BrokerMetrics, MetricsServer, count_records
from rillet.coordinator.metadata import BrokerInfo, MetadataImage, PartitionInfo, TopicInfo
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P


def _batch(n: int) -> bytes:
    b = BatchBuilder()
    for i in range(n):
        b.append(1000 + i, None, b"v%d" % i)
    return b.build()


def test_count_records_walks_every_batch_and_stops_at_garbage():
    assert count_records(_batch(3) + _batch(5)) == 8
    assert count_records(b"") == 0
    assert count_records(b"\x00" * 200) == 0  # a zero length: stop, never loop
    assert count_records(_batch(2) + b"\xff" * 50) == 2  # a torn tail is not counted


def test_bytes_and_messages_in_count_only_appended_data():
    m = BrokerMetrics()
    data = _batch(4)
    answers = []
    ok = m.appending("t", data, answers.append)
    refused = m.appending("t", data, answers.append)
    ok(P.ProducePartitionResponse(partition=0, base_offset=0))
    refused(P.ProducePartitionResponse(partition=0, error_code=P.ErrorCode.NOT_LEADER_OR_FOLLOWER))
    snap = m.snapshot()
    assert snap["messages_in"] == {"t": 4}
    assert snap["bytes_in"] == {"t": len(data)}
    assert len(answers) == 2  # both answers still reach the client


def test_latency_is_observed_once_and_errors_and_bytes_out_are_counted():
    m = BrokerMetrics()
    released = []
    done = m.timed("Fetch", lambda: released.append(1))
    done()
    done()  # release is idempotent upstream: observed once, released as often as called
    snap = m.snapshot()
    assert snap["requests"] == {"Fetch": 1}
    assert sum(snap["latency_buckets"]["Fetch"]) == 1 and len(released) == 2
    m.responded(P.FetchResponse(topics=(P.FetchTopicResponse(name="t", partitions=(
        P.FetchPartitionResponse(partition=0, records=b"x" * 10),
        P.FetchPartitionResponse(partition=1, error_code=P.ErrorCode.OFFSET_OUT_OF_RANGE),
    )),)))
    snap = m.snapshot()
    assert snap["bytes_out"] == {"t": 10}
    assert snap["errors"] == {("Fetch", P.ErrorCode.OFFSET_OUT_OF_RANGE): 1}


def _ctx(image: MetadataImage, broker_id: int = 1, controller_id: int = 1):
    return SimpleNamespace(
        broker_id=broker_id, image=image, controller_id=controller_id,
        broker_configs={"min.insync.replicas": "2"}, describe_stats=None,
        counter_values=lambda: {"poison_messages": 0},
    )


def _image() -> MetadataImage:
    parts = {
        0: PartitionInfo(0, replicas=(1, 2, 3), isr=(1, 2, 3), leader=1, leader_epoch=0),
        1: PartitionInfo(1, replicas=(1, 2, 3), isr=(1,), leader=1, leader_epoch=0),
        2: PartitionInfo(2, replicas=(2, 3, 1), isr=(2, 3), leader=2, leader_epoch=0),
        3: PartitionInfo(3, replicas=(2, 3), isr=(), leader=-1, leader_epoch=0),
    }
    brokers = {b: BrokerInfo(b, "h", 1, fenced=False) for b in (1, 2, 3)}
    return MetadataImage(brokers=brokers, topics={"t": TopicInfo("t", "id", parts)})


def _scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


@pytest.fixture
def server():
    made = []

    def make(ctx, metrics=None):
        s = MetricsServer(ctx, metrics or BrokerMetrics(), "127.0.0.1", 0)
        made.append(s)
        return f"http://127.0.0.1:{s.port}"

    yield make
    for s in made:
        s.close()


def test_partition_gauges_come_from_the_image_at_scrape_time(server):
    ctx = _ctx(_image())
    base = server(ctx)
    s = _scrape(base + "/metrics")
    assert s[("rillet_leader_count", ())] == 2
    assert s[("rillet_partition_count", ())] == 3
    assert s[("rillet_under_replicated_partitions", ())] == 1  # partition 1 (2 is broker 2's)
    assert s[("rillet_partition_under_replicated", (("partition", "1"), ("topic", "t")))] == 1
    assert s[("rillet_under_min_isr_partitions", ())] == 1  # isr (1,) < min.insync.replicas 2
    assert s[("rillet_offline_partitions", ())] == 1  # partition 3, by the controller
    assert s[("rillet_active_controller", ())] == 1
    assert s[("rillet_brokers_live", ())] == 3
    ctx.image = MetadataImage()  # swapped, as the broker does: the next scrape follows
    ctx.controller_id = 2
    s = _scrape(base + "/metrics")
    assert s[("rillet_leader_count", ())] == 0
    assert s[("rillet_offline_partitions", ())] == 0
    assert s[("rillet_active_controller", ())] == 0


def test_http_unknown_path_404_other_method_405_failing_collector_500(server):
    ctx = _ctx(_image())
    base = server(ctx)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/", timeout=10)
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(base + "/metrics", method="DELETE"),
                               timeout=10)
    assert e.value.code == 405
    ctx.image = None  # a collector that raises: 500 with the reason, the server lives on
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/metrics", timeout=10)
    assert e.value.code == 500
    ctx.image = _image()
    assert _scrape(base + "/metrics")[("rillet_leader_count", ())] == 2


@pytest.mark.parametrize("value", ["-2", "65536", "x"])
def test_metrics_port_is_validated(value):
    with pytest.raises(ConfigError, match="metrics.port"):
        validate_broker_configs({"metrics.port": value})


def test_metrics_port_defaults_to_off():
    assert validate_broker_configs({})["metrics.port"] == "-1"
    assert validate_broker_configs({"metrics.port": "0"})["metrics.port"] == "0"


def test_log_size_sums_the_segment_files_of_hosted_replicas(tmp_path):
    from rillet.actors.metrics import BrokerCollector

    (tmp_path / "t-0").mkdir()
    (tmp_path / "t-0" / "00000000000000000000.log").write_bytes(b"x" * 100)
    (tmp_path / "t-0" / "00000000000000000100.log").write_bytes(b"x" * 20)
    (tmp_path / "t-0" / "00000000000000000000.index").write_bytes(b"x" * 999)  # not the log
    (tmp_path / "t-3").mkdir()  # broker 1 hosts no replica of t-3: not reported
    family = BrokerCollector(_ctx(_image()), BrokerMetrics(), tmp_path)._log_sizes(tmp_path)
    sizes = {s.labels["partition"]: s.value for s in family.samples}
    assert sizes == {"0": 120}  # t-1 and t-2 have no directory yet: left out
