"""Kafka's transaction APIs on the KAFKA listener (docs/kafka-compat.md): AddPartitionsToTxn
(v0-v3, the client form), AddOffsetsToTxn (v0-v4), EndTxn (v0-v4), TxnOffsetCommit (v0-v4).

Each becomes the native request (transport/protocol.py) and goes where the native session
sends it: the first three to this broker's transaction coordinator actor
(actors/txn_coordinator.py, which answers NOT_COORDINATOR for a transactional id it does not
lead, as Kafka's does), TxnOffsetCommit to the group coordinator actor (KIP-447 pending
offsets). FindCoordinator key type 1 and InitProducerId are served by actors/kafka_groups.py
and actors/kafka_produce.py; the partition side (KIP-890 part 1 verification, markers,
read_committed) is the native one.

Transaction version: Kafka clients below EndTxn v5 (librdkafka, aiokafka, kafka-python, the
Java client without the ``transaction.version`` feature) keep their producer id and epoch
from one transaction to the next, so their EndTxn is sent with ``transaction_version=1``: the
coordinator bumps nothing and the markers carry the data's epoch (coordinator/transactions
``end_txn(bump=False)``). EndTxn v5 (KIP-890 part 2) is not announced.
"""

from __future__ import annotations

from typing import Any

import pykka
from loguru import logger
from rillet.transport import protocol as P

from . import txn_coordinator as TC
from .kafka_auth import gated
from .kafka_dispatch import Call, api
from .kafka_groups import ask, code, reply, schema
from .kafka_metadata import build
from .kafka_offsets import _nested, native_offset_topics

ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN, END_TXN, TXN_OFFSET_COMMIT = 24, 25, 26, 28
E = P.ErrorCode


def _error_code(answer: Any) -> int:
    """The error number of a native answer (a response, an ErrorResponse, a group Failure)."""
    for name in ("error_code", "code"):
        value = getattr(answer, name, None)
        if isinstance(value, int):
            return value
    return E.UNKNOWN_SERVER_ERROR


def _errors_by_topic(answer: Any, kind: type, topics: str,
                     wanted: list[tuple[str, int]]) -> dict[str, list[tuple[int, int]]]:
    """``{topic: [(partition, error code)]}`` for every partition asked about, from a native
    per-partition answer of ``kind`` (its topics under the attribute ``topics``); a
    whole-request error (any other answer) goes on every partition."""
    whole = _error_code(answer)
    got = {}
    if isinstance(answer, kind):
        got = {(t.name, p.partition): p.error_code
               for t in getattr(answer, topics) for p in t.partitions}
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for topic, partition in wanted:
        by_topic.setdefault(topic, []).append((partition, got.get((topic, partition), whole)))
    return by_topic


def _to_coordinator(call: Call, native: Any, convert) -> None:
    """Tell the transaction coordinator actor ``native``; its answer (any thread) goes to the
    client as ``convert(answer)``."""

    def respond(answer: Any) -> None:
        try:
            response = convert(answer)
        except Exception:  # noqa: BLE001 - a bug here must not leave the client waiting
            logger.exception("kafka api {}: could not shape the answer", call.request.api_key)
            response = convert(P.ErrorResponse(error_code=E.UNKNOWN_SERVER_ERROR))
        call.respond(response)

    native, respond = gated(call, native, respond)  # ACLs (actors/kafka_auth.py)
    if native is None:
        return
    ref = getattr(call.broker, "txn_coordinator", None)
    if ref is None:
        respond(TC.error_response(native, E.COORDINATOR_NOT_AVAILABLE, "starting"))
        return
    try:
        ref.tell(TC.TxnRequest(native, respond))
    except pykka.ActorDeadError:
        respond(TC.error_response(native, E.COORDINATOR_NOT_AVAILABLE, "stopped"))


# ------------------------------------------------------------------ AddPartitionsToTxn


@api(ADD_PARTITIONS_TO_TXN, 0, 3)
def add_partitions_to_txn(call: Call):
    req = call.request.body
    cls, mod = schema(call)
    topics = req.v3_and_below_topics
    wanted = [(t.name, int(p)) for t in topics for p in t.partitions]
    native = P.AddPartitionsToTxnRequest(
        transactional_id=req.v3_and_below_transactional_id,
        producer_id=int(req.v3_and_below_producer_id),
        producer_epoch=int(req.v3_and_below_producer_epoch),
        topics=tuple(P.TxnTopic(name=t.name, partitions=tuple(int(p) for p in t.partitions))
                     for t in topics))

    def convert(a: Any):
        by_topic = _errors_by_topic(a, P.AddPartitionsToTxnResponse, "results", wanted)
        return reply(cls, results_by_topic_v3_and_below=tuple(
            build(mod.AddPartitionsToTxnTopicResult, name=t, results_by_partition=tuple(
                build(mod.AddPartitionsToTxnPartitionResult, partition_index=p,
                      partition_error_code=code(err)) for p, err in ps))
            for t, ps in by_topic.items()))

    _to_coordinator(call, native, convert)


# -------------------------------------------------------------------- AddOffsetsToTxn


@api(ADD_OFFSETS_TO_TXN, 0, 4)
def add_offsets_to_txn(call: Call):
    req = call.request.body
    cls, _mod = schema(call)
    native = P.AddOffsetsToTxnRequest(
        transactional_id=req.transactional_id, producer_id=int(req.producer_id),
        producer_epoch=int(req.producer_epoch), group_id=req.group_id)
    _to_coordinator(call, native, lambda a: reply(cls, error_code=code(_error_code(a))))


# ----------------------------------------------------------------------------- EndTxn


@api(END_TXN, 0, 4)
def end_txn(call: Call):
    req = call.request.body
    cls, _mod = schema(call)
    native = P.EndTxnRequest(
        transactional_id=req.transactional_id, producer_id=int(req.producer_id),
        producer_epoch=int(req.producer_epoch), committed=bool(req.committed),
        transaction_version=1)  # the client keeps its epoch (module docstring)
    _to_coordinator(call, native, lambda a: reply(cls, error_code=code(_error_code(a))))


# -------------------------------------------------------------------- TxnOffsetCommit


@api(TXN_OFFSET_COMMIT, 0, 4)
def txn_offset_commit(call: Call):
    req = call.request.body
    cls, mod = schema(call)
    wanted = [(t.name, int(p.partition_index)) for t in req.topics for p in t.partitions]
    native = P.TxnOffsetCommitRequest(
        transactional_id=req.transactional_id, group_id=req.group_id,
        producer_id=int(req.producer_id), producer_epoch=int(req.producer_epoch),
        generation_id=int(getattr(req, "generation_id", -1)),  # v3+ (KIP-447)
        member_id=getattr(req, "member_id", "") or "",
        group_instance_id=getattr(req, "group_instance_id", None),
        topics=native_offset_topics(req.topics))
    topic_cls = _nested(mod, "TxnOffsetCommitResponseTopic")
    part_cls = _nested(mod, "TxnOffsetCommitResponsePartition")

    def convert(a: Any):
        by_topic = _errors_by_topic(a, P.TxnOffsetCommitResponse, "topics", wanted)
        return reply(cls, topics=tuple(build(topic_cls, name=t, partitions=tuple(
            build(part_cls, partition_index=p, error_code=code(err)) for p, err in ps))
            for t, ps in by_topic.items()))

    ask(call, native, convert)
