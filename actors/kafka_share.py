"""ShareFetch (key 78) and ShareAcknowledge (key 79), v1, on the KAFKA listener (KIP-932):
Kafka share consumers (librdkafka's ``rd_kafka_share_*``, confluent-kafka's
``ShareConsumer``) fetch from and acknowledge to the same share-partitions as rillet's own
``ShareConsumer`` (actors/share_partition.py, docs/queues.md).

Each request goes through the broker's share session of its (group, member)
(actors/kafka_share_sessions.py: epochs, added and forgotten partitions), becomes the native
request naming every partition of the session (topic ids turned into names through the
metadata image; an id the image does not know gets UNKNOWN_TOPIC_ID), passes the ACL gate
(READ on the GROUP and on each TOPIC, authorize_rules.py) and goes to the
SharePartitionManager actor, exactly as a native client's would: the acquisition locks,
delivery counts, the delivery-count limit, the dead-letter topic and the group's release
back-off are the native ones. Records come back as the stored batches that hold an acquired
offset, transcoded to Kafka v2 batches (actors/kafka_transcode.py) off the actor's thread;
the client keeps only the ``acquired_records`` ranges.

Acknowledge types: 0 gap, 1 accept, 2 release, 3 reject (v1 has no renew). A release takes
the group's back-off (``retry.backoff.ms`` and friends, as a native ``release`` with no
delay); with ``retry.backoff.ms`` 0 it is redelivered at once, as in Kafka. A reject goes to
the group's dead-letter topic (reason "rejected"). The answer to acknowledgements waits
until their new states are durable, as natively.

An answer names the partitions that carried acknowledgements, got records or failed; a
partition of the session with nothing to say is left out (as Kafka's incremental answers).
Closing a share session (epoch -1: librdkafka's ``close()``) releases the records the member
still holds in the session's partitions at once, as Kafka's broker does.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pykka
from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from loguru import logger
from rillet.transport import protocol as P

from . import kafka_share_sessions as S
from . import share_partition as SP
from .kafka_auth import gated, who_of
from .kafka_batch import KafkaBatchError
from .kafka_dispatch import Call, api
from .kafka_groups import code, schema
from .kafka_metadata import build, topic_uuid
from .kafka_transcode import to_kafka

SHARE_FETCH, SHARE_ACKNOWLEDGE = 78, 79
ACK_TYPES_V1 = frozenset({P.ACK_GAP, P.ACK_ACCEPT, P.ACK_RELEASE, P.ACK_REJECT})
_ZERO = i32Timedelta.parse(timedelta(0))

# transcoding a ShareFetch answer is CPU work: off the share-partition actor's thread
_transcoders = ThreadPoolExecutor(2, thread_name_prefix="kafka-share-transcode")


def _ids(image) -> tuple[dict[uuid.UUID, str], dict[str, uuid.UUID]]:
    """(topic id -> name, name -> topic id) of the metadata ``image``."""
    by_id, by_name = {}, {}
    for name, topic in image.topics.items():
        tid = topic_uuid(topic.topic_id)
        if tid is not None:
            by_id[tid], by_name[name] = name, tid
    return by_id, by_name


def _now(call: Call) -> int:
    return call.broker.clock()


def _acks(batches, allowed: frozenset[int]) -> tuple[P.AcknowledgementBatch, ...] | None:
    """The native acknowledgement batches (None: an acknowledge type this version lacks, or
    a batch with no type or reversed offsets)."""
    out = []
    for b in batches:
        types = tuple(int(t) for t in b.acknowledge_types)
        if not types or any(t not in allowed for t in types) or b.first_offset > b.last_offset:
            return None
        out.append(P.AcknowledgementBatch(first_offset=int(b.first_offset),
                                          last_offset=int(b.last_offset),
                                          acknowledge_types=types))
    return tuple(out)


class _Plan:
    """One request's partitions: the native topics to send, and the per-partition answers
    known before asking (unknown topic ids, bad acknowledgements)."""

    def __init__(self) -> None:
        self.native: dict[str, list[P.ShareFetchPartition]] = {}
        self.early: dict[tuple[uuid.UUID, int], tuple[int, int, str | None]] = {}
        self.named: set[tuple[uuid.UUID, int]] = set()  # answered even without records

    def add(self, by_id, tid, partition: int, batches=(), *, named: bool) -> None:
        key = (tid, partition)
        if named:
            self.named.add(key)
        name = by_id.get(tid)
        if name is None:
            self.early[key] = (ErrorCode.unknown_topic_id, 0, None)
            return
        self.native.setdefault(name, []).append(P.ShareFetchPartition(
            partition=partition, acknowledgement_batches=tuple(batches)))

    def topics(self, cls) -> tuple:
        return tuple(cls(name=n, partitions=tuple(ps)) for n, ps in self.native.items())


def _parse_acks(topics, allowed) -> tuple[dict, dict]:
    """({(topic id, partition): native batches}, {(topic id, partition): refusal})."""
    acks, bad = {}, {}
    for t in topics:
        for p in t.partitions:
            key = (t.topic_id, int(p.partition_index))
            if not p.acknowledgement_batches:
                continue
            native = _acks(p.acknowledgement_batches, allowed)
            if native is None or key in acks:
                bad[key] = "acknowledgements with an unknown type, no type or reversed offsets" \
                    if native is None else "a partition named twice"
            else:
                acks[key] = native
    return acks, bad


def _tell(call: Call, native: Any, respond) -> None:
    native, respond = gated(call, native, respond)  # ACLs (actors/kafka_auth.py)
    if native is None:
        return
    ref = call.broker.share_partitions
    if ref is None:
        respond(P.ErrorResponse(error_code=P.ErrorCode.COORDINATOR_NOT_AVAILABLE,
                                error_message="the share-partition manager is starting"))
        return
    try:
        ref.tell(SP.ShareRequest(native, respond))
    except pykka.ActorDeadError:
        respond(P.ErrorResponse(error_code=P.ErrorCode.COORDINATOR_NOT_AVAILABLE,
                                error_message="the share-partition manager stopped"))


def _release(call: Call, req: Any, context: S.Context, by_id, response: Any) -> None:
    """A closed share session (epoch -1) that passed: what the member still holds in its
    partitions is available again at once, as Kafka's broker releases a closed session's
    records (``ReleaseMember``, after the request's own acknowledgements were applied)."""
    parts = tuple((by_id[t], p) for t, p in context.closed if t in by_id)
    ref = call.broker.share_partitions
    if not context.final or not parts or ref is None or getattr(response, "error_code", 1):
        return
    try:
        ref.tell(SP.ReleaseMember(req.group_id, req.member_id, parts))
    except pykka.ActorDeadError:
        pass


def _group_denied(call: Call, group_id: str) -> str | None:
    """Why this connection may not READ the group (Kafka checks it before the share session
    is touched, so a refused client opens no session), or None."""
    w = who_of(call)
    if w is None or w.may("READ", "GROUP", group_id):
        return None
    return f"{w.principal} may not read group {group_id!r}"


def _leader(mod, call: Call, error: int, epoch: int):
    return build(mod.LeaderIdAndEpoch, leader_id=call.broker.broker_id if not error else -1,
                 leader_epoch=epoch)


# ---------------------------------------------------------------------------- ShareFetch


@api(SHARE_FETCH, 1, 1)
def share_fetch(call: Call):
    req = call.request.body
    cls, mod = schema(call)

    def whole(err, message=None):
        return build(cls, throttle_time=_ZERO, error_code=code(err), error_message=message,
                     acquisition_lock_timeout=_ZERO, responses=(), node_endpoints=())

    if not req.group_id or not req.member_id:
        return whole(ErrorCode.invalid_request, "group_id and member_id must not be empty")
    if (denied := _group_denied(call, req.group_id)) is not None:
        return whole(ErrorCode.group_authorization_failed, denied)
    acks, bad = _parse_acks(req.topics, ACK_TYPES_V1)
    epoch = int(req.share_session_epoch)
    context = S.of(call.broker).fetch(
        (req.group_id, req.member_id), epoch,
        [(t.topic_id, int(p.partition_index)) for t in req.topics for p in t.partitions],
        [(t.topic_id, int(p)) for t in req.forgotten_topics_data for p in t.partitions],
        bool(acks or bad), _now(call))
    if context.error:
        return whole(context.error, context.message)
    by_id, by_name = _ids(call.broker.image)
    plan = _Plan()
    for key, message in bad.items():
        plan.named.add(key)
        plan.early[key] = (0, ErrorCode.invalid_request, message)
    for tid, partition in context.partitions:
        if (tid, partition) not in bad:
            plan.add(by_id, tid, partition, acks.get((tid, partition), ()),
                     named=(tid, partition) in acks)
    native = P.ShareFetchRequest(
        group_id=req.group_id, member_id=req.member_id,
        max_wait_ms=max(0, int(req.max_wait / timedelta(milliseconds=1))),
        min_bytes=max(0, int(req.min_bytes)), max_bytes=max(1, int(req.max_bytes)),
        max_records=0 if context.final else max(0, int(req.max_records)),
        topics=plan.topics(P.ShareFetchTopic))

    def answer(response: Any) -> None:
        _release(call, req, context, by_id, response)
        _transcoders.submit(_fetch_answer, call, cls, mod, plan, by_name, response)

    if not native.topics:
        answer(P.ShareFetchResponse())
    else:
        _tell(call, native, answer)
    return None


def _fetch_answer(call, cls, mod, plan: _Plan, by_name, response) -> None:
    try:
        call.respond(_fetch_response(call, cls, mod, plan, by_name, response))
    except Exception:  # noqa: BLE001 - the client gets an error; the broker goes on
        logger.exception("kafka share fetch: cannot build the answer")
        call.respond(build(cls, throttle_time=_ZERO, error_code=ErrorCode.unknown_server_error,
                           acquisition_lock_timeout=_ZERO, responses=(), node_endpoints=()))


def _fetch_response(call, cls, mod, plan: _Plan, by_name, response):
    if not isinstance(response, P.ShareFetchResponse) or response.error_code:
        return build(cls, throttle_time=_ZERO, error_code=code(response.error_code),
                     error_message=getattr(response, "error_message", None),
                     acquisition_lock_timeout=_ZERO, responses=(), node_endpoints=())
    out: dict[uuid.UUID, list] = {}
    for (tid, partition), (err, ack_err, message) in plan.early.items():
        out.setdefault(tid, []).append(build(
            mod.PartitionData, partition_index=partition, error_code=code(err),
            acknowledge_error_code=int(ack_err), acknowledge_error_message=message,
            current_leader=_leader(mod, call, err, -1), records=b"", acquired_records=()))
    for t in response.topics:
        tid = by_name.get(t.name)
        for p in t.partitions:
            if tid is None or not (p.acquired_records or p.error_code or p.acknowledge_error_code
                                   or (tid, p.partition) in plan.named):
                continue
            records, err = b"", p.error_code
            if p.records and not err:
                try:
                    records = to_kafka(p.records)
                except (KafkaBatchError, ValueError) as e:  # a damaged stored batch
                    logger.warning("kafka share fetch: cannot transcode {}-{}: {}",
                                   t.name, p.partition, e)
                    err = P.ErrorCode.CORRUPT_MESSAGE
            out.setdefault(tid, []).append(build(
                mod.PartitionData, partition_index=p.partition, error_code=code(err),
                error_message=p.error_message if err == p.error_code else None,
                acknowledge_error_code=int(p.acknowledge_error_code),
                acknowledge_error_message=p.acknowledge_error_message,
                current_leader=_leader(mod, call, err, p.leader_epoch), records=records,
                acquired_records=() if err else tuple(
                    build(mod.AcquiredRecords, first_offset=a.first_offset,
                          last_offset=a.last_offset, delivery_count=a.delivery_count)
                    for a in p.acquired_records)))
    return build(cls, throttle_time=_ZERO, error_code=ErrorCode.none,
                 acquisition_lock_timeout=i32Timedelta.parse(
                     timedelta(milliseconds=response.acquisition_lock_timeout_ms)),
                 responses=tuple(build(mod.ShareFetchableTopicResponse, topic_id=tid,
                                       partitions=tuple(ps)) for tid, ps in out.items()),
                 node_endpoints=())


# ---------------------------------------------------------------------- ShareAcknowledge


@api(SHARE_ACKNOWLEDGE, 1, 1)
def share_acknowledge(call: Call):
    req = call.request.body
    cls, mod = schema(call)

    def whole(err, message=None):
        return build(cls, throttle_time=_ZERO, error_code=code(err), error_message=message,
                     responses=(), node_endpoints=())

    if not req.group_id or not req.member_id:
        return whole(ErrorCode.invalid_request, "group_id and member_id must not be empty")
    if (denied := _group_denied(call, req.group_id)) is not None:
        return whole(ErrorCode.group_authorization_failed, denied)
    context = S.of(call.broker).acknowledge((req.group_id, req.member_id),
                                            int(req.share_session_epoch), _now(call))
    if context.error:
        return whole(context.error, context.message)
    acks, bad = _parse_acks(req.topics, ACK_TYPES_V1)
    by_id, by_name = _ids(call.broker.image)
    plan = _Plan()
    for key, message in bad.items():
        plan.early[key] = (ErrorCode.invalid_request, 0, message)
    for (tid, partition), batches in acks.items():
        if (tid, partition) not in bad:
            plan.add(by_id, tid, partition, batches, named=True)
    native = P.ShareAcknowledgeRequest(group_id=req.group_id, member_id=req.member_id,
                                       topics=plan.topics(P.ShareAcknowledgeTopic))

    def answer(response: Any) -> None:
        _release(call, req, context, by_id, response)
        call.respond(_acknowledge_response(call, cls, mod, plan, by_name, response))

    if not native.topics:
        answer(P.ShareAcknowledgeResponse())
    else:
        _tell(call, native, answer)
    return None


def _acknowledge_response(call, cls, mod, plan: _Plan, by_name, response):
    if not isinstance(response, P.ShareAcknowledgeResponse) or response.error_code:
        return build(cls, throttle_time=_ZERO, error_code=code(response.error_code),
                     error_message=getattr(response, "error_message", None), responses=(),
                     node_endpoints=())
    out: dict[uuid.UUID, list] = {}
    rows = [(tid, p, err, msg) for (tid, p), (err, _a, msg) in plan.early.items()]
    rows += [(by_name.get(t.name), p.partition, p.error_code, None)
             for t in response.results for p in t.partitions]
    for tid, partition, err, message in rows:
        if tid is None:
            continue
        out.setdefault(tid, []).append(build(
            mod.PartitionData, partition_index=partition, error_code=code(err),
            error_message=message, current_leader=_leader(mod, call, err, -1)))
    return build(cls, throttle_time=_ZERO, error_code=ErrorCode.none,
                 responses=tuple(build(mod.ShareAcknowledgeTopicResponse, topic_id=tid,
                                       partitions=tuple(ps)) for tid, ps in out.items()),
                 node_endpoints=())
