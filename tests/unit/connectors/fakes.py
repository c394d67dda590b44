"""In-memory Producer / Consumer / Admin with the behaviour the Connect worker relies on
from the real clients (connectors/clients.py).

One :class:`FakeCluster` holds the topics; ``cluster.clients()`` gives the factory the worker
takes. Records are appended when sent (acks are immediate) unless the cluster is told to
fail: ``fail_next_sends`` makes sends to a topic fail with a non-retriable error.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future
from typing import Any

from rillet.connectors.clients import Clients

from rillet.errors import (
    BrokerUnavailableError,
    IllegalStateError,
    MessageTooLargeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from rillet.records import ConsumerRecord, NewTopic, RecordMetadata, TopicPartition


class FakeFuture(Future):
    """The contract's future: ``get(timeout)`` returns RecordMetadata or raises."""

    def get(self, timeout: float | None = None) -> Any:
        return self.result(timeout)


class FakeCluster:
    def __init__(self) -> None:
        self.topics: dict[str, list[list[ConsumerRecord]]] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.lock = threading.Condition()
        self.fail_topics: set[str] = set()
        self.down = False  # every client call fails with a retriable error
        # send() raises MessageTooLargeError above this (not to the topic "dlq", so a test
        # can find the rejected record there)
        self.max_value_bytes = 1 << 20
        self.closed_clients = 0
        self.open_clients = 0
        # consumer groups: group id -> members (subscribed FakeConsumers, in join order)
        # and committed offsets
        self.group_members: dict[str, list[FakeConsumer]] = {}
        self.group_offsets: dict[str, dict[TopicPartition, int]] = {}

    def clients(self) -> Clients:
        cluster = self
        return Clients(lambda cfg: FakeProducer(cluster, cfg),
                       lambda cfg: FakeConsumer(cluster, cfg),
                       lambda cfg: FakeAdmin(cluster, cfg), TopicPartition, NewTopic)

    def check_up(self) -> None:
        if self.down:
            raise BrokerUnavailableError("the fake cluster is down")

    def create(self, name: str, partitions: int = 1, configs: dict | None = None) -> None:
        with self.lock:
            if name in self.topics:
                raise TopicAlreadyExistsError(f"topic {name!r} already exists")
            self.topics[name] = [[] for _ in range(partitions)]
            self.configs[name] = dict(configs or {})

    def append(self, topic: str, partition: int | None, key: Any, value: Any,
               headers: Any, timestamp: int | None) -> RecordMetadata:
        with self.lock:
            if topic not in self.topics:
                raise UnknownTopicOrPartitionError(f"topic {topic!r} does not exist")
            parts = self.topics[topic]
            if partition is None:
                partition = (hash(key) % len(parts)) if key is not None else 0
            log = parts[partition]
            ts = timestamp if timestamp is not None else int(time.time() * 1000)
            log.append(ConsumerRecord(topic, partition, len(log), ts, key, value,
                                      list(headers or [])))
            self.lock.notify_all()
            return RecordMetadata(topic, partition, len(log) - 1, ts)

    def records(self, topic: str) -> list[ConsumerRecord]:
        with self.lock:
            return [r for p in self.topics.get(topic, []) for r in p]

    def target_assignment(self, consumer: FakeConsumer) -> set[TopicPartition]:
        """The group's assignor (call with the lock held): the partitions of every topic some
        member subscribes to, dealt round-robin over the members; a member only gets what
        its subscription matches."""
        members = self.group_members.get(consumer.group_id, [])
        if consumer not in members:
            return set()
        tps = [TopicPartition(t, p) for t in sorted(self.topics)
               for p in range(len(self.topics[t]))]
        wanted = [tp for tp in tps if any(m.matches(tp.topic) for m in members)]
        mine = set()
        for i, tp in enumerate(wanted):
            if members[i % len(members)] is consumer and consumer.matches(tp.topic):
                mine.add(tp)
        return mine

    def latest_by_key(self, topic: str) -> dict[bytes, bytes | None]:
        """What compaction would keep."""
        out = {}
        for r in self.records(topic):
            out[r.key] = r.value
        return out


def _check(config: dict[str, Any]) -> None:
    assert "bootstrap.servers" in config, "clients always get bootstrap.servers"


class FakeProducer:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        _check(config)
        self.cluster = cluster
        self.config = config
        self.closed = False
        cluster.open_clients += 1

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
             partition: int | None = None, timestamp_ms: int | None = None,
             on_delivery: Any = None) -> Future:
        assert not self.closed
        for v in (key, value):
            assert v is None or isinstance(v, bytes), f"producer given {type(v)}"
        if value is not None and len(value) > self.cluster.max_value_bytes and topic != "dlq":
            raise MessageTooLargeError(f"record of {len(value)} bytes is too large")
        fut = FakeFuture()
        if self.cluster.down:
            fut.set_exception(BrokerUnavailableError("the fake cluster is down"))
        elif topic in self.cluster.fail_topics:
            fut.set_exception(RuntimeError(f"send to {topic} failed"))
        else:
            fut.set_result(self.cluster.append(topic, partition, key, value, headers,
                                               timestamp_ms))
        return fut

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.cluster.closed_clients += 1


class FakeConsumer:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        _check(config)
        self.cluster = cluster
        self.config = config
        self.positions: dict[TopicPartition, int] = {}
        self.closed = False
        self.group_id = config.get("group.id")
        self.topics: tuple[str, ...] = ()
        self.pattern: re.Pattern | None = None
        self.listener: Any = None
        self.subscribed = False
        cluster.open_clients += 1

    # --- groups (rillet.Consumer's API: subscribe, rebalance listener, commit, committed) ---

    def subscribe(self, topics: Any = None, *, pattern: Any = None, listener: Any = None
                  ) -> None:
        assert not self.closed and self.group_id, "subscribe() needs group.id"
        if isinstance(topics, re.Pattern):
            topics, pattern = None, topics
        names = (topics,) if isinstance(topics, str) else tuple(topics or ())
        assert bool(names) != (pattern is not None), "topic names or a pattern (not both)"
        assert not self.positions, "subscribe() after assign()"
        self.topics = names
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.listener = listener
        self.subscribed = True
        with self.cluster.lock:
            self.cluster.group_members.setdefault(self.group_id, []).append(self)

    def matches(self, topic: str) -> bool:
        return topic in self.topics or (self.pattern is not None
                                        and self.pattern.fullmatch(topic) is not None)

    def _reconcile(self) -> None:
        """Revoke what the assignor moved away, then take what no other member still owns
        (a partition has at most one owner at any instant, as with the real coordinator)."""
        with self.cluster.lock:
            target = self.cluster.target_assignment(self)
        revoked = set(self.positions) - target
        if revoked:
            if self.listener is not None:
                self.listener.on_partitions_revoked(revoked)
            for tp in revoked:
                del self.positions[tp]
        with self.cluster.lock:
            others = {tp for m in self.cluster.group_members.get(self.group_id, [])
                      if m is not self for tp in m.positions}
            new = target - set(self.positions) - others
            committed = self.cluster.group_offsets.get(self.group_id, {})
            for tp in sorted(new):
                self.positions[tp] = committed.get(tp, self._reset_position(tp))
        if new and self.listener is not None:
            self.listener.on_partitions_assigned(new)

    def _reset_position(self, tp: TopicPartition) -> int:
        return self._end(tp) if self.config.get("auto.offset.reset", "latest") == "latest" else 0

    def commit(self, offsets: Any = None) -> None:
        self.cluster.check_up()
        assert not self.closed and self.group_id, "commit() needs group.id"
        todo = dict(self.positions) if offsets is None else {
            TopicPartition(*tp): int(o) for tp, o in offsets.items()}
        with self.cluster.lock:
            if self.subscribed:
                assert set(todo) <= set(self.positions), "committing unowned partitions"
            self.cluster.group_offsets.setdefault(self.group_id, {}).update(todo)

    def committed(self, tps: Any) -> dict[TopicPartition, int | None]:
        with self.cluster.lock:
            got = self.cluster.group_offsets.get(self.group_id, {})
            return {TopicPartition(*tp): got.get(TopicPartition(*tp)) for tp in tps}

    def unsubscribe(self) -> None:
        if not self.subscribed:
            return
        if self.positions and self.listener is not None:
            self.listener.on_partitions_revoked(set(self.positions))
        self.positions = {}
        with self.cluster.lock:
            members = self.cluster.group_members.get(self.group_id, [])
            if self in members:
                members.remove(self)
        self.subscribed = False

    def assign(self, partitions: Any) -> None:
        self.cluster.check_up()
        tps = [TopicPartition(*tp) for tp in partitions]
        with self.cluster.lock:
            for tp in tps:
                if tp.partition >= len(self.cluster.topics.get(tp.topic, [])):
                    raise UnknownTopicOrPartitionError(f"{tp} does not exist")
        reset_latest = self.config.get("auto.offset.reset", "latest") == "latest"
        self.positions = {tp: self.positions.get(
            tp, self._end(tp) if reset_latest else 0) for tp in tps}

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def _end(self, tp: TopicPartition) -> int:
        return len(self.cluster.topics[tp.topic][tp.partition])

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert tp in self.positions, f"{tp} is not assigned"
        self.positions[tp] = offset

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps or list(self.positions):
            self.seek(tp, 0)

    def seek_to_end(self, *tps: TopicPartition) -> None:
        for tp in tps or list(self.positions):
            self.seek(tp, self._end(tp))

    def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def beginning_offsets(self, tps: Any) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): 0 for tp in tps}

    def end_offsets(self, tps: Any) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): self._end(TopicPartition(*tp)) for tp in tps}

    def poll(self, timeout_ms: int = 0, max_records: int | None = None
             ) -> dict[TopicPartition, list[ConsumerRecord]]:
        assert not self.closed
        self.cluster.check_up()
        if self.subscribed:
            self._reconcile()
        limit = max_records or 500
        deadline = time.monotonic() + timeout_ms / 1000
        with self.cluster.lock:
            while True:
                out: dict[TopicPartition, list[ConsumerRecord]] = {}
                n = 0
                for tp, pos in self.positions.items():
                    log = self.cluster.topics[tp.topic][tp.partition]
                    chunk = log[pos:pos + limit - n]
                    if chunk:
                        out[tp] = chunk
                        n += len(chunk)
                        self.positions[tp] = pos + len(chunk)
                if out or time.monotonic() >= deadline:
                    return out
                self.cluster.lock.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if not self.closed:
            try:
                self.unsubscribe()
            finally:
                self.closed = True
                self.cluster.closed_clients += 1


class _Desc:
    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.partitions = tuple(range(n))


class FakeAdmin:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        _check(config)
        self.cluster = cluster
        self.closed = False
        cluster.open_clients += 1

    def create_topics(self, new_topics: Any) -> dict[str, None]:
        self.cluster.check_up()
        for t in new_topics:
            self.cluster.create(t.name, t.num_partitions, dict(t.configs))
        return {t.name: None for t in new_topics}

    def describe_topics(self, names: Any = None) -> dict[str, _Desc]:
        self.cluster.check_up()
        out = {}
        with self.cluster.lock:
            for n in names if names is not None else list(self.cluster.topics):
                if n not in self.cluster.topics:
                    raise UnknownTopicOrPartitionError(f"topic {n!r} does not exist")
                out[n] = _Desc(n, len(self.cluster.topics[n]))
        return out

    def list_consumer_group_offsets(self, group_id: str, partitions: Any = None
                                    ) -> dict[TopicPartition, int]:
        self.cluster.check_up()
        with self.cluster.lock:
            got = self.cluster.group_offsets.get(group_id, {})
            want = got if partitions is None else [TopicPartition(*tp) for tp in partitions]
            return {tp: got[tp] for tp in sorted(want) if tp in got}

    def _check_inactive(self, group_id: str) -> None:
        if self.cluster.group_members.get(group_id):
            raise IllegalStateError(f"group {group_id!r} has active members")

    def alter_consumer_group_offsets(self, group_id: str, offsets: Any) -> None:
        self.cluster.check_up()
        with self.cluster.lock:
            self._check_inactive(group_id)
            self.cluster.group_offsets.setdefault(group_id, {}).update(
                {TopicPartition(*tp): int(o) for tp, o in offsets.items()})

    def delete_consumer_group_offsets(self, group_id: str, partitions: Any) -> None:
        self.cluster.check_up()
        with self.cluster.lock:
            self._check_inactive(group_id)
            got = self.cluster.group_offsets.get(group_id, {})
            for tp in partitions:
                got.pop(TopicPartition(*tp), None)

    def list_topics(self) -> list[str]:
        self.cluster.check_up()
        with self.cluster.lock:
            return sorted(self.cluster.topics)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.cluster.closed_clients += 1
