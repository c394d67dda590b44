"""The shell that runs one replication flow ``source->target`` with the rillet clients.

One ``FlowRunner`` per flow, driven by ``run_flows`` on the calling thread: it is the mirror
source (records A -> B, key/value/headers/timestamp kept, partition kept when counts match),
the checkpoint emitter (group offsets translated through offset syncs) and the heartbeat
emitter. All decisions come from :mod:`connectors.mirror.policy`.

Delivery: the source position is committed (group ``mm2-<source>-><target>`` on the source)
only after the producer flushed, so a crash re-mirrors at most the records since the last
commit (at-least-once); a kill loses nothing. With ``exactly.once.support = enabled`` each
poll's copies and the progress are one transaction on the target (:mod:`.eos`), and the run
resumes from the progress stored there; the group on the source is then only for ``status``.

Offset syncs are read back from the source's syncs topic when a runner starts, so groups
committed before a restart still translate (MM2's ``OffsetSyncStore`` reads the topic too).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable

from loguru import logger
from rillet.connectors.mirror.eos import TargetOffsets, transactional_id
from rillet.connectors.mirror.policy import (
    HEARTBEATS_TOPIC,
    DefaultReplicationPolicy,
    Flow,
    OffsetSync,
    configs_to_sync,
    should_emit_sync,
    sync_points,
    translate_offset,
)
from rillet.connectors.mirror.state import FlowStates

from rillet import Admin, Consumer, Producer
from rillet.records import NewTopic, TopicPartition

SYNCS_KEPT = 64
#: records per poll, so per flush + progress commit (or per transaction): each poll pays two
#: round trips (B's acks, the commit on A), which at the consumer's default 500 cost more than
#: the copying (bench/README.md, "Mirror"). Also the duplicates a crash can leave without
#: exactly-once: at most one poll.
POLL_RECORDS = 2000


def progress_group(flow: Flow) -> str:
    return f"mm2-{flow.source}->{flow.target}"


class FlowRunner:
    def __init__(self, flow: Flow, policy: DefaultReplicationPolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.flow, self.policy, self.clock = flow, policy, clock
        # each client's settings: mm2.properties' per-cluster keys (connectors/mirror/clients.py)
        self.src_admin = Admin(flow.client("source", "admin"))
        self.dst_admin = Admin(flow.client("target", "admin"))
        records = flow.client("source", "consumer", enable_auto_commit="false")
        records.setdefault("max.poll.records", str(POLL_RECORDS))
        self.consumer = Consumer(records)
        pconf = flow.client("target", "producer")
        self.eos: TargetOffsets | None = None
        if flow.exactly_once:
            self.eos = TargetOffsets(flow.source, flow.client("target", "consumer"))
            self.producer = Producer({**pconf, "transactional.id": transactional_id(
                flow.source, flow.target)})
            self.meta_producer = Producer(pconf)      # checkpoints, heartbeats: no transaction
        else:
            self.producer = self.meta_producer = Producer(pconf)
        self.sync_producer = Producer(flow.client("source", "producer"))
        self.partitions: dict[str, int] = {}          # mirrored source topic -> partitions
        self._remotes: dict[str, str] = {}            # source topic -> remote topic name
        self.syncs: dict[TopicPartition, deque[OffsetSync]] = {}
        self.next_refresh = self.next_checkpoint = self.next_heartbeat = 0.0
        self.checkpoints: dict[str, dict[TopicPartition, int]] = {}

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
                           self.policy.format_remote_topic(self.flow.source, topic),
                           self.flow.target)
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
            remote = self.policy.format_remote_topic(self.flow.source, topic)
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

    def _assign(self) -> None:
        tps = [TopicPartition(t, p) for t, n in self.partitions.items() for p in range(n)]
        self.consumer.assign(tps)
        committed = self.src_admin.list_consumer_group_offsets(progress_group(self.flow), tps)
        if self.eos is not None:  # the target's transactional progress wins
            committed.update({tp: o for tp, o in self.eos.next_offsets.items() if tp in tps})
        for tp in tps:
            if tp in committed:
                self.consumer.seek(tp, committed[tp])
            else:
                self.consumer.seek_to_beginning(tp)

    # -- records ---------------------------------------------------------------------------

    def mirror_once(self, timeout_ms: int = 200) -> int:
        records = self.consumer.poll(timeout_ms=timeout_ms)
        if not records:
            return 0
        if self.eos is not None:
            return self._mirror_transaction(records)
        sent = self._send_poll(records)
        self.producer.flush()
        commits = {tp: rs[-1].offset + 1 for tp, (rs, _) in sent.items()}
        self._emit_syncs(sent)
        self.sync_producer.flush()
        self.src_admin.alter_consumer_group_offsets(progress_group(self.flow), commits)
        return sum(len(rs) for rs, _ in sent.values())

    def _mirror_transaction(self, records: dict) -> int:
        """One poll's copies and the flow's progress as one transaction on the target; the
        offset syncs (on the source) only after it committed, so they name committed copies."""
        self.producer.begin_transaction()
        sent = self._send_poll(records)
        commits = {tp: rs[-1].offset + 1 for tp, (rs, _) in sent.items()}
        self.eos.write(self.producer, commits)
        # an error here leaves the transaction open: the runner is rebuilt, and the new
        # producer's init_transactions aborts it and resumes from the committed progress
        self.producer.commit_transaction()
        self.eos.committed(commits)
        self._emit_syncs(sent)
        self.sync_producer.flush()
        self.src_admin.alter_consumer_group_offsets(progress_group(self.flow), commits)
        return sum(len(rs) for rs, _ in sent.values())

    def _send_poll(self, records: dict) -> dict[TopicPartition, tuple[list, list]]:
        """Send one poll's records (grouped by source partition, as poll returns them) to
        their remote topics, same partition; per source partition the records and futures."""
        send, remotes, sent = self.producer.send, self._remotes, {}
        for tp, rs in records.items():
            remote = remotes.get(tp.topic)
            if remote is None:
                remote = remotes[tp.topic] = self.policy.format_remote_topic(
                    self.flow.source, tp.topic)
            part = tp.partition
            sent[tp] = (rs, [send(remote, r.value, r.key, r.headers or None, part, r.timestamp)
                             for r in rs])
        return sent

    def _emit_syncs(self, sent: dict[TopicPartition, tuple[list, list]]) -> None:
        """The offset syncs of sent records (futures done). A partition's run whose offsets
        are contiguous on both sides (the usual case) is computed from its ends only."""
        for tp, (rs, futs) in sent.items():
            n = len(rs)
            u0, d0 = rs[0].offset, futs[0].get().offset
            if rs[-1].offset - u0 == n - 1 and futs[-1].get().offset - d0 == n - 1:
                kept = self.syncs.get(tp)
                for u, d in sync_points(kept[-1] if kept else None, u0, d0, n,
                                        self.flow.offset_lag_max):
                    self._add_sync(tp, u, d)
            else:  # gaps (compaction, transaction markers on A): every record is looked at
                for r, fut in zip(rs, futs, strict=True):
                    self._maybe_sync(tp, r.offset, fut.get().offset)

    def load_syncs(self) -> None:
        """Read the offset syncs written before this runner started (the syncs topic on the
        source), keeping the latest SYNCS_KEPT per partition."""
        from rillet.connectors.mirror.remote import _read_all

        for r in _read_all(self.flow.client("source", "consumer"),
                           self.policy.offset_syncs_topic(self.flow.target), timeout_s=60):
            try:
                topic, partition = json.loads(r.key)
                upstream, downstream = json.loads(r.value)
                sync = OffsetSync(str(topic), int(partition), int(upstream), int(downstream))
            except (ValueError, TypeError, UnicodeDecodeError):
                continue  # not a sync of ours: ignored, never fatal
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
        self.sync_producer.send(
            self.policy.offset_syncs_topic(self.flow.target),
            json.dumps([upstream, downstream]).encode(),
            json.dumps([tp.topic, tp.partition]).encode())

    # -- checkpoints and heartbeats --------------------------------------------------------

    def emit_checkpoints(self) -> None:
        topic = self.policy.checkpoints_topic(self.flow.source)
        for listing in self.src_admin.list_groups():
            group = listing.group_id
            if group.startswith("mm2-") or not self.flow.wants_group(group):
                continue
            translated: dict[TopicPartition, int] = {}
            for tp, committed in self.src_admin.list_consumer_group_offsets(group).items():
                if tp.topic not in self.partitions:
                    continue
                to = translate_offset(self.syncs.get(tp, ()), committed)
                if to is None:
                    continue
                remote = TopicPartition(
                    self.policy.format_remote_topic(self.flow.source, tp.topic), tp.partition)
                translated[remote] = to
                self.meta_producer.send(topic, json.dumps(
                    {"upstream": committed, "downstream": to}).encode(),
                    json.dumps([group, remote.topic, remote.partition]).encode())
            if not translated:
                continue
            self.checkpoints[group] = translated
            if self.flow.sync_group_offsets and self._inactive_on_target(group):
                self.dst_admin.alter_consumer_group_offsets(group, translated)
        self.meta_producer.flush()

    def _inactive_on_target(self, group: str) -> bool:
        states = {g.group_id: g.state for g in self.dst_admin.list_groups()}
        return states.get(group, "Empty").lower() in ("empty", "dead")

    def emit_heartbeat(self) -> None:
        self.meta_producer.send(HEARTBEATS_TOPIC, json.dumps(
            {"source": self.flow.source, "target": self.flow.target,
             "timestamp": int(time.time() * 1000)}).encode(),
            json.dumps([self.flow.source, self.flow.target]).encode())

    def ensure_internal_topics(self) -> None:
        for admin, names in ((self.src_admin,
                              [self.policy.offset_syncs_topic(self.flow.target)]),
                             (self.dst_admin, [self.policy.checkpoints_topic(self.flow.source),
                                               HEARTBEATS_TOPIC])):
            have = set(admin.list_topics(include_internal=True))
            new = [NewTopic(n, 1) for n in names if n not in have]
            if new:
                admin.create_topics(new)

    def start(self) -> None:
        """Internal topics, the offset syncs so far, and with exactly-once the fencing of any
        older instance of this flow and the progress committed on the target."""
        self.ensure_internal_topics()
        self.load_syncs()
        if self.eos is not None:
            self.eos.ensure_topic(self.dst_admin)
            self.producer.init_transactions()
            self.eos.load()

    def step(self) -> int:
        now = self.clock()
        if now >= self.next_refresh:
            self.refresh_topics()
            self.next_refresh = now + self.flow.refresh_topics_interval_s
        moved = self.mirror_once() if self.partitions else 0
        if now >= self.next_checkpoint:
            self.emit_checkpoints()
            self.next_checkpoint = now + self.flow.emit_checkpoints_interval_s
        if now >= self.next_heartbeat:
            self.emit_heartbeat()
            self.next_heartbeat = now + self.flow.emit_heartbeats_interval_s
        return moved

    def close(self) -> None:
        for c in {id(c): c for c in (self.producer, self.meta_producer, self.sync_producer,
                                     self.consumer)}.values():
            c.close()


def run_flows(flows: list[Flow], policy: DefaultReplicationPolicy,
              stop: Callable[[], bool] = lambda: False, retry_s: float = 1.0,
              states: FlowStates | None = None) -> None:
    """Run every flow until ``stop()``; a cluster that is down is retried with back-off.
    ``states`` hears each flow's transitions (``rillet mirror status`` reads them)."""
    states = states or FlowStates(None)
    runners: dict[int, FlowRunner] = {}
    backoff = {i: retry_s for i in range(len(flows))}
    retry_at = {i: 0.0 for i in range(len(flows))}
    try:
        while not stop():
            idle = True
            for i, flow in enumerate(flows):
                if time.monotonic() < retry_at[i]:
                    continue
                name = f"{flow.source}->{flow.target}"
                try:
                    if i not in runners:
                        states.set(name, "starting")
                        runner = FlowRunner(flow, policy)
                        try:
                            runner.start()
                        except BaseException:
                            runner.close()
                            raise
                        runners[i] = runner
                    if runners[i].step():
                        idle = False
                    states.set(name, "running")
                    states.stepped(name)
                    backoff[i] = retry_s
                except Exception as exc:  # noqa: BLE001 - a cluster away: retry, never exit
                    logger.warning("mirror {}: {} (retrying in {:.1f}s)", name, exc, backoff[i])
                    states.set(name, "retrying", f"{type(exc).__name__}: {exc}"[:500],
                               backoff[i])
                    stale = runners.pop(i, None)
                    if stale is not None:
                        try:
                            stale.close()
                        except Exception:  # noqa: BLE001
                            pass
                    retry_at[i] = time.monotonic() + backoff[i]
                    backoff[i] = min(backoff[i] * 2, 30.0)
            if idle:
                time.sleep(0.05)  # nothing to move: do not spin
    finally:
        for r in runners.values():
            r.close()
