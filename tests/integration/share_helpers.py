"""Raw share-group requests for the share-partition tests (no rillet client code): ShareFetch,
ShareAcknowledge and the share offsets admin APIs through a ``Wire``, and the records of a
ShareFetch answer that its member acquired."""

from __future__ import annotations

from rillet.logstore.batch import BatchBuilder, records
from rillet.transport import protocol as P

E = P.ErrorCode


def values_batch(values, key: bytes | None = None, headers=()) -> bytes:
    b = BatchBuilder()
    for v in values:
        b.append(1_700_000_000_000, key, v, list(headers))
    return b.build()


def ack(first: int, last: int, kind: int, delay_ms: int = -1, reason: str = ""):
    return P.AcknowledgementBatch(first_offset=first, last_offset=last,
                                  acknowledge_types=(kind,), delay_ms=delay_ms, reason=reason)


def share_fetch(wire, group: str, member: str, topic: str, partition: int = 0, *, acks=(),
                max_records: int = 500, max_wait_ms: int = 0, timeout_ms: int = 10_000,
                acquire_mode: int = 1):
    """The partition's ShareFetchPartitionResponse (record_limit by default: the tests
    count what is acquired)."""
    req = P.ShareFetchRequest(
        group_id=group, member_id=member, max_wait_ms=max_wait_ms, max_records=max_records,
        acquire_mode=acquire_mode,
        topics=(P.ShareFetchTopic(name=topic, partitions=(P.ShareFetchPartition(
            partition=partition, acknowledgement_batches=tuple(acks)),)),))
    response = wire.call(req, timeout_ms=timeout_ms + max_wait_ms)
    assert isinstance(response, P.ShareFetchResponse), response
    return response.topics[0].partitions[0]


def share_ack(wire, group: str, member: str, topic: str, acks, partition: int = 0) -> int:
    req = P.ShareAcknowledgeRequest(group_id=group, member_id=member, topics=(
        P.ShareAcknowledgeTopic(name=topic, partitions=(P.ShareFetchPartition(
            partition=partition, acknowledgement_batches=tuple(acks)),)),))
    response = wire.call(req)
    assert isinstance(response, P.ShareAcknowledgeResponse), response
    return response.results[0].partitions[0].error_code


def describe(wire, group: str, topic: str, partition: int = 0) -> P.DescribedSharePartition:
    response = wire.call(P.DescribeShareGroupOffsetsRequest(
        group_id=group, topics=(P.GroupTopicPartitions(topic=topic, partitions=(partition,)),)))
    return response.partitions[0]


def acquired(part) -> list[tuple[int, bytes | None, int]]:
    """(offset, value, delivery count) of the records the member acquired."""
    counts = {}
    for a in part.acquired_records:
        for o in range(a.first_offset, a.last_offset + 1):
            counts[o] = a.delivery_count
    return [(r.offset, r.value, counts[r.offset]) for r in records(part.records)
            if r.offset in counts]
