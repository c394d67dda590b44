"""DeleteRecords (Kafka's ``kafka-delete-records.sh`` / ``Admin.deleteRecords``): move the
log start offset of partitions forward.

The session fans a ``DeleteRecordsRequest`` out to the partition actors this broker leads
(``serve``), one ``DeleteRecords`` message each, and answers when all have. On the leader's
thread (``delete_on_leader``) the rules are Kafka's (``ReplicaManager.deleteRecordsOnLocalLog``
and ``UnifiedLog.maybeIncrementLogStartOffset``):

* an internal topic (``__…``) is refused (INVALID_TOPIC_EXCEPTION);
* a topic whose ``cleanup.policy`` has no ``delete`` is refused (POLICY_VIOLATION);
* offset -1 means the high watermark; an offset above the high watermark (or below -1) is
  OFFSET_OUT_OF_RANGE and changes nothing;
* an offset at or below the log start changes nothing and answers the log start;
* otherwise ``PartitionLog.delete_records`` makes the new log start durable and deletes the
  segments wholly below it; transactions below it are forgotten.

The answer's ``low_watermark`` is the leader's log start. Followers learn it from the
``log_start_offset`` of their next fetch answer (``follow_log_start``), as Kafka's followers
do; the leader tells watching fetch sessions at once (partition_fetch._serve_watches).
"""

from __future__ import annotations

from collections.abc import Callable

from rillet.logstore import transactions as T
from rillet.transport import protocol as P

from rillet.frozen import frozen

from .gather import _Gather, _group
from .partition_messages import error_code_for

E = P.ErrorCode
HIGH_WATERMARK = -1  # Kafka's DeleteRecordsRequest.HIGH_WATERMARK


@frozen
class DeleteRecords:
    """To a partition actor: move the log start to ``offset`` (-1: the high watermark);
    ``reply(DeleteRecordsPartitionResponse)``."""

    offset: int
    reply: Callable[[P.DeleteRecordsPartitionResponse], None]


class DeleteRecordsGather(_Gather):
    def _build(self) -> P.DeleteRecordsResponse:
        return P.DeleteRecordsResponse(
            topics=_group(self._order, self._results, P.DeleteRecordsTopicResponse)
        )


# ----------------------------------------------------------------------- the session side


def serve(req: P.DeleteRecordsRequest, respond, replica) -> None:
    """Fan ``req`` out to the partitions' actors (``replica(topic, partition)`` -> (error code,
    actor or None), the session's lookup); ``respond`` gets the whole answer once."""
    keys = [(t.name, p.partition) for t in req.topics for p in t.partitions]
    if not keys:
        respond(P.DeleteRecordsResponse())
        return
    if len(set(keys)) != len(keys):
        respond(
            P.ErrorResponse(
                error_code=E.INVALID_REQUEST,
                error_message="DeleteRecords names a topic-partition more than once",
            )
        )
        return
    gather = DeleteRecordsGather(keys, respond)
    for t in req.topics:
        for p in t.partitions:
            key = (t.name, p.partition)
            if t.name.startswith("__"):
                gather.put(key, _refused(p.partition, E.INVALID_TOPIC_EXCEPTION,
                                         f"cannot delete records of internal topic {t.name}"))
                continue
            code, ref = replica(*key)
            if ref is None:
                gather.put(key, _refused(p.partition, code))
                continue
            ref.tell(DeleteRecords(p.offset, lambda r, key=key: gather.put(key, r)))


def _refused(partition: int, code: int, message: str | None = None):
    return P.DeleteRecordsPartitionResponse(
        partition=partition, error_code=code, error_message=message
    )


# ------------------------------------------------------------------- the partition side


def delete_on_leader(replica, msg: DeleteRecords) -> None:
    """On the ``PartitionReplica``'s thread (actors/partition.py): see the module docstring."""
    log, partition = replica.log, replica.partition
    if log is None:
        msg.reply(_refused(partition, E.KAFKA_STORAGE_ERROR, "the log is not open"))
        return
    if replica.info is not None and replica.leader is None:
        msg.reply(_refused(partition, E.NOT_LEADER_OR_FOLLOWER))
        return
    if not log.config.delete:
        msg.reply(_refused(
            partition, E.POLICY_VIOLATION,
            f"records of {replica.topic}-{partition} cannot be deleted: cleanup.policy="
            f"{log.config.cleanup_policy}"))
        return
    hw = replica.high_watermark
    offset = hw if msg.offset == HIGH_WATERMARK else msg.offset
    if offset < 0 or offset > hw:
        msg.reply(_refused(
            partition, E.OFFSET_OUT_OF_RANGE,
            f"cannot move the log start of {replica.topic}-{partition} to {msg.offset}: "
            f"above the high watermark {hw}" if offset > hw else f"bad offset {msg.offset}"))
        return
    try:
        before = log.log_start_offset
        start = log.delete_records(offset, replica.clock())
    except Exception as e:  # noqa: BLE001 - a failed log answers, it never stops the actor
        replica._log.error("delete records to {} failed: {}", offset, e)
        msg.reply(_refused(partition, error_code_for(e), str(e)))
        return
    if start != before:
        _moved(replica, before, start)
        replica._log.info("DeleteRecords: log_start_offset {} -> {}", before, start)
        replica._serve_waiters(followers_only=True)  # watching followers learn it now
    msg.reply(P.DeleteRecordsPartitionResponse(partition=partition, low_watermark=start))


def follow_log_start(replica, leader_log_start: int) -> None:
    """Follower, after appending a fetch answer: take the leader's log start (Kafka's
    ``maybeIncrementLogStartOffset(leaderLogStartOffset)``), never past our own log end."""
    log = replica.log
    target = min(leader_log_start, log.log_end_offset)
    before = log.log_start_offset
    if target <= before:
        return
    start = log.delete_records(target, replica.clock())
    _moved(replica, before, start)
    replica._log.info("log_start_offset {} -> {} (the leader's)", before, start)


def _moved(replica, before: int, start: int) -> None:
    replica._forget_lso()
    T.on_log_start_offset_incremented(replica.pstate, start)
    if replica.high_watermark < start:
        replica.high_watermark = start
