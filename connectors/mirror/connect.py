"""MirrorMaker 2's three connectors, run by a rillet Connect worker (docs/mirror.md,
"Connector mode"): ``MirrorSourceConnector`` (records A -> B and the offset syncs),
``MirrorCheckpointConnector`` (group offsets translated into ``A.checkpoints.internal``, and
with ``sync.group.offsets.enabled`` committed into B's idle groups) and
``MirrorHeartbeatConnector`` (``heartbeats``), configured with MM2's connector keys::

    {"name": "A->B", "config": {
        "connector.class": "MirrorSourceConnector",
        "source.cluster.alias": "A", "target.cluster.alias": "B",
        "source.cluster.bootstrap.servers": "127.0.0.1:9092",
        "target.cluster.bootstrap.servers": "127.0.0.1:9192",
        "topics": "orders.*", "source.cluster.security.protocol": "CURVE", ...}}

The worker runs on the *target* cluster (as MM2's Connect cluster does): the records, the
checkpoints and heartbeats are produced by the worker's producer to its cluster, and the
source offsets (``{"cluster", "topic", "partition"}`` -> ``{"offset": last copied}``, MM2's
layout) live in the worker's ``connect-offsets``. So pause, resume, restart, delete, the
offsets API and exactly-once (the worker's ``exactly.once.source.support=enabled``: records
and offsets in one transaction) are the worker's, as for any connector.

The work itself is the dedicated loop's code: :class:`.source.MirrorSource` (topics, the
records' consumer, offset syncs) and :mod:`.checkpoints`. A connector config is turned into
the mm2.properties of one flow (:func:`flow_properties`) and checked by the same parser, so
every client key of docs/mirror.md works here with ``source.cluster.``/``target.cluster.``
in place of ``A.``/``B.``.

Threads: each task object is driven by its task actor (one thread at a time).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rillet.connectors.api import ExactlyOnceSupport, SourceConnector, SourceRecord, SourceTask
from rillet.connectors.config import CONNECTOR_DEF
from rillet.connectors.mirror.checkpoints import (
    SyncReader,
    by_group,
    checkpoint_record,
    heartbeat_record,
    sync_group_offsets,
    translate_groups,
)
from rillet.connectors.mirror.policy import (
    HEARTBEATS_TOPIC,
    DefaultReplicationPolicy,
    Flow,
    MirrorConfigError,
    parse_mirror_config,
)
from rillet.connectors.mirror.runner import progress_group
from rillet.connectors.mirror.source import MirrorSource, ensure_topic

from rillet import Admin
from rillet.records import TopicPartition

#: MM2's connector keys that become global keys of the flow's mm2.properties
GLOBAL = ("replication.policy.class", "replication.policy.separator",
          "sync.topic.configs.enabled", "emit.checkpoints.interval.seconds",
          "emit.heartbeats.interval.seconds", "sync.group.offsets.enabled",
          "refresh.topics.interval.seconds", "offset.lag.max")
#: ... and those that become the flow's (``A->B.topics``)
FLOW = ("topics", "topics.exclude", "groups", "groups.exclude")
ALIASES = ("source.cluster.alias", "target.cluster.alias")
SIDES = {"source.cluster.": "source", "target.cluster.": "target"}
BYTES = {"bytes", "org.apache.kafka.connect.converters.ByteArrayConverter"}


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def flow_properties(config: Mapping[str, Any]) -> dict[str, str]:
    """The mm2.properties of the connector's one flow ``source->target``. Raises
    MirrorConfigError naming the connector key for a key that is neither Connect's nor
    MM2's."""
    s = _text(config.get("source.cluster.alias") or "source")
    t = _text(config.get("target.cluster.alias") or "target")
    props = {"clusters": f"{s}, {t}", f"{s}->{t}.enabled": "true"}
    alias = {"source": s, "target": t}
    for key, value in config.items():
        if value is None or key in ALIASES:
            continue
        if key in FLOW:
            if _text(value):
                props[f"{s}->{t}.{key}"] = _text(value)
        elif key in GLOBAL:
            props[key] = _text(value)
        elif key.startswith(tuple(SIDES)):
            prefix = key[:15]
            props[f"{alias[SIDES[prefix]]}.{key[15:]}"] = _text(value)
        elif not CONNECTOR_DEF.knows(key):
            import difflib

            known = [*GLOBAL, *FLOW, *ALIASES, "source.cluster.bootstrap.servers",
                     "target.cluster.bootstrap.servers", *CONNECTOR_DEF.keys]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise MirrorConfigError(f"unknown key {key!r}{hint}")
    return props


def _connector_names(message: str, s: str, t: str) -> str:
    """A parser message about ``'A.producer.x'`` in the connector's words
    (``'source.cluster.producer.x'``)."""
    return (message.replace(f"'{s}->{t}.", "'").replace(f"'{s}.", "'source.cluster.")
            .replace(f"'{t}.", "'target.cluster."))


def flow_of(config: Mapping[str, Any]) -> tuple[Flow, DefaultReplicationPolicy]:
    """The connector's flow and replication policy (MirrorConfigError if it cannot run)."""
    props = flow_properties(config)
    s, t = (p.strip() for p in props["clusters"].split(","))
    for side, alias in (("source", s), ("target", t)):
        if not props.get(f"{alias}.bootstrap.servers"):
            raise MirrorConfigError(f"{side}.cluster.bootstrap.servers is required")
    try:
        parsed = parse_mirror_config(props)
    except MirrorConfigError as e:
        raise MirrorConfigError(_connector_names(str(e), s, t)) from None
    flow = parsed.flows[0]
    return flow, parsed.policy


class _MirrorConnector(SourceConnector):
    #: the records are copied as bytes; a connector config may not set other converters
    default_config = {"key.converter": "bytes", "value.converter": "bytes"}
    #: no ``__connect.source`` header on the copies (and so no dedup scan: at-least-once
    #: without exactly.once.source.support, as MM2)
    source_markers = False

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        problems = []
        for which in ("key.converter", "value.converter"):
            if config.get(which) and str(config[which]) not in BYTES:
                problems.append(f"{which} must be bytes (ByteArrayConverter): the mirror "
                                f"copies records byte for byte, got {config[which]!r}")
        try:
            flow_of(config)
        except MirrorConfigError as e:
            problems.append(str(e))
        return problems

    def start(self, config: dict[str, Any]) -> None:
        flow_of(config)
        self.config = dict(config)

    def task_configs(self, max_tasks: int) -> list[dict[str, Any]]:
        return [dict(self.config)]  # one task per flow, as the dedicated loop

    def exactly_once_support(self, config: Mapping[str, Any] | None = None
                             ) -> ExactlyOnceSupport | None:
        return ExactlyOnceSupport.SUPPORTED


class MirrorSourceTask(SourceTask):
    """Polls the source's mirrored partitions; the worker produces the copies to the same
    partition of the remote topic. Offset syncs follow the worker's acks (commit_record)."""

    def start(self, config: dict[str, Any]) -> None:
        self.flow, self.policy = flow_of(config)
        reader = self.context.offset_storage_reader
        alias = self.flow.source

        def start_offsets(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
            out = {}
            for tp in tps:
                stored = reader.offset(source_partition(alias, tp))
                if stored and isinstance(stored.get("offset"), int):
                    out[tp] = stored["offset"] + 1
            return out

        self.source = MirrorSource(self.flow, self.policy, start_offsets)
        self.source.ensure_syncs_topic()
        self.source.load_syncs()
        self.next_refresh = 0.0
        self.parts: dict[TopicPartition, dict[str, Any]] = {}
        #: id(source partition dict) -> (partition, upstream offsets, downstream offsets) of
        #: the records acknowledged since the last poll
        self.acked: dict[int, tuple[TopicPartition, list[int], list[int]]] = {}

    def poll(self) -> list[SourceRecord]:
        self._emit_syncs()
        now = time.monotonic()
        if now >= self.next_refresh:
            self.source.refresh_topics()
            self.next_refresh = now + self.flow.refresh_topics_interval_s
        out = []
        remote_topic = self.source.remote_topic
        for tp, rs in self.source.poll(timeout_ms=100).items():
            part = self.parts.get(tp)
            if part is None:  # one dict per partition: the worker keys its offsets by it
                part = self.parts[tp] = source_partition(self.flow.source, tp)
            remote, p = remote_topic(tp.topic), tp.partition
            out.extend(SourceRecord(part, {"offset": r.offset}, remote, p, r.key, r.value,
                                    tuple(r.headers or ()), r.timestamp) for r in rs)
        return out

    def idle_wait_ms(self) -> int:
        return 50  # poll already waited up to 100 ms for records

    def commit_record(self, record: SourceRecord, metadata: Any) -> None:
        if metadata is None:
            return
        # per record: the source partition dict is the same object for all records of a
        # partition (self.parts keeps it alive), so its id finds the partition's lists
        acked = self.acked.get(id(record.source_partition))
        if acked is None:
            part = record.source_partition
            acked = self.acked[id(part)] = (TopicPartition(part["topic"], part["partition"]),
                                            [], [])
        acked[1].append(record.source_offset["offset"])
        acked[2].append(metadata.offset)

    def _emit_syncs(self) -> None:
        acked, self.acked = self.acked, {}
        for tp, ups, downs in acked.values():
            self.source.emit_syncs(tp, len(ups), ups.__getitem__, downs.__getitem__)
        if acked:
            self.source.sync_producer.flush()
            # the flow's group on the source follows the stored offsets (commit_record comes
            # after them), so `rillet group describe mm2-A->B` shows the lag as in the
            # dedicated mode
            self.source.src_admin.alter_consumer_group_offsets(
                progress_group(self.flow), {tp: ups[-1] + 1 for tp, ups, _ in acked.values()})

    def stop(self) -> None:
        source = getattr(self, "source", None)
        if source is None:
            return
        try:
            self._emit_syncs()
        finally:
            source.close()


def source_partition(alias: str, tp: TopicPartition) -> dict[str, Any]:
    """MM2's source partition of a mirrored partition (``MirrorUtils.wrapPartition``)."""
    return {"cluster": alias, "partition": tp.partition, "topic": tp.topic}


class MirrorSourceConnector(_MirrorConnector):
    def task_class(self) -> type[SourceTask]:
        return MirrorSourceTask


class _PeriodicTask(SourceTask):
    """A task that emits every ``interval_s``; between, poll returns nothing."""

    interval_s = 1.0

    def start(self, config: dict[str, Any]) -> None:
        self.flow, self.policy = flow_of(config)
        self.next_at = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self.next_at:
            return False
        self.next_at = now + self.interval_s
        return True

    def idle_wait_ms(self) -> int:
        return max(10, min(1000, int((self.next_at - time.monotonic()) * 1000)))


class MirrorCheckpointTask(_PeriodicTask):
    def start(self, config: dict[str, Any]) -> None:
        super().start(config)
        self.interval_s = self.flow.emit_checkpoints_interval_s
        self.topic = self.policy.checkpoints_topic(self.flow.source)
        self.src_admin = Admin(self.flow.client("source", "admin"))
        self.dst_admin = Admin(self.flow.client("target", "admin"))
        ensure_topic(self.dst_admin, self.topic)
        # the syncs topic may not exist yet (the source connector creates it too): reading
        # a missing topic would wait request.timeout.ms
        ensure_topic(self.src_admin, self.policy.offset_syncs_topic(self.flow.target))
        self.syncs = SyncReader(self.flow.client("source", "consumer"),
                                self.policy.offset_syncs_topic(self.flow.target))

    def poll(self) -> list[SourceRecord]:
        if not self.due():
            return []
        self.syncs.update()
        flow, policy = self.flow, self.policy
        cps = translate_groups(flow, policy, self.src_admin, self.syncs.of,
                               lambda topic: flow.wants_topic(policy, topic))
        if flow.sync_group_offsets:
            sync_group_offsets(self.dst_admin, by_group(cps))
        out = []
        for cp in cps:
            key, value = checkpoint_record(cp)
            group, remote = cp[0], cp[1]
            out.append(SourceRecord({"group": group, "topic": remote.topic,
                                     "partition": remote.partition}, {"offset": cp[3]},
                                    self.topic, 0, key, value))
        return out

    def stop(self) -> None:
        for c in ("syncs", "src_admin", "dst_admin"):
            if hasattr(self, c):
                getattr(self, c).close()


class MirrorCheckpointConnector(_MirrorConnector):
    def task_class(self) -> type[SourceTask]:
        return MirrorCheckpointTask


class MirrorHeartbeatTask(_PeriodicTask):
    def start(self, config: dict[str, Any]) -> None:
        super().start(config)
        self.interval_s = self.flow.emit_heartbeats_interval_s
        with Admin(self.flow.client("target", "admin")) as admin:
            ensure_topic(admin, HEARTBEATS_TOPIC)

    def poll(self) -> list[SourceRecord]:
        if not self.due():
            return []
        now_ms = int(time.time() * 1000)
        topic, key, value = heartbeat_record(self.flow, now_ms)
        return [SourceRecord({"sourceClusterAlias": self.flow.source,
                              "targetClusterAlias": self.flow.target}, {"offset": 0},
                             topic, 0, key, value, (), now_ms)]


class MirrorHeartbeatConnector(_MirrorConnector):
    def task_class(self) -> type[SourceTask]:
        return MirrorHeartbeatTask
