"""The console's rates, computed from the brokers' Prometheus endpoints (docs/metrics.md):
messages and bytes in and out per second, per topic and per broker.

Each sample scrapes every broker's ``/metrics`` once and keeps its per-topic counters
(``rillet_topic_{messages,bytes}_{in,out}_total``); a rate is the difference of two samples
over the time between them, as PromQL's ``rate()`` would compute it (a counter that went
down means its broker restarted: the new value is the increase since). Samples are taken at
most once a second however many pages ask, and the last ``keep`` are kept for the chart.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

#: counter family (without Prometheus' _total) -> the key the console shows it under
COUNTERS = {
    "rillet_topic_messages_in": "messages_in",
    "rillet_topic_bytes_in": "bytes_in",
    "rillet_topic_messages_out": "messages_out",
    "rillet_topic_bytes_out": "bytes_out",
}
KINDS = tuple(COUNTERS.values())
_SAMPLES = {f"{name}_total": kind for name, kind in COUNTERS.items()}
MIN_INTERVAL_S = 1.0

# one sample of one broker: {kind: {topic: counter value}}; None: the broker did not answer
BrokerSample = dict[str, dict[str, float]]


def parse(text: str) -> tuple[str | None, BrokerSample]:
    """(broker id from ``rillet_broker_info``, its per-topic counters) of one scrape."""
    broker: str | None = None
    out: BrokerSample = {kind: {} for kind in KINDS}
    for family in text_string_to_metric_families(text):
        for s in family.samples:  # by sample name: the family name depends on the TYPE line
            if s.name == "rillet_broker_info":
                broker = s.labels.get("broker_id", broker)
                continue
            kind = _SAMPLES.get(s.name)
            if kind is not None and "topic" in s.labels:
                out[kind][s.labels["topic"]] = s.value
    return broker, out


def _increase(before: float | None, after: float) -> float:
    if before is None:
        return 0.0  # first seen in this sample: no interval to measure it over
    return after - before if after >= before else after  # a reset: counted from 0


def rates(
    t0: float, before: Mapping[str, BrokerSample | None], t1: float,
    after: Mapping[str, BrokerSample | None],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """({topic: {kind: per second}}, {broker: {kind: per second}}) between two samples.
    A broker missing from either sample contributes nothing (it is shown as down).

    >>> a = {"1": {"messages_in": {"t": 10.0}, "bytes_in": {}, "messages_out": {},
    ...            "bytes_out": {}}}
    >>> b = {"1": {"messages_in": {"t": 30.0}, "bytes_in": {}, "messages_out": {},
    ...            "bytes_out": {}}}
    >>> rates(0.0, a, 2.0, b)[0]["t"]["messages_in"], rates(0.0, a, 2.0, b)[1]["1"]["messages_in"]
    (10.0, 10.0)
    """
    dt = max(t1 - t0, 1e-3)
    topics: dict[str, dict[str, float]] = {}
    brokers: dict[str, dict[str, float]] = {}
    for broker, now in after.items():
        then = before.get(broker)
        if now is None:
            continue
        per_broker = brokers.setdefault(broker, dict.fromkeys(KINDS, 0.0))
        if then is None:
            continue
        for kind in KINDS:
            old = then.get(kind, {})
            for topic, value in now.get(kind, {}).items():
                r = _increase(old.get(topic), value) / dt
                per_broker[kind] += r
                row = topics.setdefault(topic, dict.fromkeys(KINDS, 0.0))
                row[kind] += r
    return topics, brokers


def _fetch(url: str, timeout_s: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - operator URLs
        return resp.read().decode()


class MetricRates:
    """Samples ``urls`` (each broker's /metrics) and turns the last samples into rates.
    Thread-safe: the console's endpoints run in a thread pool."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        fetch: Callable[[str], str] = _fetch,
        clock: Callable[[], float] = time.monotonic,
        keep: int = 60,
    ) -> None:
        self.urls = list(urls)
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._labels: dict[str, str] = {}  # url -> broker id (from rillet_broker_info)
        self._samples: deque[tuple[float, dict[str, BrokerSample | None]]] = deque(
            maxlen=keep + 1
        )

    def _scrape(self, url: str) -> tuple[str, BrokerSample | None]:
        try:
            broker, sample = parse(self._fetch(url))
        except (OSError, ValueError):
            return self._labels.get(url, url), None
        if broker is not None:
            self._labels[url] = broker
        return self._labels.get(url, url), sample

    def sample(self) -> dict[str, Any]:
        """Scrape now (unless the last sample is under a second old) and return the rates:
        ``topics`` and ``brokers`` between the last two samples (None before there are
        two), ``series``: messages in per second per topic for each interval kept."""
        with self._lock:
            now = self._clock()
            if not self._samples or now - self._samples[-1][0] >= MIN_INTERVAL_S:
                with ThreadPoolExecutor(max_workers=max(1, min(8, len(self.urls)))) as pool:
                    scraped = dict(pool.map(self._scrape, self.urls))
                self._samples.append((now, scraped))
            samples = list(self._samples)
        series = []
        for (t0, a), (t1, b) in pairwise(samples):
            topics, _ = rates(t0, a, t1, b)
            series.append({"time": t1, "rates": {t: r["messages_in"] for t, r in topics.items()}})
        last = samples[-1][1]
        out: dict[str, Any] = {
            "source": "metrics", "time": time.time(), "series": series,
            "measured": len(samples) >= 2, "topics": None,
            "brokers": [{"broker": b, "up": s is not None, "rates": None}
                        for b, s in sorted(last.items(), key=lambda kv: _order(kv[0]))],
        }
        if len(samples) >= 2:
            (t0, a), (t1, b) = samples[-2], samples[-1]
            topics, brokers = rates(t0, a, t1, b)
            out["topics"] = {t: topics[t] for t in sorted(topics)}
            for row in out["brokers"]:
                row["rates"] = brokers.get(row["broker"])
        return out


def _order(label: str) -> tuple[int, str]:
    return (int(label), "") if label.isdigit() else (1 << 30, label)
