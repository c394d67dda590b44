"""A broker's Prometheus metrics (docs/metrics.md).

Two parts:

- ``BrokerMetrics``: plain counters the session threads bump on the hot path (bytes and
  records in per topic, bytes out per topic, requests and their latency per API, errors by
  code). One lock, integer adds: far cheaper than ``prometheus_client`` objects per request.
- ``BrokerCollector``: a ``prometheus_client`` custom Collector that reads those counters,
  the broker's ``BrokerCounters`` / ``BrokerStats`` and its metadata image **at scrape
  time** and turns them into metric families (gauges such as under-replicated partitions are
  computed from the image then, never maintained).

The controller quorum, ISR changes, purgatories and group lag come from values the actors
publish (``actors/metrics_sources.py``, ``BrokerMetrics.sources``), turned into families at
scrape time by ``actors/metrics_families.py``.

``MetricsServer`` serves ``GET /metrics`` (Prometheus text format) on ``metrics.port``; any
other path is a 404, any other method a 405; nothing a scraper sends reaches the broker's
actors.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import CollectorRegistry

from .metrics_families import families as second_half_families
from .metrics_sources import MetricSources

# request latency buckets, seconds (Kafka's RequestMetrics percentiles, as Prometheus buckets)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_I32 = struct.Struct(">i")
_LENGTH_AT = 8  # logstore/batch.py: length i32 at byte 8, record_count i32 at byte 85
_COUNT_AT = 85
_HEADER = 89
NATIVE_LISTENER = "CLIENT"  # the native protocol's client listener (actors/listeners.py)


def count_records(buf) -> int:
    """Records in ``buf`` (whole batches, logstore/batch.py), by walking the batch headers;
    stops quietly at anything malformed (the append path rejects it with a clear error)."""
    pos, total, end = 0, 0, len(buf)
    try:
        while pos + _HEADER <= end:
            length = _I32.unpack_from(buf, pos + _LENGTH_AT)[0]
            if length < _HEADER:
                break
            total += _I32.unpack_from(buf, pos + _COUNT_AT)[0]
            pos += length
    except struct.error:
        pass
    return total


class _Timed:
    """A request's ``release`` that also observes its latency, once."""

    __slots__ = ("_metrics", "_api", "_release", "_start")

    def __init__(self, metrics: BrokerMetrics, api: str, release: Callable[[], None]) -> None:
        self._metrics = metrics
        self._api = api
        self._release = release
        self._start = time.perf_counter()

    def observe(self) -> None:
        start = self._start
        if start is not None:
            self._start = None
            self._metrics._observe(self._api, time.perf_counter() - start)

    def __call__(self) -> None:
        self.observe()
        self._release()


class BrokerMetrics:
    """Counters bumped by session threads; read by ``BrokerCollector`` at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes_in: dict[str, int] = {}
        self.messages_in: dict[str, int] = {}
        self.bytes_out: dict[str, int] = {}
        self.messages_out: dict[str, int] = {}
        self.requests: dict[str, int] = {}
        self.latency_sum: dict[str, float] = {}
        self.latency_buckets: dict[str, list[int]] = {}
        self.errors: dict[tuple[str, int], int] = {}
        self.throttle_ms: dict[str, int] = {}
        self.sources = MetricSources()  # Raft, ISR changes, purgatories, group lag
        # other listeners' request/connection figures by name (actors/kafka_metrics.py);
        # the counters above are the native CLIENT listener's (topic ones: every listener's)
        self.listeners: dict[str, Any] = {}

    def appending(self, topic: str, records, put: Callable[[Any], None]) -> Callable:
        """Wrap a produce partition's answer callback: bytes and records in for ``topic``
        are counted when the answer says appended (Kafka counts after the local append)."""

        def answered(response: Any) -> None:
            if getattr(response, "error_code", 0) == 0:
                self.produced(topic, records)
            put(response)

        return answered

    def produced(self, topic: str, records) -> None:
        """``records`` (whole batches) were appended to a partition of ``topic``."""
        n = count_records(records)
        size = len(records)
        with self._lock:
            self.bytes_in[topic] = self.bytes_in.get(topic, 0) + size
            self.messages_in[topic] = self.messages_in.get(topic, 0) + n

    def timed(self, api: str, release: Callable[[], None]) -> _Timed:
        """Wrap a request's ``release``: its latency is observed once, when the response is
        about to be sent (``observe()``, so a client that scrapes after its answer sees it)
        or else when the request is finished (acks=0, no response)."""
        return _Timed(self, api, release)

    def _observe(self, api: str, seconds: float) -> None:
        with self._lock:
            self.requests[api] = self.requests.get(api, 0) + 1
            self.latency_sum[api] = self.latency_sum.get(api, 0.0) + seconds
            buckets = self.latency_buckets.get(api)
            if buckets is None:
                buckets = self.latency_buckets[api] = [0] * (len(BUCKETS) + 1)
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
                    break
            else:
                buckets[-1] += 1

    def responded(self, response: Any) -> None:
        """Count a response's error codes (top level and per partition), fetch bytes out
        per topic and throttle time."""
        api = getattr(response, "API", "?")
        codes: list[int] = []
        code = getattr(response, "error_code", 0)
        if code:
            codes.append(code)
        out: list[tuple[str, int, int]] = []
        fetch = api == "Fetch"
        for t in getattr(response, "topics", None) or ():
            partitions = getattr(t, "partitions", None) or ()
            size = count = 0
            for p in partitions:
                c = getattr(p, "error_code", 0)
                if c:
                    codes.append(c)
                records = getattr(p, "records", None)
                if records:
                    size += len(records)
                    if fetch:  # records out: the batch headers' counts (a walk, no decode)
                        count += count_records(records)
            if size:
                out.append((getattr(t, "name", "?"), size, count))
        throttle = getattr(response, "throttle_time_ms", 0) or 0
        if not codes and not out and not throttle:
            return
        with self._lock:
            for c in codes:
                self.errors[(api, c)] = self.errors.get((api, c), 0) + 1
            if fetch:
                for name, size, count in out:
                    self.bytes_out[name] = self.bytes_out.get(name, 0) + size
                    self.messages_out[name] = self.messages_out.get(name, 0) + count
            if throttle:
                self.throttle_ms[api] = self.throttle_ms.get(api, 0) + throttle

    def sent_out(self, out: list[tuple[str, int, int]]) -> None:
        """Fetch bytes and records sent to consumers, [(topic, bytes, records)], counted by
        another listener (actors/kafka_metrics.py ``fetched``)."""
        with self._lock:
            for name, size, count in out:
                self.bytes_out[name] = self.bytes_out.get(name, 0) + size
                self.messages_out[name] = self.messages_out.get(name, 0) + count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "bytes_in": dict(self.bytes_in),
                "messages_in": dict(self.messages_in),
                "bytes_out": dict(self.bytes_out),
                "messages_out": dict(self.messages_out),
                "requests": dict(self.requests),
                "latency_sum": dict(self.latency_sum),
                "latency_buckets": {k: list(v) for k, v in self.latency_buckets.items()},
                "errors": dict(self.errors),
                "throttle_ms": dict(self.throttle_ms),
            }


def _error_name(code: int) -> str:
    from rillet.transport.protocol import ErrorCode

    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class BrokerCollector:
    """Builds every metric family at scrape time from ``metrics`` (the hot-path counters)
    and ``ctx`` (actors/session.BrokerContext: image, counters, stats)."""

    def __init__(self, ctx: Any, metrics: BrokerMetrics, data_dir: Path | None = None) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.data_dir = data_dir

    def collect(self) -> Iterator[Any]:
        snap = self.metrics.snapshot()
        yield from self._topic_families(snap)
        yield from self._request_families(snap)
        yield from self._partition_families()
        yield from self._broker_families()
        yield from second_half_families(self.metrics.sources, self.ctx)  # metrics_families.py
        if self.data_dir is not None:
            yield self._log_sizes(self.data_dir)
        from .kafka_metrics import families as listener_families

        yield from listener_families(self.metrics)

    def _log_sizes(self, data_dir: Path) -> GaugeMetricFamily:
        """Bytes of the segment files of every partition replica this broker hosts (Kafka's
        Log Size): a directory listing per partition, at scrape time only."""
        family = GaugeMetricFamily(
            "rillet_log_size_bytes",
            "Bytes of the log segments of each partition replica on this broker",
            labels=["topic", "partition"],
        )
        me = self.ctx.broker_id
        for topic in self.ctx.image.topics.values():
            for p in topic.partitions.values():
                if me not in p.replicas:
                    continue
                size = 0
                try:
                    with os.scandir(data_dir / f"{topic.name}-{p.partition}") as entries:
                        for entry in entries:
                            if entry.name.endswith(".log"):
                                size += entry.stat().st_size
                except OSError:
                    continue  # not opened yet, or deleted meanwhile
                family.add_metric([topic.name, str(p.partition)], size)
        return family

    def _topic_families(self, snap: dict) -> Iterator[Any]:
        for key, name, doc in (
            ("bytes_in", "rillet_topic_bytes_in", "Produce bytes received, per topic"),
            ("messages_in", "rillet_topic_messages_in", "Records produced, per topic"),
            ("bytes_out", "rillet_topic_bytes_out", "Fetch bytes sent to consumers, per topic"),
            ("messages_out", "rillet_topic_messages_out", "Records sent to consumers, per topic"),
        ):
            family = CounterMetricFamily(name, doc, labels=["topic"])
            for topic, value in sorted(snap[key].items()):
                family.add_metric([topic], value)
            yield family

    def _request_families(self, snap: dict) -> Iterator[Any]:
        snaps = [(NATIVE_LISTENER, snap)]  # the native listener's, then the others'
        snaps += [(name, m.snapshot()) for name, m in sorted(self.metrics.listeners.items())]
        hist = HistogramMetricFamily(
            "rillet_request_latency_seconds",
            "Time from a request's arrival to its response, per API and listener",
            labels=["api", "listener"],
        )
        errors = CounterMetricFamily(
            "rillet_request_errors",
            "Error codes in responses, per API, listener and code",
            labels=["api", "listener", "error"],
        )
        throttle = CounterMetricFamily(
            "rillet_request_throttle_time_ms",
            "Throttle time given to clients, per API and listener",
            labels=["api", "listener"],
        )
        for listener, s in snaps:
            for api, counts in sorted(s["latency_buckets"].items()):
                running, buckets = 0, []
                for bound, n in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
                    running += n
                    buckets.append((bound, running))
                hist.add_metric([api, listener], buckets, s["latency_sum"][api])
            for (api, code), n in sorted(s["errors"].items()):
                errors.add_metric([api, listener, _error_name(code)], n)
            for api, ms in sorted(s["throttle_ms"].items()):
                throttle.add_metric([api, listener], ms)
        yield hist
        yield errors
        yield throttle

    def _partition_families(self) -> Iterator[Any]:
        ctx = self.ctx
        me = ctx.broker_id
        image = ctx.image
        default_min_isr = int(ctx.broker_configs.get("min.insync.replicas", "1"))
        leaders = replicas = under = under_min = offline = 0
        is_controller = ctx.controller_id == me
        urp = GaugeMetricFamily(
            "rillet_partition_under_replicated",
            "1 for each partition this broker leads whose ISR is smaller than its replica set",
            labels=["topic", "partition"],
        )
        for topic in image.topics.values():
            min_isr = int(topic.configs.get("min.insync.replicas", default_min_isr))
            for p in topic.partitions.values():
                if me in p.replicas:
                    replicas += 1
                if p.leader < 0 and is_controller:
                    offline += 1
                if p.leader != me:
                    continue
                leaders += 1
                if len(p.isr) < len(p.replicas):
                    under += 1
                    urp.add_metric([topic.name, str(p.partition)], 1)
                if len(p.isr) < min_isr:
                    under_min += 1
        for name, doc, value in (
            ("rillet_leader_count", "Partitions this broker leads", leaders),
            ("rillet_partition_count", "Partition replicas hosted by this broker", replicas),
            (
                "rillet_under_replicated_partitions",
                "Partitions this broker leads with a shrunk ISR (Kafka UnderReplicatedPartitions)",
                under,
            ),
            (
                "rillet_under_min_isr_partitions",
                "Partitions this broker leads with ISR below min.insync.replicas",
                under_min,
            ),
            (
                "rillet_offline_partitions",
                "Partitions without a leader (reported by the active controller only)",
                offline,
            ),
            (
                "rillet_active_controller",
                "1 if this broker is the active controller",
                int(is_controller),
            ),
            ("rillet_metadata_offset", "Metadata records applied by this broker", image.offset),
            (
                "rillet_brokers_live",
                "Unfenced brokers in this broker's image",
                len(image.live_brokers()),
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        yield urp

    def _broker_families(self) -> Iterator[Any]:
        ctx = self.ctx
        stats = ctx.describe_stats() if ctx.describe_stats else None
        others = sorted(self.metrics.listeners.items())  # actors/kafka_metrics.py
        connections = (
            ("rillet_connection_count", "Open client connections, per listener", GaugeMetricFamily,
             "connection_count"),
            ("rillet_connection_creation", "Client connections opened, per listener",
             CounterMetricFamily, "connection_creation_total"),
            ("rillet_connection_close_disconnected", "Client connections closed by the peer, "
             "per listener", CounterMetricFamily, "connection_close_disconnected_total"),
            ("rillet_connection_close_idle", "Client connections closed idle, per listener",
             CounterMetricFamily, "connection_close_idle_total"),
        )
        for name, doc, kind, attr in connections:
            family = kind(name, doc, labels=["listener"])
            if stats is not None:
                family.add_metric([NATIVE_LISTENER], getattr(stats, attr))
            for listener, m in others:
                family.add_metric([listener], getattr(m, attr.removesuffix("_total"), 0))
            yield family
        if stats is not None:
            for name, doc, value in (
                (
                    "rillet_inter_broker_connection_count",
                    "Open inter-broker sessions",
                    stats.inter_broker_connection_count,
                ),
                ("rillet_threads", "OS threads of the broker process", stats.threads),
                (
                    "rillet_queued_request_bytes",
                    "Request bytes received, not yet finished",
                    stats.queued_request_bytes,
                ),
            ):
                yield GaugeMetricFamily(name, doc, value=value)
        counters = CounterMetricFamily(
            "rillet_broker_counter", "The BrokerCounters API (docs/runtime.md)", labels=["name"]
        )
        for name, value in sorted(ctx.counter_values().items()):
            counters.add_metric([name], value)
        yield counters


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry  # set on the subclass made per server

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path != "/metrics":
            self._plain(404, f"not found: {path[:200]!r}; the metrics are at /metrics\n")
            return
        try:
            body = generate_latest(self.registry)
        except Exception as e:  # noqa: BLE001 - a scrape must never take the broker down
            self._plain(500, f"metrics collection failed: {e}\n")
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self) -> None:
        self._plain(405, "only GET /metrics is served\n")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def _plain(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # scrapes every few seconds would flood the broker log


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (port 0: a free one), on daemon threads."""

    def __init__(
        self, ctx: Any, metrics: BrokerMetrics, host: str, port: int, data_dir: Path | None = None
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BrokerCollector(ctx, metrics, data_dir))
        handler = type("Handler", (_Handler,), {"registry": self.registry})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="rillet-metrics-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_metrics(ctx: Any, configs: Any, data_dir: Path | None = None) -> MetricsServer | None:
    """The node's one call: with ``metrics.port`` -1 nothing is counted and None returned;
    else ``ctx.metrics`` is set and the HTTP server started (a bind failure is fatal, like a
    listener's: a broker silently without its metrics would be worse)."""
    port = int(configs["metrics.port"])
    if port < 0:
        return None
    ctx.metrics = BrokerMetrics()
    try:
        return MetricsServer(ctx, ctx.metrics, configs["metrics.host"], port, data_dir)
    except OSError as e:
        raise SystemExit(f"metrics.port {port}: cannot serve metrics: {e}") from None
