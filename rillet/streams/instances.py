"""Which instance of an application holds which task (docs/streams.md "Standby replicas"
and "Interactive queries across instances").

Kafka Streams passes each instance's ``application.server`` and task assignment in its
group protocol's user data. Rillet's groups are assigned by the broker (KIP-848, which
has no user data), so the instances of an application tell each other through a small
compacted topic of their own, ``{application.id}-instances`` (one partition): key = the
instance id, value = JSON ``{"server": "host:port" or null, "active": ["0_1", ...],
"standby": [...]}``, written when it changes and every ``PUBLISH_S`` seconds; a tombstone
when the instance closes cleanly. An instance not heard from for ``LIVENESS_S`` seconds
(killed) is no longer listed; until then, where two instances claim a task (the new owner
and a killed one), the one heard of last is believed. What the topic says is advice (who to ask, where to keep
standbys), never what a task's correctness depends on: that stays the consumer group's
assignment and the changelogs.

This module is the view (``Directory``), the record format and the standby placement;
``standby.py`` reads and writes the topic.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rillet.frozen import frozen
from rillet.records import TopicPartition

from .api import TaskId

PUBLISH_S = 1.0  # an instance re-publishes its entry this often
# an entry older than this is a dead instance's (generous: a run loop may sit in a
# rebalance for up to transaction.timeout.ms, 10 s, without publishing)
LIVENESS_S = 30.0


def instances_topic(application_id: str) -> str:
    return f"{application_id}-instances"


_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True, slots=True, order=True)
class HostInfo:
    """An instance's ``application.server``: where its interactive queries are answered
    (Kafka's HostInfo). Rillet ships no RPC layer; the application serves its own."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostInfo:
        m = _HOST_PORT.match(text) if isinstance(text, str) else None
        if m is None or not 0 < int(m.group(2)) < 65536:
            raise ValueError(f"expected host:port (port 1-65535), got {text!r}")
        return cls(m.group(1), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@frozen
class KeyQueryMetadata:
    """Where a key of a store lives (Kafka's KeyQueryMetadata): the instance holding its
    task (``active_host``; None: no live instance holds it, e.g. during a rebalance), the
    instances with a standby copy, and the key's partition."""

    active_host: HostInfo | None
    standby_hosts: frozenset[HostInfo]
    partition: int


@frozen
class StreamsMetadata:
    """One live instance (Kafka's StreamsMetadata): its host, the stores and input
    partitions of its active tasks, and those of its standby tasks."""

    instance_id: str
    host_info: HostInfo | None
    state_store_names: frozenset[str]
    topic_partitions: frozenset[TopicPartition]
    standby_state_store_names: frozenset[str] = frozenset()
    standby_topic_partitions: frozenset[TopicPartition] = frozenset()
    active_tasks: frozenset[TaskId] = field(default=frozenset(), compare=False)
    standby_tasks: frozenset[TaskId] = field(default=frozenset(), compare=False)


@frozen
class InstanceInfo:
    """What an instance published: its server and its active and standby tasks."""

    server: HostInfo | None
    active: frozenset[TaskId]
    standby: frozenset[TaskId]


def encode(info: InstanceInfo) -> bytes:
    return json.dumps({"server": None if info.server is None else str(info.server),
                       "active": sorted(str(t) for t in info.active),
                       "standby": sorted(str(t) for t in info.standby)},
                      separators=(",", ":")).encode()


def decode(value: bytes) -> InstanceInfo:
    """ValueError on anything that is not an entry (the topic is the app's own, but a bad
    record must not stop it)."""
    try:
        raw = json.loads(value)
        server = None if raw["server"] is None else HostInfo.parse(raw["server"])
        active = frozenset(TaskId.parse(t) for t in raw["active"])
        standby = frozenset(TaskId.parse(t) for t in raw["standby"])
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not an instance entry: {value[:200]!r} ({e})") from None
    return InstanceInfo(server, active, standby)


class Directory:
    """The entries of the instances topic, with when each was last heard of (the caller's
    monotonic clock: never another machine's). Thread-safe: the run thread applies
    records, query threads read."""

    def __init__(self, instance_id: str, liveness_s: float = LIVENESS_S) -> None:
        self.instance_id = instance_id
        self.liveness_s = liveness_s
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[InstanceInfo, float]] = {}

    def apply(self, instance_id: str, info: InstanceInfo | None, heard_at: float) -> None:
        """An entry (None: the instance closed) heard of at ``heard_at``."""
        with self._lock:
            if info is None:
                self._entries.pop(instance_id, None)
                return
            old = self._entries.get(instance_id)
            if old is None or old[1] <= heard_at:
                self._entries[instance_id] = (info, heard_at)

    def live(self, now: float) -> dict[str, InstanceInfo]:
        """The instances heard of within ``liveness_s`` of ``now`` (this one always)."""
        return {i: info for i, (info, _) in self.heard(now).items()}

    def heard(self, now: float) -> dict[str, tuple[InstanceInfo, float]]:
        """``live``, with when each was last heard of."""
        with self._lock:
            return {i: (info, at) for i, (info, at) in self._entries.items()
                    if i == self.instance_id or now - at <= self.liveness_s}


def place_standbys(me: str, tasks: Iterable[TaskId], live: Mapping[str, InstanceInfo],
                   replicas: int) -> set[TaskId]:
    """The tasks ``me`` keeps a standby of: for each task, the ``replicas`` live instances
    that do not hold it active, ranked by a hash of (instance, task) (rendezvous hashing:
    every instance computes the same answer from the same view, and an instance joining or
    leaving moves few standbys)."""
    mine: set[TaskId] = set()
    if replicas <= 0:
        return mine
    for task in tasks:
        owners = {i for i, info in live.items() if task in info.active}
        if me in owners:
            continue
        ranked = sorted((i for i in live if i not in owners),
                        key=lambda i: (zlib.crc32(f"{i}/{task}".encode()), i))
        if me in ranked[:replicas]:
            mine.add(task)
    return mine


__all__ = ["LIVENESS_S", "PUBLISH_S", "Directory", "HostInfo", "InstanceInfo",
           "KeyQueryMetadata", "StreamsMetadata", "decode", "encode", "instances_topic",
           "place_standbys"]
