"""What the console shows, gathered with the Admin and Consumer clients (no HTTP here).

Every method returns plain JSON-able dicts. One lock serialises the Admin client (it is not
thread-safe); the message browser uses a short-lived Consumer per request.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from itertools import pairwise
from typing import Any

from rillet.admin import Admin
from rillet.consumer import Consumer
from rillet.errors import RilletError, UnknownTopicOrPartitionError
from rillet.records import TopicPartition

#: values shown in the message browser are cut here (the whole record is never sent)
MAX_SHOWN_BYTES = 64 * 1024
MAX_BROWSE_RECORDS = 500


class BadRequest(RilletError):
    """A request the console refuses with a clear message (HTTP 400)."""


class NotFound(RilletError):
    """An unknown topic, partition or group (HTTP 404)."""


def show_bytes(data: bytes | None) -> dict[str, Any] | None:
    """A key or value for display: ``kind`` json (pretty-printed), text, or binary (base64 and
    a hex preview); never more than MAX_SHOWN_BYTES of it."""
    if data is None:
        return None
    size = len(data)
    cut = data[:MAX_SHOWN_BYTES]
    out: dict[str, Any] = {"size": size, "truncated": size > len(cut)}
    try:
        text = cut.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not out["truncated"]:
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            if isinstance(parsed, (dict, list)):
                return {**out, "kind": "json", "text": json.dumps(parsed, indent=2)}
    if text is not None and _mostly_text(text):
        return {**out, "kind": "text", "text": text}
    return {**out, "kind": "binary", "base64": base64.b64encode(cut).decode(),
            "text": cut[:256].hex(" ")}


def _mostly_text(text: str) -> bool:
    return all(c.isprintable() or c in "\n\r\t" for c in text)


class ClusterView:
    def __init__(self, bootstrap: str, *, request_timeout_ms: int = 10_000) -> None:
        self.bootstrap = bootstrap
        self._config = {"bootstrap.servers": bootstrap, "request.timeout.ms": request_timeout_ms}
        self._admin = Admin(self._config)
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=120)

    def close(self) -> None:
        with self._lock:
            self._admin.close()

    # -- overview and topics -----------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        with self._lock:
            cluster = self._admin.describe_cluster()
            topics = self._admin.describe_topics(None)
        live = {b.broker_id for b in cluster.brokers}
        under = [{"topic": p.topic, "partition": p.partition, "leader": p.leader,
                  "replicas": list(p.replicas), "isr": list(p.isr)}
                 for t in topics.values() for p in t.partitions if len(p.isr) < len(p.replicas)]
        offline = [u for u in under if u["leader"] < 0]
        partitions = sum(len(t.partitions) for t in topics.values())
        health = "offline partitions" if offline else (
            "under-replicated" if under else "healthy")
        return {
            "cluster_id": cluster.cluster_id, "controller_id": cluster.controller_id,
            "brokers": [{"id": b.broker_id, "address": b.address, "rack": b.rack,
                         "controller": b.broker_id == cluster.controller_id,
                         "leaders": sum(1 for t in topics.values() for p in t.partitions
                                        if p.leader == b.broker_id)}
                        for b in cluster.brokers],
            "health": health, "topics": len(topics), "partitions": partitions,
            "under_replicated": under, "offline": offline, "live_brokers": sorted(live),
        }

    def _offsets(self, tps: list[TopicPartition]) -> tuple[dict, dict]:
        if not tps:
            return {}, {}
        ends = self._admin.list_offsets(tps)
        starts = self._admin.list_offsets(tps, timestamp=-2)
        return starts, ends

    def topics(self) -> list[dict[str, Any]]:
        with self._lock:
            described = self._admin.describe_topics(None)
            tps = [TopicPartition(n, p.partition) for n, t in described.items()
                   for p in t.partitions if p.leader >= 0]
            starts, ends = self._offsets(tps)
        out = []
        for name, t in described.items():
            if t.is_internal:
                continue
            records = sum(ends.get(TopicPartition(name, p.partition), 0)
                          - starts.get(TopicPartition(name, p.partition), 0) for p in t.partitions)
            out.append({"name": name, "partitions": len(t.partitions),
                        "replication_factor": t.replication_factor, "records": records,
                        "under_replicated": sum(1 for p in t.partitions
                                                if len(p.isr) < len(p.replicas))})
        return out

    def topic(self, name: str) -> dict[str, Any]:
        with self._lock:
            try:
                t = self._admin.describe_topics([name])[name]
            except UnknownTopicOrPartitionError:
                raise NotFound(f"topic {name!r} does not exist") from None
            tps = [TopicPartition(name, p.partition) for p in t.partitions if p.leader >= 0]
            starts, ends = self._offsets(tps)
            configs = self._admin.describe_configs([name]).get(name, {})
        return {
            "name": name, "topic_id": t.topic_id, "replication_factor": t.replication_factor,
            "partitions": [{"partition": p.partition, "leader": p.leader,
                            "replicas": list(p.replicas), "isr": list(p.isr),
                            "start_offset": starts.get(TopicPartition(name, p.partition)),
                            "end_offset": ends.get(TopicPartition(name, p.partition))}
                           for p in t.partitions],
            "configs": [{"name": c.name, "value": None if c.is_sensitive else c.value,
                         "default": c.is_default} for c in configs.values()],
        }

    def delete_topic(self, name: str, confirm: str | None) -> None:
        if confirm != name:
            raise BadRequest(f"deleting topic {name!r} needs confirmation: "
                             f"send confirm={name!r}")
        self.topic(name)  # NotFound for an unknown one
        with self._lock:
            self._admin.delete_topics([name])

    # -- message browser ---------------------------------------------------------------------

    def messages(self, topic: str, partition: int, *, offset: int | None = None,
                 timestamp: int | None = None, limit: int = 50) -> dict[str, Any]:
        if not 1 <= limit <= MAX_BROWSE_RECORDS:
            raise BadRequest(f"limit must be between 1 and {MAX_BROWSE_RECORDS}")
        info = self.topic(topic)
        found = [p for p in info["partitions"] if p["partition"] == partition]
        if not found:
            raise NotFound(f"topic {topic!r} has no partition {partition} "
                           f"(it has {len(info['partitions'])})")
        start, end = found[0]["start_offset"], found[0]["end_offset"]
        if start is None or end is None:
            raise BadRequest(f"partition {topic}-{partition} has no leader just now")
        tp = TopicPartition(topic, partition)
        consumer = Consumer({**self._config, "enable.auto.commit": False})
        try:
            consumer.assign([tp])
            if timestamp is not None:
                hit = consumer.offsets_for_times({tp: timestamp}).get(tp)
                first = end if hit is None else (hit if isinstance(hit, int) else hit.offset)
            elif offset is None:
                first = max(start, end - limit)
            elif offset < 0:
                raise BadRequest(f"offset must be >= 0, got {offset}")
            else:
                first = offset
            if offset is not None and offset >= end:
                raise BadRequest(f"offset {offset} is past the end of {topic}-{partition} "
                                 f"(log end offset {end}; records {start}..{end - 1})"
                                 if end > start else
                                 f"offset {offset} is past the end of {topic}-{partition}: "
                                 f"the partition is empty (log end offset {end})")
            first = max(first, start)
            records = []
            if first < end:
                consumer.seek(tp, first)
                stop = min(end, first + limit)
                deadline = time.monotonic() + 10
                while consumer.position(tp) < stop and time.monotonic() < deadline:
                    for r in consumer.poll(timeout_ms=500, max_records=limit).get(tp, []):
                        if r.offset < stop:
                            records.append(_record(r))
        finally:
            consumer.close()
        return {"topic": topic, "partition": partition, "start_offset": start,
                "end_offset": end, "records": records[:limit]}

    # -- consumer groups ---------------------------------------------------------------------

    def groups(self) -> list[dict[str, Any]]:
        with self._lock:
            listing = self._admin.list_groups()
        out = []
        for g in listing:
            try:
                lag = sum(p["lag"] for p in self._lag(g.group_id) if p["lag"] is not None)
            except RilletError:
                lag = None
            out.append({"group_id": g.group_id, "state": g.state, "lag": lag})
        return out

    def _lag(self, group_id: str) -> list[dict[str, Any]]:
        with self._lock:
            committed = self._admin.list_consumer_group_offsets(group_id)
            ends = self._admin.list_offsets(list(committed)) if committed else {}
        return [{"topic": tp.topic, "partition": tp.partition, "committed": off,
                 "end_offset": ends.get(tp), "lag": None if ends.get(tp) is None
                 else max(0, ends[tp] - off)} for tp, off in sorted(committed.items())]

    def group(self, group_id: str) -> dict[str, Any]:
        with self._lock:
            known = {g.group_id for g in self._admin.list_groups()}
            if group_id not in known:
                raise NotFound(f"consumer group {group_id!r} does not exist")
            d = self._admin.describe_groups([group_id])[group_id]
        return {"group_id": group_id, "state": d.state, "coordinator": d.coordinator,
                "assignor": d.assignor,
                "members": [{"member_id": m.member_id, "client_id": m.client_id,
                             "host": m.host, "assignment": [f"{t}-{p}" for t, p in m.assignment]}
                            for m in d.members],
                "partitions": self._lag(group_id)}

    def reset_offsets(self, group_id: str, to: str, confirm: str | None) -> dict[str, Any]:
        """Move every committed offset of the group to the log start (``earliest``) or end
        (``latest``); needs ``confirm`` equal to the group id, and a group without members."""
        if to not in ("earliest", "latest"):
            raise BadRequest(f"reset to must be earliest or latest, got {to!r}")
        if confirm != group_id:
            raise BadRequest(f"resetting the offsets of group {group_id!r} needs "
                             f"confirmation: send confirm={group_id!r}")
        self.group(group_id)  # NotFound for an unknown one
        with self._lock:
            committed = self._admin.list_consumer_group_offsets(group_id)
            if not committed:
                raise BadRequest(f"group {group_id!r} has no committed offsets")
            target = self._admin.list_offsets(list(committed),
                                              timestamp=-2 if to == "earliest" else -1)
            try:
                self._admin.alter_consumer_group_offsets(group_id, target)
            except RilletError as exc:
                raise BadRequest(str(exc)) from None
        return {"group_id": group_id, "offsets": {f"{tp.topic}-{tp.partition}": o
                                                  for tp, o in sorted(target.items())}}

    # -- throughput (rates computed from log end offsets) -------------------------------------

    def throughput(self) -> dict[str, Any]:
        """Messages/s per topic between the last two calls (and the sample history)."""
        totals = {t["name"]: t["records"] for t in self.topics()}
        now = time.time()
        self._samples.append((now, totals))
        series = []
        samples = list(self._samples)
        for (t0, a), (t1, b) in pairwise(samples):
            dt = max(t1 - t0, 1e-3)
            series.append({"time": t1, "rates": {k: max(0.0, (v - a.get(k, v)) / dt)
                                                 for k, v in b.items()}})
        return {"source": "offsets", "time": now, "totals": totals, "series": series[-60:]}


def _record(r) -> dict[str, Any]:
    headers = [{"key": k, "value": show_bytes(v)} for k, v in (r.headers or ())]
    return {"offset": r.offset, "timestamp": r.timestamp, "key": show_bytes(r.key),
            "value": show_bytes(r.value), "headers": headers}
