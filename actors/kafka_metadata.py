"""Metadata (key 3) on the KAFKA listener, v1-v12: the committed metadata image as Kafka
clients expect it. Brokers are listed at their KAFKA listener (registered as
``kafka_host:kafka_port``, coordinator/metadata.py); a broker without one is left out, as a
Kafka broker without the client's listener is. Topics are not auto-created."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta

from .kafka_auth import may_describe_topic
from .kafka_dispatch import Call, api
from .kafka_schemas import load_response_schema

KEY = 3


def build(cls: type, **values: Any) -> Any:
    """``cls(**values)`` keeping only the fields this version of the message has."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def topic_uuid(topic_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(topic_id)
    except (TypeError, ValueError):
        return None


@api(KEY, 1, 12)
def metadata(call: Call):
    version = call.request.api_version
    cls = load_response_schema(KEY, version)
    mod = __import__(cls.__module__, fromlist=["MetadataResponseBroker"])
    ctx = call.broker
    image = ctx.image
    live = {b.broker_id for b in image.brokers.values() if not b.fenced}
    brokers = []
    for b in sorted(image.brokers.values(), key=lambda b: b.broker_id):
        if b.fenced or (b.broker_id == ctx.broker_id and b.incarnation != ctx.incarnation):
            continue
        host, port = b.kafka_host, b.kafka_port
        if b.broker_id == ctx.broker_id:
            host, port = call.endpoint.host, call.endpoint.port
        if not port:
            continue
        brokers.append(build(mod.MetadataResponseBroker, node_id=b.broker_id, host=host,
                             port=port, rack=b.rack))
    requested = call.request.body.topics
    if requested is None:
        names = sorted(n for n in image.topics if not n.startswith("__"))
    else:
        # v10+: a topic may be asked for by id alone (KIP-848 clients resolve assignments so)
        by_id = {topic_uuid(t.topic_id): n for n, t in image.topics.items()}
        names = list(dict.fromkeys(
            t.name if t.name is not None else by_id.get(getattr(t, "topic_id", None))
            for t in requested
            if t.name is not None or by_id.get(getattr(t, "topic_id", None)) is not None))
    may = may_describe_topic(call)  # ACLs (actors/kafka_auth.py): names do not leak
    if requested is None:
        names = [n for n in names if may(n)]
    topics = []
    for name in names:
        if not may(name):
            topics.append(build(mod.MetadataResponseTopic,
                                error_code=ErrorCode.topic_authorization_failed, name=name,
                                topic_id=None, partitions=()))
            continue
        topic = image.topics.get(name)
        if topic is None:
            topics.append(build(mod.MetadataResponseTopic,
                                error_code=ErrorCode.unknown_topic_or_partition, name=name,
                                topic_id=None, partitions=()))
            continue
        parts = tuple(
            build(
                mod.MetadataResponsePartition,
                error_code=ErrorCode.none if p.leader in live else ErrorCode.leader_not_available,
                partition_index=p.partition,
                leader_id=p.leader,
                leader_epoch=p.leader_epoch,
                replica_nodes=tuple(p.replicas),
                isr_nodes=tuple(p.isr),
                offline_replicas=tuple(r for r in p.replicas if r not in live),
            )
            for p in sorted(topic.partitions.values(), key=lambda p: p.partition)
        )
        topics.append(build(mod.MetadataResponseTopic, error_code=ErrorCode.none, name=name,
                            topic_id=topic_uuid(topic.topic_id),
                            is_internal=name.startswith("__"), partitions=parts))
    return build(
        cls,
        throttle_time=i32Timedelta.parse(timedelta(0)),
        brokers=tuple(brokers),
        cluster_id=ctx.cluster_id,
        controller_id=ctx.controller_id if ctx.controller_id >= 0 else -1,
        topics=tuple(topics),
    )
