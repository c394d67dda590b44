"""Fetch (key 1, v4-v17) and ListOffsets (key 2, v1-v7) on the KAFKA listener.

Both become the native request and go the ClientSession's way to the partition actors
(actors/kafka_routes.py): a consumer fetch reads below the high watermark, or below the
last stable offset with the aborted transactions for ``read_committed``; ``max_wait_ms`` /
``min_bytes`` park the fetch with the partitions' waiters (the native long poll). Fetch
answers are transcoded to Kafka batches (actors/kafka_transcode.py) on a small pool of its
own, not on the partition actor's thread that completed the fetch.

Fetch sessions (KIP-227): a Fetch with ``session_epoch`` 0 opens one (its answer carries
the session id, unless ``max.incremental.fetch.session.cache.slots`` are all taken); later
fetches at the session's next epoch name only changed partitions and are answered only for
partitions with records, an error or changed offsets (coordinator/kafka_fetch_sessions.py,
actors/kafka_fetch_sessions.py). Epoch -1 (librdkafka's only mode) is a sessionless full
fetch. From v13 topics are named by id (the metadata image's topic
ids); an unknown id gets UNKNOWN_TOPIC_ID.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from loguru import logger
from rillet.coordinator import kafka_fetch_sessions as S
from rillet.transport import protocol as P

from . import kafka_fetch_sessions, kafka_metrics, kafka_quotas
from .kafka_auth import gated
from .kafka_batch import KafkaBatchError
from .kafka_dispatch import Call, api
from .kafka_metadata import build
from .kafka_routes import SessionRoutes, kafka_error
from .kafka_schemas import load_response_schema
from .kafka_transcode import RECENT, TRANSCODED, to_kafka_parts
from .kafka_wire import Chunks

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
    names = _topic_names(call.broker.image) if by_id else {}
    # (topic name or None if its id is unknown, the topic as asked, partition), in order
    asked_keys: list[tuple[str | None, object, int]] = []
    requested: list[tuple[tuple[str, int], S.CachedPartition]] = []
    seen: set[tuple[object, int]] = set()
    for t in req.topics:
        asked = t.topic_id if by_id else t.topic
        name = names.get(asked) if by_id else asked
        for p in t.partitions:
            if (asked, p.partition) in seen:
                continue  # named twice: answered once
            seen.add((asked, p.partition))
            asked_keys.append((name, asked, p.partition))
            if name is not None:
                requested.append(((name, p.partition), S.CachedPartition(
                    int(p.fetch_offset), int(p.partition_max_bytes),
                    int(getattr(p, "current_leader_epoch", -1)),
                    topic_id=asked if by_id else None)))
    forgotten = []
    for t in getattr(req, "forgotten_topics_data", ()) or ():
        name = names.get(t.topic_id) if by_id else t.topic
        if name is not None:
            forgotten.extend((name, int(p)) for p in t.partitions)
    ctx = kafka_fetch_sessions.of(call.broker).context(
        int(getattr(req, "session_id", 0)), int(getattr(req, "session_epoch", S.FINAL_EPOCH)),
        requested, forgotten)
    if ctx.error:
        return build(cls, throttle_time=_ZERO, error_code=ErrorCode(ctx.error), session_id=0,
                     responses=())
    # what the answer lists, in order: every partition asked for (unknown ids with an
    # error), then for an incremental fetch the session's other partitions (filtered later)
    order: list[tuple[object, int]] = []
    unknown: dict[tuple[object, int], int] = {}
    for name, asked, partition in asked_keys:
        order.append((asked, partition))
        if name is None:
            unknown[(asked, partition)] = P.ErrorCode.UNKNOWN_TOPIC_ID
    if not ctx.full:
        listed = set(order)
        for (name, partition), c in ctx.partitions.items():
            # from v13 the answer names the topic by the id the client fetched it with
            key = (c.topic_id if by_id and c.topic_id is not None else name, partition)
            if key not in listed:
                order.append(key)
    grouped: dict[str, list] = {}
    for (name, partition), c in ctx.partitions.items():
        grouped.setdefault(name, []).append(P.FetchPartition(
            partition=partition, fetch_offset=c.fetch_offset,
            partition_max_bytes=c.partition_max_bytes,
            current_leader_epoch=c.current_leader_epoch))
    topics = [P.FetchTopic(name=n, partitions=tuple(ps)) for n, ps in grouped.items()]
    isolation = int(req.isolation_level)
    native = P.FetchRequest(max_wait_ms=max(0, _ms(req.max_wait)), min_bytes=int(req.min_bytes),
                            max_bytes=kafka_quotas.fetch_max_bytes(call, int(req.max_bytes)),
                            isolation_level=isolation,
                            topics=tuple(topics))
    name_of = names  # topic id -> name (v13+); empty before

    routes = SessionRoutes(call.broker)
    metrics = kafka_metrics.of(call.broker)  # None: metrics off
    answer_of = _Answer(cls, mod, order, unknown, name_of, isolation, ctx,
                        kafka_fetch_sessions.of(call.broker))

    def answer(response) -> None:
        if metrics is not None:
            metrics.unparked(routes.state)
        _transcoders.submit(_respond, call, answer_of, response)

    if not topics:
        answer(P.FetchResponse())
    else:
        native, answer = gated(call, native, answer)  # ACLs (actors/kafka_auth.py)
        if native is not None:
            if metrics is not None:  # a long poll parked in routes.state: the Fetch purgatory
                metrics.parking(routes.state)
            routes.fetch(native, answer)
    return None


class _Answer:
    """How one fetch's native answer becomes its Kafka answer (on a transcoder thread)."""

    __slots__ = ("cls", "mod", "order", "unknown", "name_of", "isolation", "ctx", "sessions")

    def __init__(self, cls, mod, order, unknown, name_of, isolation, ctx, sessions) -> None:
        self.cls, self.mod, self.order, self.unknown = cls, mod, order, unknown
        self.name_of, self.isolation, self.ctx, self.sessions = name_of, isolation, ctx, sessions

    def error(self, code) -> Any:
        return build(self.cls, throttle_time=_ZERO, error_code=code, session_id=0, responses=())


def _respond(call, how: _Answer, response) -> None:
    try:
        if not isinstance(response, P.ErrorResponse):  # quotas (actors/kafka_quotas.py)
            nbytes = sum(len(p.records or b"") for t in response.topics for p in t.partitions)
            throttle_ms = kafka_quotas.fetched(call, nbytes)
            if throttle_ms > 0:  # Kafka's throttled fetch: answered empty at once, then
                # muted; the fetch session is left as it was (getThrottledResponse)
                call.respond(build(how.cls, throttle_time=kafka_quotas.throttle_time(
                    throttle_ms), error_code=ErrorCode.none, session_id=how.ctx.session_id,
                    responses=()))
                return
        answer = _kafka_fetch_response(how, response)
        kafka_metrics.fetched(call.broker, response)  # bytes and records out per topic
        call.respond(answer)
    except Exception:  # noqa: BLE001 - the connection closes; the broker goes on
        logger.exception("kafka fetch: cannot build the answer")
        call.respond(how.error(ErrorCode.unknown_server_error))


def _kafka_fetch_response(how: _Answer, response):
    if isinstance(response, P.ErrorResponse):
        return how.error(kafka_error(response.error_code))
    mod, ctx, name_of = how.mod, how.ctx, how.name_of
    got = {(t.name, p.partition): p for t in response.topics for p in t.partitions}
    grouped: dict[object, list] = {}
    for key in how.order:
        name = name_of.get(key[0], key[0])
        p = got.get((name, key[1]))
        if p is None:
            code = how.unknown.get(key, P.ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            p = P.FetchPartitionResponse(partition=key[1], error_code=code)
        if ctx.session is not None and not how.sessions.answered(ctx, (name, key[1]), S.PartitionAnswer(
                bool(p.records), int(p.error_code), p.high_watermark, p.last_stable_offset,
                p.log_start_offset)):
            continue  # an incremental fetch: nothing new for this partition
        try:
            records = Chunks(to_kafka_parts(p.records, RECENT, TRANSCODED)) if p.records else b""
            code = p.error_code
        except (KafkaBatchError, ValueError) as e:  # a damaged stored batch
            logger.warning("kafka fetch: cannot transcode {}: {}", key, e)
            records, code = b"", P.ErrorCode.CORRUPT_MESSAGE
        aborted = None
        if how.isolation == P.READ_COMMITTED:
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
    return build(how.cls, throttle_time=_ZERO, error_code=ErrorCode.none,
                 session_id=ctx.session_id, responses=topics)


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
