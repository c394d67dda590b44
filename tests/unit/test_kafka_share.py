"""The KAFKA listener's share handlers (actors/kafka_share.py) over a fake share-partition
manager: kio requests in, the native requests they become (topics by name, the session's
partitions, acknowledgements), the native answers turned into kio responses (topic ids,
v2 batches, acquired ranges), encoded as the listener would send them; the ACL gate."""

from __future__ import annotations

import queue
import sys
import uuid
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from rillet.actors import kafka_batch as KB
from rillet.actors import kafka_dispatch as D
from rillet.actors import kafka_share_sessions as KS
from rillet.actors import kafka_wire as W
from rillet.actors import share_partition as SP
from rillet.actors.configs import validate_broker_configs
from rillet.actors.kafka_transcode import to_rillet
from rillet.coordinator import metadata as md
from rillet.coordinator.acl import AclBinding
from rillet.logstore import batch as B
from rillet.transport import protocol as P

D.load_handlers()
TID = uuid.uuid4()
WAIT = i32Timedelta.parse(timedelta(milliseconds=10))


class FakeSharePartitions:
    """Records the native requests; answers each with the next scripted answer."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.answers: list[Any] = []
        self.released: list[Any] = []  # ReleaseMember messages

    def tell(self, message) -> None:
        if isinstance(message, SP.ReleaseMember):
            self.released.append(message)
            return
        self.seen.append(message.request)
        message.respond(self.answers.pop(0))


def _ctx(**configs):
    image = md.replay([md.CreateTopic(name="jobs", topic_id=str(TID)),
                       md.PartitionRecord(topic="jobs", partition=0, replicas=(1,), isr=(1,),
                                          leader=1, leader_epoch=3)], md.MetadataImage())
    return SimpleNamespace(broker_id=1, image=image, clock=lambda: 1000,
                           broker_configs=validate_broker_configs(configs),
                           share_partitions=FakeSharePartitions(), metrics=None)


def _call(ctx, key: int, body: Any) -> Any:
    got: queue.Queue = queue.Queue()
    c = D.Call(W.Request(key, 1, 1, "test", body, 0), ctx, D.KafkaEndpoint("k", 9101), got.put)
    out = D.HANDLERS[key].handler(c)
    response = out if out is not None else got.get(timeout=10)
    W.encode_response(1, response)  # the listener could send it
    return response


def _mod(key: int):
    return sys.modules[load_request_schema(key, 1).__module__]


def _fetch(ctx, epoch: int, parts=(0,), acks=None, forget=(), topic=TID, member="m1"):
    mod = _mod(78)
    fetch_parts = tuple(mod.FetchPartition(partition_index=p, acknowledgement_batches=tuple(
        mod.AcknowledgementBatch(first_offset=f, last_offset=last, acknowledge_types=types)
        for f, last, types in (acks or {}).get(p, ()))) for p in parts)
    return _call(ctx, 78, mod.ShareFetchRequest(
        group_id="g", member_id=member, share_session_epoch=epoch, max_wait=WAIT, min_bytes=1,
        max_records=50, batch_size=50,
        topics=(mod.FetchTopic(topic_id=topic, partitions=fetch_parts),) if parts else (),
        forgotten_topics_data=tuple(mod.ForgottenTopic(topic_id=topic, partitions=(p,))
                                    for p in forget)))


def _stored(values: list[bytes], base_offset: int) -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, 1_700_000_000_000, b"k", v, [("h", b"1")])
    stored = bytearray(to_rillet(bytes(b.build()), recent=None))
    B.stamp(stored, 0, base_offset, 3)
    return bytes(stored)


def test_share_fetch_sends_the_sessions_partitions_and_answers_in_kafkas_shape() -> None:
    ctx = _ctx()
    ctx.share_partitions.answers.append(P.ShareFetchResponse(
        acquisition_lock_timeout_ms=30_000, topics=(P.ShareFetchTopicResponse(
            name="jobs", partitions=(P.ShareFetchPartitionResponse(
                partition=0, leader_epoch=3, records=_stored([b"a", b"b", b"c"], 10),
                acquired_records=(P.AcquiredRecords(first_offset=11, last_offset=12,
                                                    delivery_count=2),)),)),)))
    answer = _fetch(ctx, 0)
    native = ctx.share_partitions.seen[0]
    assert (native.group_id, native.member_id, native.max_records) == ("g", "m1", 50)
    assert [(t.name, [p.partition for p in t.partitions]) for t in native.topics] == [
        ("jobs", [0])]
    assert answer.error_code == ErrorCode.none
    assert answer.acquisition_lock_timeout == timedelta(seconds=30)
    (topic,) = answer.responses
    (part,) = topic.partitions
    assert topic.topic_id == TID and part.partition_index == 0
    assert [(a.first_offset, a.last_offset, a.delivery_count) for a in part.acquired_records] \
        == [(11, 12, 2)]
    assert (part.current_leader.leader_id, part.current_leader.leader_epoch) == (1, 3)
    (batch,) = KB.decode_batches(part.records)  # a v2 batch, the stored offsets kept
    assert batch.base_offset == 10 and batch.values == [b"a", b"b", b"c"]


def test_acknowledgements_ride_on_the_next_epoch_and_bad_ones_are_refused_alone() -> None:
    ctx = _ctx()
    other = uuid.uuid4()  # a topic id the image does not know
    ctx.share_partitions.answers += [P.ShareFetchResponse()] * 3
    _fetch(ctx, 0, parts=(0, 1))
    answer = _fetch(ctx, 1, parts=(0,), acks={0: [(5, 6, (1, 2)), (7, 7, (3,))]}, forget=(1,))
    native = ctx.share_partitions.seen[1]
    (p0,) = native.topics[0].partitions  # partition 1 was forgotten
    assert [(b.first_offset, b.last_offset, b.acknowledge_types, b.delay_ms)
            for b in p0.acknowledgement_batches] == [(5, 6, (1, 2), -1), (7, 7, (3,), -1)]
    assert answer.error_code == ErrorCode.none
    # renew (4) is not in v1; an unknown topic id: answered here, never sent on
    answer = _fetch(ctx, 2, parts=(0,), acks={0: [(8, 8, (4,))]})
    (part,) = answer.responses[0].partitions
    assert part.acknowledge_error_code == ErrorCode.invalid_request
    assert len(ctx.share_partitions.seen) == 2  # nothing else to fetch from: not sent
    answer = _fetch(ctx, 3, parts=(0,), topic=other)
    by_topic = {t.topic_id: t.partitions for t in answer.responses}
    assert by_topic[other][0].error_code == ErrorCode.unknown_topic_id
    assert [t.name for t in ctx.share_partitions.seen[2].topics] == ["jobs"]


def test_share_acknowledge_checks_the_epoch_and_closes_the_session() -> None:
    ctx = _ctx()
    ctx.share_partitions.answers += [
        P.ShareFetchResponse(),
        P.ShareAcknowledgeResponse(results=(P.TopicPartitionErrors(name="jobs", partitions=(
            P.PartitionError(partition=0, error_code=P.ErrorCode.INVALID_RECORD_STATE),)),))]
    _fetch(ctx, 0)
    mod = _mod(79)

    def acknowledge(epoch: int):
        return _call(ctx, 79, mod.ShareAcknowledgeRequest(
            group_id="g", member_id="m1", share_session_epoch=epoch, topics=(
                mod.AcknowledgeTopic(topic_id=TID, partitions=(mod.AcknowledgePartition(
                    partition_index=0, acknowledgement_batches=(mod.AcknowledgementBatch(
                        first_offset=0, last_offset=0, acknowledge_types=(1,)),)),)),)))

    assert acknowledge(7).error_code == ErrorCode.invalid_share_session_epoch
    assert ctx.share_partitions.released == []
    closed = acknowledge(-1)
    assert closed.error_code == ErrorCode.none
    assert closed.responses[0].partitions[0].error_code == ErrorCode.invalid_record_state
    # the closed session's records the member still holds: released at once, after its acks
    assert ctx.share_partitions.released == [SP.ReleaseMember("g", "m1", (("jobs", 0),))]
    assert acknowledge(2).error_code == ErrorCode.share_session_not_found


@pytest.mark.parametrize("key", [78, 79])
def test_without_read_on_the_group_nothing_reaches_the_share_partitions(key) -> None:
    ctx = _ctx(**{"authorizer.class.name": "rillet"})  # no ACLs: User:ANONYMOUS may not
    if key == 78:
        answer = _fetch(ctx, 0)
    else:
        _fetch(ctx, 0)
        mod = _mod(79)
        answer = _call(ctx, 79, mod.ShareAcknowledgeRequest(
            group_id="g", member_id="m1", share_session_epoch=1, topics=(mod.AcknowledgeTopic(
                topic_id=TID, partitions=(mod.AcknowledgePartition(
                    partition_index=0, acknowledgement_batches=(mod.AcknowledgementBatch(
                        first_offset=0, last_offset=0, acknowledge_types=(1,)),)),)),)))
    assert answer.error_code == ErrorCode.group_authorization_failed
    assert ctx.share_partitions.seen == [] and ctx.share_partitions.released == []
    assert len(KS.of(ctx)) == 0  # refused before a share session is opened


def test_with_read_on_the_group_a_topic_it_may_not_read_is_refused() -> None:
    ctx = _ctx(**{"authorizer.class.name": "rillet"})
    ctx.image = replace(ctx.image, acls=frozenset({AclBinding(
        resource_type="GROUP", resource_name="g", pattern_type="LITERAL",
        principal="User:ANONYMOUS", host="*", operation="READ", permission="ALLOW")}))
    answer = _fetch(ctx, 0)
    assert answer.error_code == ErrorCode.topic_authorization_failed
    assert ctx.share_partitions.seen == []
