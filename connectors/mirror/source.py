"""The records' half of a flow ``source->target``, shared by both ways of running it: the
dedicated loop of ``rillet mirror start`` (:mod:`.runner`) and the MirrorSourceConnector's
task in a Connect worker (:mod:`.connect`).

One ``MirrorSource`` owns: which topics of the source are mirrored (their remote topics are
created on the target with the same partition count, later increases and, with
``sync.topic.configs.enabled``, their configs), the consumer of their records positioned at
the flow's progress (given by the caller: the dedicated loop's group or transactional
progress, the connector's offsets in Connect's offsets topic), and the offset syncs of what
was copied (``mm2-offset-syncs.<target>.internal`` on the source). What is *done* with the
records (the dedicated loop's producer, or source records the worker produces) is the
caller's; where a record goes is :meth:`remote_topic` and its own partition number.

Threads: one thread at a time (the loop's, or the task's actor).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable

from loguru import logger
from rillet.connectors.mirror.policy import (
    DefaultReplicationPolicy,
    Flow,
    OffsetSync,
    configs_to_sync,
    should_emit_sync,
    sync_points,
)

from rillet import Admin, Consumer, Producer
from rillet.records import NewTopic, TopicPartition

SYNCS_KEPT = 64
#: records per poll, so per flush + progress commit (or per transaction): each poll pays two
#: round trips (B's acks, the commit on A), which at the consumer's default 500 cost more than
#: the copying (bench/README.md, "Mirror"). Also the duplicates a crash can leave without
#: exactly-once: at most one poll.
POLL_RECORDS = 2000

#: ``start_offsets(partitions) -> {partition: next offset to copy}`` for newly assigned
#: partitions; a partition left out starts at the beginning
StartOffsets = Callable[[list[TopicPartition]], dict[TopicPartition, int]]


class MirrorSource:
    def __init__(self, flow: Flow, policy: DefaultReplicationPolicy,
                 start_offsets: StartOffsets) -> None:
        self.flow, self.policy, self.start_offsets = flow, policy, start_offsets
        # each client's settings: mm2.properties' per-cluster keys (connectors/mirror/clients.py)
        self.src_admin = Admin(flow.client("source", "admin"))
        self.dst_admin = Admin(flow.client("target", "admin"))
        records = flow.client("source", "consumer", enable_auto_commit="false")
        records.setdefault("max.poll.records", str(POLL_RECORDS))
        self.consumer = Consumer(records)
        self.sync_producer = Producer(flow.client("source", "producer"))
        self.syncs_topic = policy.offset_syncs_topic(flow.target)
        self.partitions: dict[str, int] = {}          # mirrored source topic -> partitions
        self._remotes: dict[str, str] = {}            # source topic -> remote topic name
        self.syncs: dict[TopicPartition, deque[OffsetSync]] = {}

    def remote_topic(self, topic: str) -> str:
        remote = self._remotes.get(topic)
        if remote is None:
            remote = self._remotes[topic] = self.policy.format_remote_topic(
                self.flow.source, topic)
        return remote

    # -- topics ----------------------------------------------------------------------------

    def refresh_topics(self) -> None:
        listed = set(self.src_admin.list_topics())
        wanted = sorted(t for t in listed if self.flow.wants_topic(self.policy, t))
        gone = [t for t in self.partitions if t not in listed]
        for topic in gone:
            # as Kafka's MM2: the copy on the target stays (a deletion on the source is not
            # replayed onto the disaster-recovery copy); `mirror status` lists it as orphaned
            del self.partitions[topic]
            logger.warning("mirror {}->{}: {} was deleted on {}; {} is kept on {} (orphaned)",
                           self.flow.source, self.flow.target, topic, self.flow.source,
                           self.remote_topic(topic), self.flow.target)
        if not wanted:
            if gone:
                self._assign()
            return
        described = self.src_admin.describe_topics(wanted)
        existing = set(self.dst_admin.list_topics())
        configs = (self.src_admin.describe_configs(wanted)
                   if self.flow.sync_topic_configs else {})
        changed = bool(gone)
        for topic in wanted:
            count = len(described[topic].partitions)
            remote = self.remote_topic(topic)
            source_cfg = {k: e.value for k, e in configs.get(topic, {}).items()
                          if not e.is_default and e.value is not None}
            if remote not in existing:
                self.dst_admin.create_topics([NewTopic(remote, count, configs=source_cfg)])
                logger.info("mirror {}->{}: created {} ({} partitions)", self.flow.source,
                            self.flow.target, remote, count)
            else:
                remote_count = len(self.dst_admin.describe_topics([remote])[remote].partitions)
                if remote_count < count:
                    self.dst_admin.create_partitions({remote: count})
                if source_cfg:
                    target_cfg = {k: e.value for k, e in
                                  self.dst_admin.describe_configs([remote])[remote].items()}
                    change = configs_to_sync(source_cfg, target_cfg)
                    if change:
                        self.dst_admin.alter_configs({remote: change})
            if self.partitions.get(topic) != count:
                self.partitions[topic] = count
                changed = True
        if changed:
            self._assign()

    def assigned(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, n in self.partitions.items() for p in range(n)]

    def _assign(self) -> None:
        """Assign every mirrored partition; a partition the consumer already had keeps its
        position, a new one starts at the caller's progress (else the beginning)."""
        tps = self.assigned()
        had = set(self.consumer.assignment())
        positions = {tp: self.consumer.position(tp) for tp in tps if tp in had}
        new = [tp for tp in tps if tp not in had]
        start = self.start_offsets(new) if new else {}
        self.consumer.assign(tps)
        for tp in tps:
            if tp in positions:
                self.consumer.seek(tp, positions[tp])
            elif tp in start:
                self.consumer.seek(tp, start[tp])
            else:
                self.consumer.seek_to_beginning(tp)

    def poll(self, timeout_ms: int = 200) -> dict[TopicPartition, list]:
        if not self.partitions:
            return {}
        return self.consumer.poll(timeout_ms=timeout_ms)

    # -- offset syncs ----------------------------------------------------------------------

    def emit_syncs(self, tp: TopicPartition, n: int, upstream: Callable[[int], int],
                   downstream: Callable[[int], int]) -> None:
        """The offset syncs of ``n`` records of ``tp`` (in offset order) once copied: the
        i-th was ``upstream(i)`` on the source and landed at ``downstream(i)`` on the target.
        A run whose offsets are contiguous on both sides (the usual case) is computed from
        its ends only."""
        if n == 0:
            return
        u0, d0 = upstream(0), downstream(0)
        if upstream(n - 1) - u0 == n - 1 and downstream(n - 1) - d0 == n - 1:
            kept = self.syncs.get(tp)
            for u, d in sync_points(kept[-1] if kept else None, u0, d0, n,
                                    self.flow.offset_lag_max):
                self._add_sync(tp, u, d)
        else:  # gaps (compaction, transaction markers on A): every record is looked at
            for i in range(n):
                self._maybe_sync(tp, upstream(i), downstream(i))

    def load_syncs(self) -> None:
        """Read the offset syncs written before this flow started (the syncs topic on the
        source), keeping the latest SYNCS_KEPT per partition."""
        from rillet.connectors.mirror.remote import _read_all

        for r in _read_all(self.flow.client("source", "consumer"), self.syncs_topic,
                           timeout_s=60):
            sync = parse_sync(r.key, r.value)
            if sync is not None:
                self.syncs.setdefault(TopicPartition(sync.topic, sync.partition),
                                      deque(maxlen=SYNCS_KEPT)).append(sync)

    def _maybe_sync(self, tp: TopicPartition, upstream: int, downstream: int) -> None:
        kept = self.syncs.get(tp)
        if should_emit_sync(kept[-1] if kept else None, upstream, downstream,
                            self.flow.offset_lag_max):
            self._add_sync(tp, upstream, downstream)

    def _add_sync(self, tp: TopicPartition, upstream: int, downstream: int) -> None:
        self.syncs.setdefault(tp, deque(maxlen=SYNCS_KEPT)).append(
            OffsetSync(tp.topic, tp.partition, upstream, downstream))
        self.sync_producer.send(self.syncs_topic, json.dumps([upstream, downstream]).encode(),
                                json.dumps([tp.topic, tp.partition]).encode())

    def ensure_syncs_topic(self) -> None:
        ensure_topic(self.src_admin, self.syncs_topic)

    def close(self) -> None:
        for c in (self.sync_producer, self.consumer, self.src_admin, self.dst_admin):
            try:
                c.close()
            except Exception as e:  # noqa: BLE001 - closing must not hide the first error
                logger.warning("mirror: closing {}: {}", type(c).__name__, e)


def ensure_topic(admin: Admin, topic: str) -> None:
    """Create a one-partition internal topic unless it exists (another task of the flow may
    create it at the same moment: that is no error)."""
    if topic in admin.list_topics(include_internal=True):
        return
    try:
        admin.create_topics([NewTopic(topic, 1)])
    except Exception as e:
        if "AlreadyExists" not in type(e).__name__:
            raise


def parse_sync(key: bytes | None, value: bytes | None) -> OffsetSync | None:
    """One record of the offset syncs topic, None if it is not a sync of ours (ignored,
    never fatal)."""
    try:
        topic, partition = json.loads(key)
        upstream, downstream = json.loads(value)
        return OffsetSync(str(topic), int(partition), int(upstream), int(downstream))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
