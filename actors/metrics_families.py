"""Metric families of the second half of issue #20 (docs/metrics.md), built at scrape time
from ``actors/metrics_sources.MetricSources`` and the broker's metadata image: the
controller quorum (Raft), ISR shrinks and expands, purgatory sizes, consumer group lag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .metrics_sources import RAFT_BUCKETS, MetricSources, committed_offsets, group_lag


def families(sources: MetricSources, ctx: Any) -> Iterator[Any]:
    info = GaugeMetricFamily("rillet_broker_info", "This broker (Kafka's app-info id)",
                             labels=["broker_id"])
    info.add_metric([str(ctx.broker_id)], 1)
    yield info
    yield from _raft(sources, ctx)
    for name, doc, value in (
        ("rillet_isr_shrinks", "ISR shrinks of partitions this broker leads (IsrShrinksPerSec)",
         sources.isr_shrinks),
        ("rillet_isr_expands", "ISR expands of partitions this broker leads (IsrExpandsPerSec)",
         sources.isr_expands),
    ):
        yield CounterMetricFamily(name, doc, value=value)
    purgatory = GaugeMetricFamily(
        "rillet_purgatory_size",
        "Requests waiting in a purgatory: acks=all produces for replication, fetches in a "
        "long poll (Kafka's DelayedOperationPurgatory NumDelayedOperations)",
        labels=["delayed_operation"],
    )
    purgatory.add_metric(["Produce"], max(0, sources.delayed_produce))
    fetches = sources.parked_fetches
    purgatory.add_metric(["Fetch"], fetches() if fetches is not None else 0)
    yield purgatory
    yield from _groups(sources, ctx)


def _raft(sources: MetricSources, ctx: Any) -> Iterator[Any]:
    raft = sources.raft
    voter = raft.epoch >= 0  # observers (not in controller.quorum.voters) have no Raft node
    if not voter:
        return
    buckets, total = raft.histogram()
    hist = HistogramMetricFamily(
        "rillet_raft_commit_latency_seconds",
        "Active controller: time from proposing a metadata entry to applying it committed "
        "(raft-metrics commit-latency-avg/-max)",
    )
    running, out = 0, []
    for bound, n in zip((*map(str, RAFT_BUCKETS), "+Inf"), buckets, strict=True):
        running += n
        out.append((bound, running))
    hist.add_metric([], out, total)
    yield hist
    for name, doc, value in (
        ("rillet_raft_current_epoch", "Raft term of this voter (raft-metrics current-epoch)",
         raft.epoch),
        ("rillet_raft_current_leader", "The quorum leader this voter knows, -1: none "
         "(raft-metrics current-leader)", raft.leader),
        ("rillet_raft_log_end_offset", "Next offset of this voter's __cluster_metadata log "
         "(raft-metrics log-end-offset)", raft.log_end_offset),
        ("rillet_raft_high_watermark", "Committed offset of the metadata log as this voter "
         "knows it (raft-metrics high-watermark)", raft.high_watermark),
        ("rillet_raft_applied_offset", "Metadata log offset applied to this voter's image",
         raft.applied_offset),
    ):
        yield GaugeMetricFamily(name, doc, value=value)
    lag = GaugeMetricFamily(
        "rillet_raft_voter_lag",
        "Leader only: metadata entries each other voter is behind the leader's log end "
        "(kafka-metadata-quorum describe --replication, Lag)",
        labels=["voter"],
    )
    for v, behind in sorted(raft.voter_lag.items()):
        lag.add_metric([str(v)], behind)
    yield lag


def _groups(sources: MetricSources, ctx: Any) -> Iterator[Any]:
    me = ctx.broker_id
    image = ctx.image
    hws = sources.high_watermarks or {}
    hosted: dict[tuple[str, int], int] = {}
    high = GaugeMetricFamily(
        "rillet_partition_high_watermark",
        "High watermark of each partition this broker leads (consumers read below it)",
        labels=["topic", "partition"],
    )
    for topic in image.topics.values():
        for p in topic.partitions.values():
            if me not in p.replicas:
                continue
            hw = hws.get((topic.name, p.partition))
            if hw is None:
                continue
            hosted[(topic.name, p.partition)] = hw
            if p.leader == me:
                high.add_metric([topic.name, str(p.partition)], hw)
    yield high
    committed = GaugeMetricFamily(
        "rillet_consumer_group_committed_offset",
        "Committed offset per partition of the groups this broker coordinates",
        labels=["group", "topic", "partition"],
    )
    lag = GaugeMetricFamily(
        "rillet_consumer_group_lag",
        "High watermark minus committed offset, per partition of the groups this broker "
        "coordinates (high watermarks of partitions hosted elsewhere asked of their leaders)",
        labels=["group", "topic", "partition"],
    )
    shards = sources.group_shards
    offsets = list(committed_offsets(shards)) if shards is not None else []
    for group_id, topic, partition, offset in offsets:
        committed.add_metric([group_id, topic, str(partition)], offset)
    remote = sources.remote_high_watermarks
    missing = {(t, p) for _, t, p, _ in offsets} - hosted.keys()
    if remote is not None and missing:  # partitions hosted elsewhere: ask their leaders
        hosted = {**hosted, **remote.get(missing, image)}
    for group_id, topic, partition, behind in group_lag(offsets, hosted):
        lag.add_metric([group_id, topic, str(partition)], behind)
    yield committed
    yield lag
