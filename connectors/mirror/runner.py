"""The shell that runs one replication flow ``source->target`` with the rillet clients.

One ``FlowRunner`` per flow, driven by ``run_flows`` on the calling thread: it is the mirror
source (records A -> B, key/value/headers/timestamp kept, partition kept when counts match),
the checkpoint emitter (group offsets translated through offset syncs) and the heartbeat
emitter. All decisions come from :mod:`connectors.mirror.policy`; the topics, the records'
consumer and the offset syncs are :class:`.source.MirrorSource`, checkpoints and heartbeats
:mod:`.checkpoints`, the same code the Connect connectors run (:mod:`.connect`).

Delivery: the source position is committed (group ``mm2-<source>-><target>`` on the source)
only after the producer flushed, so a crash re-mirrors at most the records since the last
commit (at-least-once: fewer than COMMIT_RECORDS + one poll); a kill loses nothing. With
``exactly.once.support = enabled`` the copies of up to COMMIT_RECORDS and the progress are
one transaction on the target (:mod:`.eos`), and the run
resumes from the progress stored there; the group on the source is then only for ``status``.

Offset syncs are read back from the source's syncs topic when a runner starts, so groups
committed before a restart still translate (MM2's ``OffsetSyncStore`` reads the topic too).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loguru import logger
from rillet.connectors.mirror.checkpoints import (
    by_group,
    checkpoint_record,
    heartbeat_record,
    sync_group_offsets,
    translate_groups,
)
from rillet.connectors.mirror.eos import TargetOffsets, transactional_id
from rillet.connectors.mirror.policy import HEARTBEATS_TOPIC, DefaultReplicationPolicy, Flow
from rillet.connectors.mirror.source import POLL_RECORDS, SYNCS_KEPT, MirrorSource
from rillet.connectors.mirror.state import FlowStates

from rillet import Producer
from rillet._send_many import send_many
from rillet.records import NewTopic, TopicPartition

__all__ = ["POLL_RECORDS", "SYNCS_KEPT", "COMMIT_RECORDS", "FlowRunner", "progress_group",
           "run_flows"]

#: records per progress commit (at-least-once: one flush of B's acks and one commit on A;
#: exactly-once: one transaction): a poll and the further polls the consumer already holds,
#: up to this many. Each commit costs round trips (the flush and the commit on A; a
#: transaction's AddPartitionsToTxn, EndTxn and markers) that at one poll (2,000) per commit
#: cost more than the copying (bench/README.md, "Mirror"). Also the bound on the duplicates
#: a crash can leave at-least-once (Kafka's MM2 commits every offset.flush.interval.ms,
#: 10 s), and what a read_committed reader on B waits for, a few ms at these rates.
COMMIT_RECORDS = 10_000


def progress_group(flow: Flow) -> str:
    return f"mm2-{flow.source}->{flow.target}"


class FlowRunner:
    """One flow in the dedicated loop: a :class:`MirrorSource` (topics, the records'
    consumer, offset syncs) whose records this runner's producer copies, plus checkpoints and
    heartbeats (:mod:`.checkpoints`)."""

    def __init__(self, flow: Flow, policy: DefaultReplicationPolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.flow, self.policy, self.clock = flow, policy, clock
        self.eos: TargetOffsets | None = None
        if flow.exactly_once:
            self.eos = TargetOffsets(flow.source, flow.client("target", "consumer"))
        self.source = MirrorSource(flow, policy, self._start_offsets)
        self.src_admin, self.dst_admin = self.source.src_admin, self.source.dst_admin
        pconf = flow.client("target", "producer")
        if self.eos is not None:
            self.producer = Producer({**pconf, "transactional.id": transactional_id(
                flow.source, flow.target)})
            self.meta_producer = Producer(pconf)      # checkpoints, heartbeats: no transaction
        else:
            self.producer = self.meta_producer = Producer(pconf)
        self.next_refresh = self.next_checkpoint = self.next_heartbeat = 0.0
        self.checkpoints: dict[str, dict[TopicPartition, int]] = {}

    @property
    def partitions(self) -> dict[str, int]:
        return self.source.partitions

    def _start_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        committed = self.src_admin.list_consumer_group_offsets(progress_group(self.flow), tps)
        if self.eos is not None:  # the target's transactional progress wins
            committed.update({tp: o for tp, o in self.eos.next_offsets.items() if tp in tps})
        return committed

    def refresh_topics(self) -> None:
        self.source.refresh_topics()

    # -- records ---------------------------------------------------------------------------

    def mirror_once(self, timeout_ms: int = 200) -> int:
        records = self.source.poll(timeout_ms=timeout_ms)
        if not records:
            return 0
        if self.eos is not None:
            return self._mirror_transaction(records)
        polls, commits, moved = self._send_fetched(records)
        self.producer.flush()
        for sent in polls:
            self._emit_syncs(sent)
        self.source.sync_producer.flush()
        self.src_admin.alter_consumer_group_offsets(progress_group(self.flow), commits)
        return moved

    def _mirror_transaction(self, records: dict) -> int:
        """The copies and the flow's progress as one transaction on the target; the offset
        syncs (on the source) only after it committed, so they name committed copies."""
        self.producer.begin_transaction()
        polls, commits, moved = self._send_fetched(records)
        self.eos.write(self.producer, commits)
        # an error here leaves the transaction open: the runner is rebuilt, and the new
        # producer's init_transactions aborts it and resumes from the committed progress
        self.producer.commit_transaction()
        self.eos.committed(commits)
        for sent in polls:
            self._emit_syncs(sent)
        self.source.sync_producer.flush()
        self.src_admin.alter_consumer_group_offsets(progress_group(self.flow), commits)
        return moved

    def _send_fetched(self, records: dict) -> tuple[list, dict[TopicPartition, int], int]:
        """Send ``records`` and the further polls the consumer already holds (no waiting)
        until COMMIT_RECORDS are sent: one flush and progress commit (or one transaction)
        then covers them all. Returns each poll's sends, the progress (source partition ->
        next offset to copy) and the number of records."""
        polls, commits, moved = [], {}, 0
        while True:
            sent = self._send_poll(records)
            polls.append(sent)
            for tp, (rs, *_) in sent.items():
                commits[tp] = rs[-1].offset + 1
                moved += len(rs)
            if moved >= COMMIT_RECORDS:
                return polls, commits, moved
            records = self.source.poll(timeout_ms=0)  # what the fetcher already holds
            if not records:
                return polls, commits, moved

    def _send_poll(self, records: dict) -> dict[TopicPartition, tuple[list, list, list]]:
        """Send one poll's records (grouped by source partition, as poll returns them) to
        their remote topics, same partition, a partition's run at once (``send_many``: the
        producer's lock and checks once per batch, not per record); per source partition the
        records, one future per batch written and each batch's index of its first record."""
        producer, remote_topic, sent = self.producer, self.source.remote_topic, {}
        for tp, rs in records.items():
            # the records are tuples (topic, partition, offset, timestamp, key, value,
            # headers): their columns in one C-level transpose
            _, _, _, timestamps, keys, values, headers = zip(*rs, strict=False)
            starts: list[int] = []
            futs = send_many(producer, remote_topic(tp.topic), tp.partition, keys, values,
                             timestamps, headers if any(headers) else None, starts)
            sent[tp] = (rs, futs, starts)
        return sent

    def _emit_syncs(self, sent: dict[TopicPartition, tuple[list, list, list]]) -> None:
        """The offset syncs of what was sent; raises the first failed batch's error (every
        batch is checked, so a failure is never committed as progress)."""
        for tp, (rs, futs, starts) in sent.items():
            self.source.emit_syncs(tp, len(rs), lambda i, rs=rs: rs[i][2],
                                   downstream_offsets(futs, starts, len(rs)))

    # -- checkpoints and heartbeats --------------------------------------------------------

    def emit_checkpoints(self) -> None:
        topic = self.policy.checkpoints_topic(self.flow.source)
        cps = translate_groups(self.flow, self.policy, self.src_admin,
                               lambda tp: self.source.syncs.get(tp, ()),
                               self.source.partitions.__contains__)
        for cp in cps:
            key, value = checkpoint_record(cp)
            self.meta_producer.send(topic, value, key)
        translated = by_group(cps)
        self.checkpoints.update(translated)
        if self.flow.sync_group_offsets:
            sync_group_offsets(self.dst_admin, translated)
        self.meta_producer.flush()

    def emit_heartbeat(self) -> None:
        topic, key, value = heartbeat_record(self.flow, int(time.time() * 1000))
        self.meta_producer.send(topic, value, key)

    def ensure_internal_topics(self) -> None:
        self.source.ensure_syncs_topic()
        have = set(self.dst_admin.list_topics(include_internal=True))
        new = [NewTopic(n, 1) for n in (self.policy.checkpoints_topic(self.flow.source),
                                        HEARTBEATS_TOPIC) if n not in have]
        if new:
            self.dst_admin.create_topics(new)

    def start(self) -> None:
        """Internal topics, the offset syncs so far, and with exactly-once the fencing of any
        older instance of this flow and the progress committed on the target."""
        self.ensure_internal_topics()
        self.source.load_syncs()
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
        for c in {id(c): c for c in (self.producer, self.meta_producer)}.values():
            c.close()
        self.source.close()


def downstream_offsets(futs: list, starts: list[int], n: int) -> Callable[[int], int]:
    """``downstream(i)``: the target offset of the i-th of ``n`` records that ``send_many``
    wrote as ``futs``/``starts`` (waits for every batch; raises a failed batch's error). The
    first and last from the batches' ends; any other from a list made on first need (only
    when the run has gaps: offset syncs then look at every record)."""
    spans = []
    for fut, start in zip(futs, starts, strict=True):
        last = fut.get().offset
        spans.append((last - (fut[1] - start), last))
    if sum(b - a + 1 for a, b in spans) != n:
        raise RuntimeError(f"mirror: {n} records sent but the batches hold "
                           f"{sum(b - a + 1 for a, b in spans)}")
    every: list[int] = []

    def downstream(i: int) -> int:
        if i == 0:
            return spans[0][0]
        if i == n - 1:
            return spans[-1][1]
        if not every:
            every.extend(o for a, b in spans for o in range(a, b + 1))
        return every[i]

    return downstream


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
