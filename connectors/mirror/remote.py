"""Reading what the mirror left on the clusters (MirrorMaker's ``RemoteClusterUtils``):
translated group offsets from ``<source>.checkpoints.internal``, the latest heartbeat, and
the mirror's progress (lag per partition)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from rillet.connectors.mirror.clients import COMMON
from rillet.connectors.mirror.policy import (
    HEARTBEATS_TOPIC,
    DefaultReplicationPolicy,
    Flow,
    IdentityReplicationPolicy,
)

from rillet import Admin, Consumer
from rillet.records import TopicPartition

#: how long ``mirror status`` waits for one cluster's answer: a status must come back within
#: seconds when a cluster is down or hung (the clients' default request.timeout.ms is 30 s)
STATUS_TIMEOUT_MS = 3000


def status_overrides(flow: Flow, side: str) -> dict[str, str]:
    """Client settings for ``status``'s calls to the flow's ``side`` cluster: the flow's
    timeouts, capped at STATUS_TIMEOUT_MS."""
    cfg = flow.client(side, "admin")
    out = {}
    for key, default in (("request.timeout.ms", 30000),
                         ("socket.connection.setup.timeout.ms", 10000)):
        out[key.replace(".", "_")] = str(min(int(cfg.get(key, default)), STATUS_TIMEOUT_MS))
    return out


def _client(cluster: str | Mapping[str, str]) -> dict[str, str]:
    """Client settings from a bootstrap string or a flow's client config (whose role keys
    the other clients do not know: only the common ones are kept)."""
    if isinstance(cluster, str):
        return {"bootstrap.servers": cluster}
    return {k: v for k, v in cluster.items() if k in COMMON or k == "bootstrap.servers"}


def _read_all(cluster: str | Mapping[str, str], topic: str, timeout_s: float = 10.0,
              isolation: str = "read_uncommitted") -> list:
    """Every record of ``topic`` (all partitions) up to its end at call time (its last stable
    offset with ``isolation="read_committed"``). ``cluster``: bootstrap servers, or client
    settings (a flow's, connectors/mirror/clients.py)."""
    base = _client(cluster)
    with Admin(base) as admin:
        if topic not in admin.list_topics(include_internal=True):
            return []
    consumer = Consumer({**base, "enable.auto.commit": "false",
                         "isolation.level": isolation})
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_s}s")
            for rs in consumer.poll(timeout_ms=200).values():
                out.extend(rs)
        return out
    finally:
        consumer.close()


def translate_offsets(target: str | Mapping[str, str], source_alias: str, group: str,
                      policy: DefaultReplicationPolicy | None = None
                      ) -> dict[TopicPartition, int]:
    """The latest translated offsets of ``group`` on the target, from its checkpoints."""
    policy = policy or DefaultReplicationPolicy()
    latest: dict[TopicPartition, int] = {}
    for r in _read_all(target, policy.checkpoints_topic(source_alias)):
        g, topic, partition = json.loads(r.key)
        if g == group:
            latest[TopicPartition(topic, partition)] = json.loads(r.value)["downstream"]
    return latest


def heartbeat_age_ms(target: str | Mapping[str, str], source_alias: str,
                     now_ms: int | None = None, timeout_s: float = 10.0) -> int | None:
    """Milliseconds since the last heartbeat from ``source_alias`` on ``target`` (None: none
    yet). ``now_ms`` defaults to the wall clock once the heartbeats are read: a clock read
    before them could be older than a heartbeat written meanwhile (a negative age)."""
    last = None
    for r in _read_all(target, HEARTBEATS_TOPIC, timeout_s):
        beat = json.loads(r.value)
        if beat.get("source") == source_alias:
            last = beat["timestamp"]
    if last is None:
        return None
    return (int(time.time() * 1000) if now_ms is None else now_ms) - last


def flow_lag(flow: Flow, policy: DefaultReplicationPolicy, **fixed: str
             ) -> list[tuple[str, int, int, int]]:
    """(topic, partition, mirrored up to, lag) for every mirrored partition of the flow
    (``fixed``: client settings that win over the flow's, e.g. status's short timeouts)."""
    from rillet.connectors.mirror.runner import progress_group

    with Admin(flow.client("source", "admin", **fixed)) as admin:
        topics = [t for t in admin.list_topics() if flow.wants_topic(policy, t)]
        if not topics:
            return []
        described = admin.describe_topics(topics)
        tps = [TopicPartition(t, p.partition) for t in topics for p in described[t].partitions]
        ends = admin.list_offsets(tps)
        done = admin.list_consumer_group_offsets(progress_group(flow), tps)
    return [(tp.topic, tp.partition, done.get(tp, 0), ends[tp] - done.get(tp, 0))
            for tp in sorted(tps)]


def orphaned_topics(flow: Flow, policy: DefaultReplicationPolicy, **fixed: str) -> list[str]:
    """Remote topics of the flow on the target whose source topic no longer exists (deleted
    on the source; the mirror keeps the copy). The identity policy cannot tell a copy from a
    local topic of the target, so it reports none."""
    if isinstance(policy, IdentityReplicationPolicy):
        return []
    with Admin(flow.client("target", "admin", **fixed)) as admin:
        remote = admin.list_topics()
    with Admin(flow.client("source", "admin", **fixed)) as admin:
        source = set(admin.list_topics())
    out = []
    for topic in sorted(remote):
        upstream = policy.upstream_topic(topic)
        if (policy.topic_source(topic) == flow.source and upstream
                and upstream not in source and flow.wants_topic(policy, upstream)):
            out.append(topic)
    return out


def failover_client(source_alias: str, target_alias: str, *, bootstrap: str | None = None,
                    mirror_config: str | None = None, command_config: str | None = None
                    ) -> dict[str, str]:
    """The client settings ``rillet group translate-offsets`` reaches the target with, lowest
    first: the target's settings in the mirror's mm2.properties (``<to>.bootstrap.servers``,
    ``<to>.security.protocol``, ``<to>.curve.*``, ``<to>.admin.*`` ...; the flow
    ``<from>-><to>``'s precedence, connectors/mirror/clients.py), then a client properties
    file (Kafka tools' ``--command-config``), then ``-b``. With none of them the client
    takes the profile's (``rillet cluster up --secure``), as every CLI command does.
    Raises MirrorConfigError for a file that cannot be used."""
    from pathlib import Path

    from rillet.connectors.mirror.clients import client_config
    from rillet.connectors.mirror.policy import MirrorConfigError, parse_properties

    out: dict[str, str] = {}
    if mirror_config:
        props = parse_properties(Path(mirror_config).read_text())
        if not props.get(f"{target_alias}.bootstrap.servers"):
            raise MirrorConfigError(f"{mirror_config}: no {target_alias}.bootstrap.servers "
                                    f"(--to names a cluster alias of the file)")
        out.update(client_config(props, source_alias, target_alias, "target", "admin"))
    if command_config:
        text = Path(command_config).read_text()
        out.update({k: v for k, v in parse_properties(text).items()})
    if bootstrap:
        out["bootstrap.servers"] = bootstrap
    return out
