"""Fetch (key 1, v4-v17) and ListOffsets (key 2, v1-v7) on the KAFKA listener.

Both become the native request and go the ClientSession's way to the partition actors
(actors/kafka_routes.py): a consumer fetch reads below the high watermark, or below the
last stable offset with the aborted transactions for ``read_committed``; ``max_wait_ms`` /
``min_bytes`` park the fetch with the partitions' waiters (the native long poll). Fetch
answers are transcoded to Kafka batches (actors/kafka_transcode.py) on a small pool of its
own, not on the partition actor's thread that completed the fetch.

Fetch sessions (KIP-227): none. Every answer says ``session_id`` 0, which Kafka's
protocol defines as "no session": the client then sends full fetches (librdkafka never
opens one; the Java client and kafka-python fall back). A fetch naming a session id gets
FETCH_SESSION_ID_NOT_FOUND. From v13 topics are named by id (the metadata image's topic
ids); an unknown id gets UNKNOWN_TOPIC_ID.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from loguru import logger
from rillet.transport import protocol as P

from . import kafka_metrics, kafka_quotas
from .kafka_auth import gated
from .kafka_batch import KafkaBatchError
from .kafka_dispatch import Call, api
from .kafka_metadata import build
from .kafka_routes import SessionRoutes, kafka_error
from .kafka_transcode import to_kafka

FETCH, LIST_OFFSETS = 1, 2
_ZERO = i32Timedelta.parse(timedelta(0))
EARLIEST_LOCAL_TIMESTAMP = -4  # KIP-405: no tiered storage here, so the log start offset

# transcoding a fetch answer is CPU work: off the partition actors' dispatcher threads
_transcoders = ThreadPoolExecutor(2, thread_name_prefix="kafka-transcode")


def _ms(value) -> int:
    return int(value.total_seconds() * 1000) if isinstance(value, timedelta) else int(value)


_names_of: tuple[object, dict[uuid.UUID, str]] = (None, {})  # (image, its topic ids)


def _topic_names(image) -> dict[uuid.UUID, str]:
    """Topic id -> name in ``image``; computed once per image (images are replaced, never
    changed, so the last one's map is kept)."""
    global _names_of
    cached_image, names = _names_of
    if cached_image is image:
        return names
    names = {}
    for name, topic in image.topics.items():
        try:
            names[uuid.UUID(topic.topic_id)] = name
        except (TypeError, ValueError):
            continue
    _names_of = (image, names)
    return names


@api(FETCH, 4, 17)
def fetch(call: Call):
    req, version = call.request.body, call.request.api_version
    cls = load_response_schema(FETCH, version)
    mod = __import__(cls.__module__, fromlist=["PartitionData"])
    by_id = version >= 13
    if getattr(req, "session_id", 0) not in (0, None) or getattr(req, "session_epoch", -1) > 0:
        return build(cls, throttle_time=_ZERO, error_code=ErrorCode.fetch_session_id_not_found,
                     session_id=0, responses=())
    names = _topic_names(call.broker.image) if by_id else {}
    order: list[tuple[object, int]] = []  # (topic name or id as asked, partition)
    seen: set[tuple[object, int]] = set()
    unknown: dict[tuple[object, int], int] = {}
    topics = []
    for t in req.topics:
        asked = t.topic_id if by_id else t.topic
        name = names.get(asked) if by_id else asked
        parts = []
        for p in t.partitions:
            key = (asked, p.partition)
            if key in seen:
                continue  # named twice: answered once
            seen.add(key)
            order.append(key)
            if name is None:
                unknown[key] = P.ErrorCode.UNKNOWN_TOPIC_ID
                continue
            parts.append(P.FetchPartition(
                partition=p.partition, fetch_offset=p.fetch_offset,
                partition_max_bytes=p.partition_max_bytes,
                current_leader_epoch=getattr(p, "current_leader_epoch", -1)))
        if parts:
            topics.append(P.FetchTopic(name=name, partitions=tuple(parts)))
    isolation = int(req.isolation_level)
    native = P.FetchRequest(max_wait_ms=max(0, _ms(req.max_wait)), min_bytes=int(req.min_bytes),
                            max_bytes=kafka_quotas.fetch_max_bytes(call, int(req.max_bytes)),
                            isolation_level=isolation,
                            topics=tuple(topics))
    id_of = {name: asked for asked, name in names.items()} if by_id else {}

    routes = SessionRoutes(call.broker)
    metrics = kafka_metrics.of(call.broker)  # None: metrics off

    def answer(response) -> None:
        if metrics is not None:
            metrics.unparked(routes.state)
        _transcoders.submit(_respond, call, cls, mod, order, unknown, id_of, isolation, response)

    if not topics:
        answer(P.FetchResponse())
    else:
        native, answer = gated(call, native, answer)  # ACLs (actors/kafka_auth.py)
        if native is not None:
            if metrics is not None:  # a long poll parked in routes.state: the Fetch purgatory
                metrics.parking(routes.state)
            routes.fetch(native, answer)
    return None


def _respond(call, cls, mod, order, unknown, id_of, isolation, response) -> None:
    try:
        answer = _kafka_fetch_response(cls, mod, order, unknown, id_of, isolation, response)
        nbytes = sum(len(p.records or b"") for t in answer.responses for p in t.partitions)
        throttle_ms = kafka_quotas.fetched(call, nbytes)  # quotas (actors/kafka_quotas.py)
        if throttle_ms > 0:  # Kafka's throttled fetch: answered empty at once, then muted
            call.respond(build(cls, throttle_time=kafka_quotas.throttle_time(throttle_ms),
                               error_code=ErrorCode.none, session_id=0, responses=()))
            return
        kafka_metrics.fetched(call.broker, response)  # bytes and records out per topic
        call.respond(answer)
    except Exception:  # noqa: BLE001 - the connection closes; the broker goes on
        logger.exception("kafka fetch: cannot build the answer")
        call.respond(build(cls, throttle_time=_ZERO, error_code=ErrorCode.unknown_server_error,
                           session_id=0, responses=()))


def _kafka_fetch_response(cls, mod, order, unknown, id_of, isolation, response):
    if isinstance(response, P.ErrorResponse):
        return build(cls, throttle_time=_ZERO, error_code=kafka_error(response.error_code),
                     session_id=0, responses=())
    got = {(id_of.get(t.name, t.name), p.partition): p
           for t in response.topics for p in t.partitions}
    grouped: dict[object, list] = {}
    for key in order:
        p = got.get(key)
        if p is None:
            code = unknown.get(key, P.ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            p = P.FetchPartitionResponse(partition=key[1], error_code=code)
        try:
            records = to_kafka(p.records) if p.records else b""
            code = p.error_code
        except (KafkaBatchError, ValueError) as e:  # a damaged stored batch
            logger.warning("kafka fetch: cannot transcode {}: {}", key, e)
            records, code = b"", P.ErrorCode.CORRUPT_MESSAGE
        aborted = None
        if isolation == P.READ_COMMITTED:
            aborted = tuple(mod.AbortedTransaction(producer_id=a.producer_id,
                                                   first_offset=a.first_offset)
                            for a in p.aborted_transactions or ())
        grouped.setdefault(key[0], []).append(build(
            mod.PartitionData, partition_index=key[1], error_code=kafka_error(code),
            high_watermark=p.high_watermark, last_stable_offset=p.last_stable_offset,
            log_start_offset=p.log_start_offset, aborted_transactions=aborted,
            records=records))
    topics = tuple(build(mod.FetchableTopicResponse, topic=t, topic_id=t, partitions=tuple(ps))
                   for t, ps in grouped.items())
    return build(cls, throttle_time=_ZERO, error_code=ErrorCode.none, session_id=0,
                 responses=topics)


@api(LIST_OFFSETS, 1, 7)
def list_offsets(call: Call):
    req, version = call.request.body, call.request.api_version
    cls = load_response_schema(LIST_OFFSETS, version)
    mod = __import__(cls.__module__, fromlist=["ListOffsetsPartitionResponse"])
    order, seen, topics = [], set(), []
    for t in req.topics:
        parts = []
        for p in t.partitions:
            key = (t.name, p.partition_index)
            if key in seen:
                continue
            seen.add(key)
            order.append(key)
            ts = int(p.timestamp)
            parts.append(P.ListOffsetsPartition(
                partition=p.partition_index,
                timestamp=P.EARLIEST_TIMESTAMP if ts == EARLIEST_LOCAL_TIMESTAMP else ts,
                current_leader_epoch=getattr(p, "current_leader_epoch", -1)))
        topics.append(P.ListOffsetsTopic(name=t.name, partitions=tuple(parts)))
    native = P.ListOffsetsRequest(isolation_level=int(getattr(req, "isolation_level", 0)),
                                  topics=tuple(topics))

    def answer(response) -> None:
        got = {}
        if isinstance(response, P.ListOffsetsResponse):
            got = {(t.name, p.partition): p for t in response.topics for p in t.partitions}
        grouped: dict[str, list] = {}
        for key in order:
            p = got.get(key) or P.ListOffsetsPartitionResponse(
                partition=key[1], error_code=getattr(response, "error_code",
                                                     P.ErrorCode.UNKNOWN_SERVER_ERROR))
            grouped.setdefault(key[0], []).append(build(
                mod.ListOffsetsPartitionResponse, partition_index=key[1],
                error_code=kafka_error(p.error_code), timestamp=p.timestamp, offset=p.offset,
                leader_epoch=p.leader_epoch))
        call.respond(build(cls, throttle_time=_ZERO, topics=tuple(
            build(mod.ListOffsetsTopicResponse, name=n, partitions=tuple(ps))
            for n, ps in grouped.items())))

    if not order:
        answer(P.ListOffsetsResponse())
    else:
        native, answer = gated(call, native, answer)
        if native is not None:
            SessionRoutes(call.broker).list_offsets(native, answer)
    return None
