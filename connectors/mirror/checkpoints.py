"""Checkpoints and heartbeats of a flow, shared by the dedicated loop (:mod:`.runner`) and
the MirrorCheckpointConnector / MirrorHeartbeatConnector tasks (:mod:`.connect`).

A checkpoint says: group G committed ``upstream`` on the source's ``t-p``, which is
``downstream`` on the target's remote ``A.t-p`` (translated through the offset syncs,
:func:`policy.translate_offset`). It is a record of ``<source>.checkpoints.internal`` on the
target, key ``[group, remote topic, partition]``, value ``{"upstream", "downstream"}``
(read back by ``remote.translate_offsets``). A heartbeat is a record of ``heartbeats`` on
the target, key ``[source, target]``, value ``{"source", "target", "timestamp"}``.

The dedicated loop knows the syncs it wrote; a checkpoint task reads them from the syncs
topic (:class:`SyncReader`, as MM2's ``OffsetSyncStore``).

Threads: one thread at a time.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable

from rillet.connectors.mirror.policy import (
    HEARTBEATS_TOPIC,
    DefaultReplicationPolicy,
    Flow,
    OffsetSync,
    translate_offset,
)

from rillet import Admin, Consumer
from rillet.records import TopicPartition

#: one checkpoint: (group, remote partition on the target, upstream, downstream)
Checkpoint = tuple[str, TopicPartition, int, int]


def translate_groups(flow: Flow, policy: DefaultReplicationPolicy, src_admin: Admin,
                     syncs: Callable[[TopicPartition], Iterable[OffsetSync]],
                     mirrored: Callable[[str], bool]) -> list[Checkpoint]:
    """The checkpoints of every group of the flow (``groups``, not the mirror's own
    ``mm2-*``) whose committed offsets on a mirrored topic (``mirrored(topic)``) translate."""
    out: list[Checkpoint] = []
    for listing in src_admin.list_groups():
        group = listing.group_id
        if group.startswith("mm2-") or not flow.wants_group(group):
            continue
        for tp, committed in src_admin.list_consumer_group_offsets(group).items():
            if not mirrored(tp.topic):
                continue
            to = translate_offset(syncs(tp), committed)
            if to is None:
                continue
            remote = TopicPartition(policy.format_remote_topic(flow.source, tp.topic),
                                    tp.partition)
            out.append((group, remote, committed, to))
    return out


def checkpoint_record(cp: Checkpoint) -> tuple[bytes, bytes]:
    """(key, value) of one checkpoint record."""
    group, remote, upstream, downstream = cp
    return (json.dumps([group, remote.topic, remote.partition]).encode(),
            json.dumps({"upstream": upstream, "downstream": downstream}).encode())


def by_group(checkpoints: Iterable[Checkpoint]) -> dict[str, dict[TopicPartition, int]]:
    out: dict[str, dict[TopicPartition, int]] = {}
    for group, remote, _, downstream in checkpoints:
        out.setdefault(group, {})[remote] = downstream
    return out


def sync_group_offsets(dst_admin: Admin, translated: dict[str, dict[TopicPartition, int]]
                       ) -> None:
    """``sync.group.offsets.enabled``: commit the translated offsets into the target's groups
    that have no active member there (an active group's own commits win)."""
    if not translated:
        return
    states = {g.group_id: g.state for g in dst_admin.list_groups()}
    for group, offsets in translated.items():
        if states.get(group, "Empty").lower() in ("empty", "dead"):
            dst_admin.alter_consumer_group_offsets(group, offsets)


def heartbeat_record(flow: Flow, now_ms: int) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of one heartbeat of the flow."""
    return (HEARTBEATS_TOPIC, json.dumps([flow.source, flow.target]).encode(),
            json.dumps({"source": flow.source, "target": flow.target,
                        "timestamp": now_ms}).encode())


class SyncReader:
    """The offset syncs of a flow as written so far, read incrementally from the syncs topic
    on the source (the latest ``kept`` per partition)."""

    def __init__(self, consumer_config: dict[str, str], topic: str, kept: int = 64) -> None:
        self.topic, self.kept = topic, kept
        self.consumer = Consumer({**consumer_config, "enable.auto.commit": "false",
                                  "isolation.level": "read_uncommitted"})
        self.syncs: dict[TopicPartition, deque[OffsetSync]] = {}
        self._assigned: list[TopicPartition] = []

    def update(self, timeout_s: float = 10.0) -> None:
        """Read what was appended since the last call, up to the log end at call time."""
        import time

        from rillet.connectors.mirror.source import parse_sync

        if not self._assigned:
            parts = sorted(self.consumer.partitions_for_topic(self.topic) or ())
            if not parts:
                return  # no sync yet: the source connector has not copied anything
            self._assigned = [TopicPartition(self.topic, p) for p in parts]
            self.consumer.assign(self._assigned)
            self.consumer.seek_to_beginning(*self._assigned)
        end = self.consumer.end_offsets(self._assigned)
        deadline = time.monotonic() + timeout_s
        while any(self.consumer.position(tp) < end[tp] for tp in self._assigned):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {self.topic} took longer than {timeout_s}s")
            for records in self.consumer.poll(timeout_ms=200).values():
                for r in records:
                    sync = parse_sync(r.key, r.value)
                    if sync is not None:
                        self.syncs.setdefault(TopicPartition(sync.topic, sync.partition),
                                              deque(maxlen=self.kept)).append(sync)

    def of(self, tp: TopicPartition) -> Iterable[OffsetSync]:
        return self.syncs.get(tp, ())

    def close(self) -> None:
        self.consumer.close()
