"""Wire messages (transport/protocol.py) <-> the share-state coordinator core
(coordinator/share/state.py), the ``__share_group_state`` record codec, the topic's configs,
and FindCoordinator key_type 2, for actors/share_state.py. Pure conversions, except
``find_coordinator`` which may ask the controller to create ``__share_group_state``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2
from rillet.coordinator.share import records as SR
from rillet.coordinator.share import state as SS
from rillet.transport import protocol as P

from .configs import BrokerConfig
from .group_coordinator import partition_for
from .internal_topics import coordinator_of, decode_log

E = P.ErrorCode
SHARE_STATE_TOPIC = "__share_group_state"
# written by each new leadership of a partition before it loads (actors/share_state_shard.py);
# a tombstone under a key no share-partition has, skipped on replay
BARRIER_KEY = cbor2.dumps({"type": "leader-barrier"})


def coordinator_key(group_id: str, topic: str, partition: int) -> str:
    """FindCoordinator key_type 2's key of a share-partition."""
    return f"{group_id}:{topic}:{partition}"


def state_partition(group_id: str, topic: str, partition: int, num_partitions: int) -> int:
    """The ``__share_group_state`` partition holding this share-partition's state."""
    return partition_for(coordinator_key(group_id, topic, partition), num_partitions)


# ---------------------------------------------------------------------------- records


def encode_record(record: SR.ShareStateRecord) -> tuple[bytes, bytes | None]:
    key, value = SR.to_kv(record)
    return cbor2.dumps(key), None if value is None else cbor2.dumps(value)


def decode_state(data: bytes, from_offset: int) -> tuple[list[SR.ShareStateRecord], int, list[int]]:
    """The ``__share_group_state`` records in ``data`` (whole batches) at or after
    ``from_offset``: ``(records, the offset after the last batch, offsets of unreadable
    records)``. Barriers are skipped; a foreign record is reported, never fatal."""
    return decode_log(data, from_offset, BARRIER_KEY, SR.from_kv)


# ---------------------------------------------------------------------- wire <-> core


def key_of(req: P.ReadShareGroupStateRequest | P.WriteShareGroupStateRequest) -> SR.SharePartitionKey:
    return SR.SharePartitionKey(req.group_id, req.topic, req.partition)


def batch_of(b: P.ShareStateBatch) -> SR.StateBatch:
    return SR.StateBatch(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count,
                         b.available_at_ms, b.reason)


def wire_batch(b: SR.StateBatch) -> P.ShareStateBatch:
    return P.ShareStateBatch(first_offset=b.first_offset, last_offset=b.last_offset,
                             delivery_state=b.delivery_state, delivery_count=b.delivery_count,
                             available_at_ms=b.available_at_ms, reason=b.reason)


def write_of(req: P.WriteShareGroupStateRequest) -> SS.WriteState:
    return SS.WriteState(
        key=key_of(req), state_epoch=req.state_epoch, leader_epoch=req.leader_epoch,
        start_offset=req.start_offset, batches=tuple(batch_of(b) for b in req.state_batches),
        replace=req.replace, delete=req.delete)


def code_of(name: str) -> int:
    try:
        return int(E[name])
    except KeyError:
        return int(E.UNKNOWN_SERVER_ERROR)


def to_wire(outcome: SS.ReadOutcome | SS.WriteOutcome) -> object:
    if isinstance(outcome, SS.WriteOutcome):
        return P.WriteShareGroupStateResponse(error_code=code_of(outcome.error),
                                              error_message=outcome.message,
                                              state_epoch=outcome.state_epoch)
    s = outcome.state
    if s is None:
        return P.ReadShareGroupStateResponse(error_code=code_of(outcome.error),
                                             error_message=outcome.message)
    return P.ReadShareGroupStateResponse(
        error_code=code_of(outcome.error), error_message=outcome.message,
        state_epoch=s.state_epoch, leader_epoch=s.leader_epoch, start_offset=s.start_offset,
        state_batches=tuple(wire_batch(b) for b in s.batches))


def error_response(req: Any, code: int, message: str | None) -> object:
    """The typed reply of ``req`` carrying ``code``."""
    if isinstance(req, P.WriteShareGroupStateRequest):
        return P.WriteShareGroupStateResponse(error_code=int(code), error_message=message)
    if isinstance(req, P.ReadShareGroupStateRequest):
        return P.ReadShareGroupStateResponse(error_code=int(code), error_message=message)
    return P.ErrorResponse(error_code=int(code), error_message=message)


# ------------------------------------------------------------------------------ topic


def topic_configs(broker_configs: Mapping[str, str]) -> tuple[int, int, dict[str, str]]:
    """``(partitions, replication factor, configs)`` of ``__share_group_state`` (the factor
    and min ISR capped later by the registered brokers)."""
    c = BrokerConfig.of(broker_configs)
    return (
        c.int("share.coordinator.state.topic.num.partitions"),
        c.int("share.coordinator.state.topic.replication.factor"),
        {"cleanup.policy": "compact",
         "segment.bytes": c["share.coordinator.state.topic.segment.bytes"],
         "min.insync.replicas": c["share.coordinator.state.topic.min.isr"]},
    )


def creatable(broker_configs: Mapping[str, str], brokers: int) -> P.CreatableTopic:
    partitions, rf, configs = topic_configs(broker_configs)
    rf = max(1, min(rf, brokers))
    configs["min.insync.replicas"] = str(min(int(configs["min.insync.replicas"]), rf))
    return P.CreatableTopic(name=SHARE_STATE_TOPIC, num_partitions=partitions,
                            replication_factor=rf, configs=configs)


def find_coordinator(ctx: Any, req: P.FindCoordinatorRequest) -> P.FindCoordinatorResponse:
    """FindCoordinator key_type 2 (session thread): the leader of the key's
    ``__share_group_state`` partition (key ``group:topic:partition``), from the metadata
    image. Creates the topic (through the controller) the first time it is needed."""
    group_topic, _, partition = req.key.rpartition(":")
    group, _, topic = group_topic.rpartition(":")
    if not group or not topic or not partition.isdigit():
        return P.FindCoordinatorResponse(
            error_code=E.INVALID_REQUEST,
            error_message=f"the share-partition key {req.key!r} is not group:topic:partition")
    return coordinator_of(ctx, SHARE_STATE_TOPIC, lambda n: partition_for(req.key, n),
                          lambda brokers: creatable(ctx.broker_configs, brokers))
