"""Kafka's offset APIs on the KAFKA listener (docs/kafka-compat.md): OffsetCommit,
OffsetFetch (v8+: several groups in one request), OffsetDelete.

They become the native requests of the group coordinator actor (transport/protocol.py), so
a group's offsets are one set of ``offset_commit`` records in ``__consumer_offsets``
whichever client wrote them: a Kafka consumer's commits show in ``rillet group describe``
and a native consumer's in a Kafka client's OffsetFetch. A classic member's commit carries
its generation (checked by actors/group_classic.py ``commit_request``).
"""

from __future__ import annotations

import threading
from typing import Any

from kio.schema.errors import ErrorCode
from rillet.transport import protocol as P

from .kafka_dispatch import Call, api
from .kafka_groups import ask, code, reply, schema
from .kafka_metadata import build

OFFSET_COMMIT, OFFSET_FETCH, OFFSET_DELETE = 8, 9, 47


def _nested(mod: Any, *names: str) -> type:
    """kio names a nested class differently across versions (Topic / Topics)."""
    for name in names:
        if hasattr(mod, name):
            return getattr(mod, name)
    raise AttributeError(names)


def _errors_by_topic(wanted: list[tuple[str, int]], response: Any) -> dict[str, list]:
    """Per-partition error codes of a native commit/delete answer, for every partition the
    request named (a whole-request error applies to each)."""
    got = {(t.name, p.partition): p.error_code for t in response.topics for p in t.partitions}
    out: dict[str, list] = {}
    for topic, partition in wanted:
        err = got.get((topic, partition), response.error_code)
        out.setdefault(topic, []).append((partition, err))
    return out


def native_offset_topics(topics) -> tuple[P.OffsetCommitTopic, ...]:
    """A Kafka OffsetCommit's or TxnOffsetCommit's topics as rillet's OffsetCommitTopics."""
    return tuple(P.OffsetCommitTopic(name=t.name, partitions=tuple(
        P.OffsetCommitPartition(
            partition=int(p.partition_index), committed_offset=int(p.committed_offset),
            committed_leader_epoch=int(getattr(p, "committed_leader_epoch", -1)),
            committed_metadata=p.committed_metadata or "")
        for p in t.partitions)) for t in topics)


@api(OFFSET_COMMIT, 2, 9)
def offset_commit(call: Call):
    req = call.request.body
    cls, mod = schema(call)
    wanted = [(t.name, p.partition_index) for t in req.topics for p in t.partitions]
    native = P.OffsetCommitRequest(
        group_id=req.group_id, member_id=req.member_id,
        member_epoch=int(req.generation_id_or_member_epoch),
        group_instance_id=getattr(req, "group_instance_id", None),
        topics=native_offset_topics(req.topics))
    topic_cls = _nested(mod, "OffsetCommitResponseTopic")
    part_cls = _nested(mod, "OffsetCommitResponsePartition")

    def convert(a: Any):
        if not isinstance(a, P.OffsetCommitResponse):
            a = P.OffsetCommitResponse(error_code=getattr(a, "code", P.ErrorCode.UNKNOWN_SERVER_ERROR))
        by_topic = _errors_by_topic(wanted, a)
        return reply(cls, topics=tuple(build(topic_cls, name=t, partitions=tuple(
            build(part_cls, partition_index=p, error_code=code(e)) for p, e in parts))
            for t, parts in by_topic.items()))

    ask(call, native, convert)


# ------------------------------------------------------------------------- OffsetFetch


def _fetch_topics(mod: Any, version: int, wanted: list[tuple[str, int]] | None,
                  a: P.OffsetFetchResponse) -> tuple:
    topic_cls = _nested(mod, "OffsetFetchResponseTopics", "OffsetFetchResponseTopic")
    part_cls = _nested(mod, "OffsetFetchResponsePartitions", "OffsetFetchResponsePartition")
    got = {(t.name, p.partition): p for t in a.topics for p in t.partitions}
    keys = list(got) if wanted is None else wanted
    by_topic: dict[str, list] = {}
    for topic, partition in keys:
        p = got.get((topic, partition))
        # v1 has no group-level error: a whole-group error goes on each partition
        err = p.error_code if p is not None else (a.error_code if version < 2 else 0)
        by_topic.setdefault(topic, []).append(build(
            part_cls, partition_index=partition,
            committed_offset=p.committed_offset if p is not None else -1,
            committed_leader_epoch=p.committed_leader_epoch if p is not None else -1,
            metadata=p.metadata if p is not None else "", error_code=code(err)))
    return tuple(build(topic_cls, name=t, partitions=tuple(ps)) for t, ps in by_topic.items())


def _native_fetch(group_id: str, topics: Any, require_stable: bool,
                  member_id: str | None = None, member_epoch: int = -1) -> tuple:
    wanted = None if topics is None else [
        (t.name, int(p)) for t in topics for p in t.partition_indexes]
    native = P.OffsetFetchRequest(
        group_id=group_id, member_id=member_id or "", member_epoch=int(member_epoch),
        topics=None if topics is None else tuple(
            P.GroupTopicPartitions(topic=t.name, partitions=tuple(int(p) for p in t.partition_indexes))
            for t in topics),
        require_stable=require_stable)
    return native, wanted


def _as_fetch(a: Any) -> P.OffsetFetchResponse:
    if isinstance(a, P.OffsetFetchResponse):
        return a
    return P.OffsetFetchResponse(error_code=getattr(a, "code", P.ErrorCode.UNKNOWN_SERVER_ERROR))


@api(OFFSET_FETCH, 1, 9)
def offset_fetch(call: Call):
    req, version = call.request.body, call.request.api_version
    cls, mod = schema(call)
    stable = bool(getattr(req, "require_stable", False))
    if version < 8:
        native, wanted = _native_fetch(req.group_id, req.topics, stable)

        def convert(a: Any):
            a = _as_fetch(a)
            return reply(cls, topics=_fetch_topics(mod, version, wanted, a),
                         error_code=code(a.error_code))

        ask(call, native, convert)
        return
    groups = list(req.groups)
    if not groups:
        return reply(cls, groups=())
    answers: dict[int, Any] = {}
    lock = threading.Lock()
    group_cls = _nested(mod, "OffsetFetchResponseGroup")

    def gathered(i: int) -> Any:
        def send(entry: Any) -> None:
            with lock:
                answers[i] = entry
                if len(answers) < len(groups):
                    return  # the last group's answer sends the response
            call.respond(reply(cls, groups=tuple(answers[k] for k in range(len(groups)))))
        return send

    for i, g in enumerate(groups):
        native, wanted = _native_fetch(g.group_id, g.topics, stable,
                                       getattr(g, "member_id", None),  # v9+
                                       getattr(g, "member_epoch", -1))

        def convert(a: Any, gid=g.group_id, wanted=wanted):
            a = _as_fetch(a)
            return build(group_cls, group_id=gid, topics=_fetch_topics(mod, version, wanted, a),
                         error_code=code(a.error_code))

        ask(call, native, convert, gathered(i))


# ------------------------------------------------------------------------ OffsetDelete


@api(OFFSET_DELETE, 0, 0)
def offset_delete(call: Call):
    req = call.request.body
    cls, mod = schema(call)
    wanted = [(t.name, int(p.partition_index)) for t in req.topics for p in t.partitions]
    native = P.OffsetDeleteRequest(group_id=req.group_id, topics=tuple(
        P.GroupTopicPartitions(topic=t.name, partitions=tuple(int(p.partition_index)
                                                            for p in t.partitions))
        for t in req.topics))

    def convert(a: Any):
        if not isinstance(a, P.OffsetDeleteResponse):
            a = P.OffsetDeleteResponse(error_code=getattr(a, "code", P.ErrorCode.UNKNOWN_SERVER_ERROR))
        top = a.error_code if not a.topics and a.error_code else 0
        by_topic = {} if top else _errors_by_topic(wanted, a)
        return reply(cls, error_code=code(top) if top else ErrorCode.none, topics=tuple(
            build(mod.OffsetDeleteResponseTopic, name=t, partitions=tuple(
                build(mod.OffsetDeleteResponsePartition, partition_index=p, error_code=code(e))
                for p, e in parts)) for t, parts in by_topic.items()))

    ask(call, native, convert)
