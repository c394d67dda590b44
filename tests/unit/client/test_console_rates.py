"""The console's rates from the brokers' Prometheus text (rillet/console/rates.py): parsing,
rates between two samples (per topic and per broker), counter resets, brokers that do not
answer, and at most one scrape a second. Real exposition text, a fake clock and fetch."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from rillet.console.rates import MetricRates, parse, rates


def exposition(broker: int, messages_in: dict, bytes_out: dict | None = None) -> str:
    """What a broker serves, made by prometheus_client as the broker makes it."""

    class Collector:
        def collect(self):
            info = GaugeMetricFamily("rillet_broker_info", "This broker", labels=["broker_id"])
            info.add_metric([str(broker)], 1)
            yield info
            for name, values in (("rillet_topic_messages_in", messages_in),
                                 ("rillet_topic_bytes_out", bytes_out or {})):
                family = CounterMetricFamily(name, "per topic", labels=["topic"])
                for topic, v in values.items():
                    family.add_metric([topic], v)
                yield family
            yield GaugeMetricFamily("rillet_leader_count", "other", value=3)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry).decode()


def test_parse_keeps_the_broker_id_and_the_per_topic_counters() -> None:
    broker, sample = parse(exposition(2, {"a": 5, "b": 7}, {"a": 100}))
    assert broker == "2"
    assert sample["messages_in"] == {"a": 5.0, "b": 7.0}
    assert sample["bytes_out"] == {"a": 100.0}
    assert sample["bytes_in"] == {} and sample["messages_out"] == {}


def test_rates_per_topic_and_broker_with_a_reset_and_a_new_topic() -> None:
    _, a1 = parse(exposition(1, {"t": 100}))
    _, a2 = parse(exposition(2, {"t": 50, "u": 10}))
    _, b1 = parse(exposition(1, {"t": 140, "new": 9}))
    _, b2 = parse(exposition(2, {"t": 20, "u": 30}))  # broker 2 restarted: t counts from 0
    topics, brokers = rates(10.0, {"1": a1, "2": a2}, 12.0, {"1": b1, "2": b2})
    assert topics["t"]["messages_in"] == pytest.approx((40 + 20) / 2)
    assert topics["u"]["messages_in"] == pytest.approx(10)
    assert topics["new"]["messages_in"] == 0  # first seen: no interval yet
    assert brokers["1"]["messages_in"] == pytest.approx(20)
    assert brokers["2"]["messages_in"] == pytest.approx(20)
    # a broker that did not answer the second time has no rates (shown as down)
    topics, brokers = rates(10.0, {"1": a1, "2": a2}, 12.0, {"1": b1, "2": None})
    assert "2" not in brokers and topics["t"]["messages_in"] == pytest.approx(20)


def test_metric_rates_samples_at_most_once_a_second_and_marks_brokers_down() -> None:
    now = [0.0]
    counts = {"u1": 0, "u2": 0}
    served = {"u1": True, "u2": True}

    def fetch(url: str) -> str:
        if not served[url]:
            raise OSError("connection refused")
        counts[url] += 10
        return exposition(1 if url == "u1" else 2, {"t": counts[url]})

    r = MetricRates(["u1", "u2"], fetch=fetch, clock=lambda: now[0])
    first = r.sample()
    assert first["measured"] is False and first["topics"] is None
    assert [b["broker"] for b in first["brokers"]] == ["1", "2"]
    now[0] = 0.5
    assert r.sample()["measured"] is False  # under a second: no new scrape
    assert counts == {"u1": 10, "u2": 10}
    now[0] = 2.0
    second = r.sample()
    assert second["measured"] is True
    assert second["topics"]["t"]["messages_in"] == pytest.approx(20 / 2)
    assert second["brokers"][0]["rates"]["messages_in"] == pytest.approx(5)
    assert second["series"][-1]["rates"] == {"t": pytest.approx(10)}
    served["u2"] = False
    now[0] = 4.0
    third = r.sample()
    down = {b["broker"]: b for b in third["brokers"]}
    assert down["2"]["up"] is False and down["2"]["rates"] is None
    assert down["1"]["up"] is True and third["topics"]["t"]["messages_in"] == pytest.approx(5)


def test_the_console_takes_the_profiles_metrics_only_for_the_profiles_cluster(
    tmp_path, monkeypatch
) -> None:
    import json

    from rillet.cli.webconsole import _profile_metrics

    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path))
    assert _profile_metrics("h:1") == []  # no profile
    (tmp_path / "profile.json").write_text(json.dumps({
        "brokers": "h:1,h:2", "metrics": {"10": "u10", "2": "u2", "1": "u1"}}))
    assert _profile_metrics("h:1,h:2") == ["u1", "u2", "u10"]
    assert _profile_metrics("elsewhere:9092") == []  # another cluster: its rates would be wrong
