"""Wire messages (transport/protocol.py) <-> the transaction coordinator core's answers
(coordinator/transactions/), and FindCoordinator for transactional ids, for
actors/txn_coordinator.py. Pure conversions, except ``find_coordinator`` which may ask the
controller to create ``__transaction_state``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cbor2
from rillet.coordinator import transactions as T
from rillet.transport import protocol as P

from .configs import BrokerConfig
from .group_coordinator import OFFSETS_TOPIC, partition_for
from .internal_topics import coordinator_of, decode_log

E = P.ErrorCode
TXN_TOPIC = "__transaction_state"
# written by each new leadership of a partition before it loads (actors/txn_coordinator.py
# ``_load``); a tombstone, skipped on replay
BARRIER_KEY = cbor2.dumps({"type": "leader-barrier"})


def decode_state(data: bytes, from_offset: int) -> tuple[list[T.TxnRecord], int, list[int]]:
    """The ``__transaction_state`` records in ``data`` (whole batches) at or after
    ``from_offset``: ``(records, the offset after the last batch, offsets of unreadable
    records)``. Barriers are skipped; a foreign record is reported, never fatal."""
    return decode_log(data, from_offset, BARRIER_KEY, T.from_kv)


def code_of(name: str) -> int:
    """The wire code of a core error name (Kafka's names)."""
    try:
        return int(E[name])
    except KeyError:
        return int(E.UNKNOWN_SERVER_ERROR)


def topic_partitions(topics: Any) -> list[T.TopicPartition]:
    return [T.TopicPartition(t.name, p) for t in topics for p in t.partitions]


def partition_results(codes: Mapping[T.TopicPartition, int]) -> tuple[P.TopicPartitionErrors, ...]:
    by_topic: dict[str, list[P.PartitionError]] = {}
    for tp in sorted(codes):
        by_topic.setdefault(tp.topic, []).append(
            P.PartitionError(partition=tp.partition, error_code=int(codes[tp])))
    return tuple(P.TopicPartitionErrors(name=t, partitions=tuple(ps))
                 for t, ps in by_topic.items())


def error_response(req: Any, code: int, message: str | None) -> object:
    """The typed reply of ``req`` carrying ``code`` for the whole request."""
    code = int(code)
    match req:
        case P.InitProducerIdRequest():
            return P.InitProducerIdResponse(error_code=code, error_message=message)
        case P.AddPartitionsToTxnRequest():
            codes = {tp: code for tp in topic_partitions(req.topics)}
            return P.AddPartitionsToTxnResponse(error_code=code, error_message=message,
                                                results=partition_results(codes))
        case P.AddOffsetsToTxnRequest():
            return P.AddOffsetsToTxnResponse(error_code=code, error_message=message)
        case P.EndTxnRequest():
            return P.EndTxnResponse(error_code=code, error_message=message)
        case P.ListTransactionsRequest():
            return P.ListTransactionsResponse(error_code=code)
        case P.DescribeTransactionsRequest():
            return P.DescribeTransactionsResponse(transaction_states=tuple(
                P.DescribedTransaction(transactional_id=t, error_code=code)
                for t in req.transactional_ids))
    return P.ErrorResponse(error_code=code, error_message=message)


def to_wire(req: Any, result: T.TxnResult) -> object:
    """The reply of ``req`` from the core's ``result``."""
    r = result.response
    match req:
        case P.InitProducerIdRequest():
            return P.InitProducerIdResponse(error_code=code_of(r.error), error_message=r.message,
                                            producer_id=r.producer_id,
                                            producer_epoch=r.producer_epoch)
        case P.EndTxnRequest():
            return P.EndTxnResponse(error_code=code_of(r.error), error_message=r.message,
                                    producer_id=r.producer_id, producer_epoch=r.producer_epoch)
        case P.AddOffsetsToTxnRequest():
            return P.AddOffsetsToTxnResponse(error_code=code_of(r.error), error_message=r.message)
        case P.AddPartitionsToTxnRequest():
            if isinstance(r, Mapping):  # per partition (verify_only, unknown partitions)
                codes = {tp: code_of(name) for tp, name in r.items()}
                distinct = set(codes.values())
                whole = distinct.pop() if len(distinct) == 1 else E.NONE
                if whole in (E.INVALID_TXN_STATE, E.UNKNOWN_TOPIC_OR_PARTITION):
                    whole = E.NONE  # a per-partition verdict, not the request's failure
                return P.AddPartitionsToTxnResponse(error_code=int(whole),
                                                    results=partition_results(codes))
            return error_response(req, code_of(r.error), r.message)
    raise ValueError(f"no answer for {type(req).__name__}")


def operation(
    req: Any,
    image: Any,
    offsets_partitions: int,
    allocate: Callable[[], int],
    clock: Callable[[], int],
) -> Callable[[T.TransactionCoordinator], T.TxnResult] | None:
    """The core call answering ``req`` (run when its turn in its shard's queue comes; the
    time is read then). ``image``: partitions must exist (and not be internal) to join;
    a group's offsets partition is ``partition_for(group, partitions of __consumer_offsets,
    else offsets.topic.num.partitions)``. None: not a coordinator request."""
    match req:
        case P.InitProducerIdRequest():
            return lambda c: c.init_producer_id(
                req.transactional_id, req.transaction_timeout_ms, clock(), allocate,
                producer_id=req.producer_id, producer_epoch=req.producer_epoch)
        case P.AddPartitionsToTxnRequest():
            tps = topic_partitions(req.topics)
            bad = {tp for tp in tps
                   if tp.topic.startswith("__") or image.partition(*tp) is None}
            if req.verify_only:
                return lambda c: T.TxnResult((), c.verify_partitions(
                    req.transactional_id, req.producer_id, req.producer_epoch, tps))
            if bad:  # none joins (Kafka's answer: the others were not attempted)
                codes = {tp: "UNKNOWN_TOPIC_OR_PARTITION" if tp in bad
                         else "OPERATION_NOT_ATTEMPTED" for tp in tps}
                return lambda c: T.TxnResult((), codes)
            return lambda c: c.add_partitions(
                req.transactional_id, req.producer_id, req.producer_epoch, tps, clock())
        case P.AddOffsetsToTxnRequest():
            if not req.group_id:
                return lambda c: T.TxnResult((), T.TxnOutcome("INVALID_REQUEST",
                                                              "the group id is empty"))
            topic = image.topics.get(OFFSETS_TOPIC)
            count = len(topic.partitions) if topic else offsets_partitions
            tp = T.TopicPartition(OFFSETS_TOPIC, partition_for(req.group_id, count))
            return lambda c: c.add_offsets(
                req.transactional_id, req.producer_id, req.producer_epoch, tp, clock())
        case P.EndTxnRequest():
            return lambda c: c.end_txn(
                req.transactional_id, req.producer_id, req.producer_epoch, req.committed,
                clock(), allocate, bump=req.transaction_version != 1)
    return None


def topic_configs(broker_configs: Mapping[str, str]) -> tuple[int, int, dict[str, str]]:
    """``(partitions, replication factor, configs)`` of ``__transaction_state`` (the factor
    and min ISR capped later by the registered brokers)."""
    c = BrokerConfig.of(broker_configs)
    return (
        c.int("transaction.state.log.num.partitions"),
        c.int("transaction.state.log.replication.factor"),
        {"cleanup.policy": "compact", "segment.bytes": c["transaction.state.log.segment.bytes"],
         "min.insync.replicas": c["transaction.state.log.min.isr"]},
    )


def find_coordinator(ctx: Any, req: P.FindCoordinatorRequest) -> P.FindCoordinatorResponse:
    """FindCoordinator key_type 1 (session thread): the leader of the transactional id's
    ``__transaction_state`` partition, from the metadata image. Creates the topic (through
    the controller) the first time it is needed: compacted, replication factor and min ISR
    capped at the registered brokers (internal_topics.coordinator_of)."""
    if not req.key:
        return P.FindCoordinatorResponse(error_code=E.INVALID_REQUEST,
                                          error_message="the transactional id must not be empty")

    def creatable(brokers: int) -> P.CreatableTopic:
        partitions, rf, configs = topic_configs(ctx.broker_configs)
        rf = min(rf, brokers)
        configs["min.insync.replicas"] = str(min(int(configs["min.insync.replicas"]), rf))
        return P.CreatableTopic(name=TXN_TOPIC, num_partitions=partitions,
                                replication_factor=rf, configs=configs)

    return coordinator_of(ctx, TXN_TOPIC, lambda n: partition_for(req.key, n), creatable)
