"""DeleteRecords (key 21, v0-v2) on the KAFKA listener (docs/kafka-compat.md): Kafka's
``Admin.deleteRecords`` / kafka-delete-records.sh against rillet.

The request is the native one in Kafka's codec: it is translated to a native
``DeleteRecordsRequest`` and served by the same code (actors/delete_records.py: fan-out to the
partition leaders' actors, Kafka's rules), so the feature exists once; the native answer is
translated back. Answered from the partition actors' callbacks (``call.respond``).
"""

from __future__ import annotations

from datetime import timedelta

from kio.schema.errors import ErrorCode
from kio.static.primitive import i32, i32Timedelta, i64
from rillet.transport import protocol as P

from . import delete_records
from .kafka_auth import gated
from .kafka_dispatch import Call, api
from .kafka_schemas import load_response_schema

KEY = 21
E = P.ErrorCode


def _replica(ctx):
    """The session's rule (actors/session.py ``_replica``): the partition must be led here."""

    def lookup(topic: str, partition: int):
        info = ctx.image.partition(topic, partition)
        if info is None:
            return E.UNKNOWN_TOPIC_OR_PARTITION, None
        ref = ctx.replicas.get((topic, partition))
        if info.leader != ctx.broker_id or ref is None:
            return E.NOT_LEADER_OR_FOLLOWER, None
        return E.NONE, ref

    return lookup


def _error(code: int) -> ErrorCode:
    try:
        return ErrorCode(int(code))
    except ValueError:
        return ErrorCode.unknown_server_error


@api(KEY, 0, 2)
def delete_records_handler(call: Call):
    request = call.request.body
    version = call.request.api_version
    response_cls = load_response_schema(KEY, version)
    module = __import__(response_cls.__module__, fromlist=["DeleteRecordsTopicResult"])
    native = P.DeleteRecordsRequest(
        topics=tuple(
            P.DeleteRecordsTopic(
                name=str(t.name),
                partitions=tuple(
                    P.DeleteRecordsPartition(partition=int(p.partition_index), offset=int(p.offset))
                    for p in t.partitions
                ),
            )
            for t in request.topics
        ),
        timeout_ms=int(request.timeout.total_seconds() * 1000),
    )
    names = [(t.name, p.partition) for t in native.topics for p in t.partitions]

    def answer(resp) -> None:
        if isinstance(resp, P.ErrorResponse):  # a partition named twice: each one refused
            results: dict[str, list] = {}
            for name, partition in names:
                results.setdefault(name, []).append(
                    P.DeleteRecordsPartitionResponse(partition=partition, error_code=resp.error_code)
                )
            topics = [P.DeleteRecordsTopicResponse(name=n, partitions=tuple(ps))
                      for n, ps in results.items()]
        else:
            topics = list(resp.topics)
        call.respond(response_cls(
            throttle_time=i32Timedelta.parse(timedelta(0)),
            topics=tuple(
                module.DeleteRecordsTopicResult(
                    name=t.name,
                    partitions=tuple(
                        module.DeleteRecordsPartitionResult(
                            partition_index=i32(r.partition),
                            low_watermark=i64(r.low_watermark),
                            error_code=_error(r.error_code),
                        )
                        for r in t.partitions
                    ),
                )
                for t in topics
            ),
        ))

    native, answer = gated(call, native, answer)  # ACLs (actors/kafka_auth.py)
    if native is not None:
        delete_records.serve(native, answer, _replica(call.broker))
    return None
