"""Produce (key 0, v3-v11) and InitProducerId (key 22, v0-v5) on the KAFKA listener.

Produce: each partition's v2 batch is transcoded to a rillet batch (actors/kafka_transcode.py;
a batch that does not decode, or fails its CRC-32C, is answered CORRUPT_MESSAGE for its
partition, the others are appended), then the native ProduceRequest goes the
ClientSession's way to the partition leaders (actors/kafka_routes.py): acks 0/1/all,
``min.insync.replicas``, NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
MESSAGE_TOO_LARGE, and the idempotent producer's sequence checks (a duplicate is answered
with the offset of the batch it repeats; a gap OUT_OF_ORDER_SEQUENCE_NUMBER) are the native
ones. acks=0 gets no answer, as in Kafka.

InitProducerId without a transactional id: a producer id from the controller (the native
idempotent producer's), so Kafka's ``enable.idempotence`` works. With a transactional id:
the transaction coordinator, as natively; the transaction APIs themselves are not served
on the KAFKA listener yet (docs/kafka-compat.md).
"""

from __future__ import annotations

from datetime import timedelta

from kio.static.primitive import i32Timedelta
from rillet.transport import protocol as P

from . import controller as C
from . import kafka_quotas
from . import txn_coordinator as TC
from .kafka_auth import gated
from .kafka_batch import KafkaBatchError
from .kafka_dispatch import Call, api
from .kafka_metadata import build
from .kafka_produce_fast import PartitionAnswer, ProduceAnswer, TopicAnswer
from .kafka_routes import SessionRoutes, kafka_error
from .kafka_schemas import load_response_schema
from .kafka_transcode import to_rillet

PRODUCE, INIT_PRODUCER_ID = 0, 22
_ZERO = i32Timedelta.parse(timedelta(0))
E = P.ErrorCode


def _ms(value) -> int:
    return int(value.total_seconds() * 1000) if isinstance(value, timedelta) else int(value)


@api(PRODUCE, 3, 11)
def produce(call: Call):
    req, version = call.request.body, call.request.api_version
    acks = int(req.acks)
    throttle_ms = kafka_quotas.produced(call)  # quotas: the request's bytes, as Kafka's
    order: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    refused: dict[tuple[str, int], tuple[int, str | None]] = {}
    topics = []
    for t in req.topic_data:
        parts = []
        for p in t.partition_data:
            key = (t.name, p.index)
            if key in seen:
                refused[key] = (E.INVALID_REQUEST, "partition named twice")
                continue
            seen.add(key)
            order.append(key)
            try:
                if p.records is None:
                    raise KafkaBatchError("null records")
                records = to_rillet(p.records)
            except KafkaBatchError as e:
                refused[key] = (E.CORRUPT_MESSAGE, str(e))
                continue
            parts.append(P.ProducePartition(partition=p.index, records=records))
        if parts:
            topics.append(P.ProduceTopic(name=t.name, partitions=tuple(parts)))

    def answer(response) -> None:
        got = {}
        if isinstance(response, P.ProduceResponse):
            got = {(t.name, p.partition): p for t in response.topics for p in t.partitions}
        grouped: dict[str, list] = {}
        for key in order:
            p = got.get(key)
            if key in refused:
                code, message = refused[key]
            elif p is None:
                code = getattr(response, "error_code", E.UNKNOWN_SERVER_ERROR)
                message = getattr(response, "error_message", None)
            else:
                code, message = p.error_code, p.error_message
            grouped.setdefault(key[0], []).append(PartitionAnswer(
                index=key[1], error_code=kafka_error(code).value,
                base_offset=p.base_offset if p is not None and code == E.NONE else -1,
                log_append_time=_append_time_ms(p, code),
                log_start_offset=p.log_start_offset if p is not None else -1,
                error_message=message))
        # kio's response, encoded by hand (actors/kafka_produce_fast.py)
        call.respond(ProduceAnswer(
            version=version, throttle_time=kafka_quotas.throttle_time(throttle_ms),
            responses=tuple(TopicAnswer(name=n, partition_responses=tuple(ps))
                            for n, ps in grouped.items())))

    native = P.ProduceRequest(acks=acks, timeout_ms=max(0, _ms(req.timeout)),
                              transactional_id=req.transactional_id, topics=tuple(topics))
    if acks == 0:  # no answer; the appends are already in the partitions' mailboxes
        allowed = gated(call, native, lambda _r: None)[0] if topics else None
        if allowed is not None:  # a denied partition of acks=0 is dropped, unanswered
            SessionRoutes(call.broker).produce(allowed, lambda _r: None, lambda: None)
        call.mute_ms = throttle_ms  # no answer to carry it: the connection is muted alone
        call.respond(None)
    elif acks not in (-1, 1):
        answer(P.ErrorResponse(error_code=E.INVALID_REQUIRED_ACKS,
                               error_message=f"acks={acks}"))
    elif topics:
        native, answer = gated(call, native, answer)  # ACLs (actors/kafka_auth.py)
        if native is not None:
            SessionRoutes(call.broker).produce(native, answer, lambda: None)
    else:
        answer(P.ProduceResponse())
    return None


@api(INIT_PRODUCER_ID, 0, 5)
def init_producer_id(call: Call):
    req, version = call.request.body, call.request.api_version
    cls = load_response_schema(INIT_PRODUCER_ID, version)
    ctx = call.broker

    def answer(response) -> None:
        call.respond(build(cls, throttle_time=_ZERO,
                           error_code=kafka_error(getattr(response, "error_code", E.NONE)),
                           producer_id=getattr(response, "producer_id", -1),
                           producer_epoch=getattr(response, "producer_epoch", -1)))

    native = P.InitProducerIdRequest(
        transactional_id=req.transactional_id or None,
        transaction_timeout_ms=_ms(req.transaction_timeout),
        producer_id=int(getattr(req, "producer_id", -1)),
        producer_epoch=int(getattr(req, "producer_epoch", -1)),
    )
    native, answer = gated(call, native, answer)
    if native is None:
        return None
    if native.transactional_id:  # the transactional id's coordinator, as natively
        if ctx.txn_coordinator is None:
            answer(P.InitProducerIdResponse(error_code=E.COORDINATOR_NOT_AVAILABLE))
        else:
            ctx.txn_coordinator.tell(TC.TxnRequest(native, answer))
    elif ctx.controller is None:
        answer(P.InitProducerIdResponse(error_code=E.COORDINATOR_NOT_AVAILABLE))
    else:  # the controller allocates ids (forwarded to the active one), as natively
        ctx.controller.tell(C.Admin(native, answer, forwardable=True))
    return None


def _append_time_ms(p, code: int) -> int:
    """A LogAppendTime topic's stamp for Kafka's ProduceResponse (-1: CreateTime)."""
    ms = getattr(p, "log_append_time_ms", -1) if p is not None and code == E.NONE else -1
    return ms if ms >= 0 else -1
