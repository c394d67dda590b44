"""Where a group lives: Kafka's group-id hash over ``__consumer_offsets`` partitions,
FindCoordinator for groups (key_type 0; the topic is created on first use), and the group
coordinator core's configuration from the broker's configs. Used by the group coordinator
actor (which re-exports these names), the transaction and share-state coordinators."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rillet.coordinator import groups as G
from rillet.transport import protocol as P

from .configs import BrokerConfig
from .internal_topics import coordinator_of

E = P.ErrorCode
OFFSETS_TOPIC = "__consumer_offsets"


def java_string_hashcode(s: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units, int32 overflow)."""
    h = 0
    data = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    """Kafka's rule: ``Utils.abs(groupId.hashCode) % offsets.topic.num.partitions``."""
    h = java_string_hashcode(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions


def group_config(broker_configs: Mapping[str, str]) -> G.GroupConfig:
    c = BrokerConfig.of(broker_configs)
    return G.GroupConfig(
        session_timeout_ms=c.int("group.consumer.session.timeout.ms"),
        heartbeat_interval_ms=c.int("group.consumer.heartbeat.interval.ms"),
        remote_assignor=c["group.remote.assignor"],
        max_size=c.int("group.consumer.max.size"),
        offset_metadata_max_bytes=c.int("offset.metadata.max.bytes"),
        offsets_retention_ms=c.int("offsets.retention.minutes") * 60_000,
    )


def find_coordinator(ctx: Any, req: P.FindCoordinatorRequest) -> P.FindCoordinatorResponse:
    """Session thread: the leader of the group's offsets partition, from the metadata image.
    Creates ``__consumer_offsets`` (through the controller) the first time it is needed."""
    if req.key_type != 0:
        return P.FindCoordinatorResponse(
            error_code=E.INVALID_REQUEST,
            error_message="key_type must be 0 (a group), 1 (a transactional id) or 2 "
                          "(a share-partition)")
    if not req.key:
        return P.FindCoordinatorResponse(error_code=E.INVALID_REQUEST,
                                          error_message="the group id must not be empty")

    def creatable(brokers: int) -> P.CreatableTopic:
        config = BrokerConfig.of(ctx.broker_configs)
        return P.CreatableTopic(
            name=OFFSETS_TOPIC,
            num_partitions=config.int("offsets.topic.num.partitions"),
            replication_factor=min(config.int("offsets.topic.replication.factor"), brokers),
            configs={
                "cleanup.policy": "compact",
                "segment.bytes": config["offsets.topic.segment.bytes"],
            },
        )

    return coordinator_of(ctx, OFFSETS_TOPIC, lambda n: partition_for(req.key, n), creatable)
