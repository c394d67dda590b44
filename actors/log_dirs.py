"""DescribeLogDirs and ListPartitionReassignments (kafka-log-dirs.sh, kafka-reassign-partitions
--list; docs/operations.md).

DescribeLogDirs: the session asks every partition actor this broker hosts (``DescribeLog``,
answered on the partition's own thread: its log is touched by nobody else) and answers with
one log directory, the broker's data directory, once all have answered.
ListPartitionReassignments: a pure function of the metadata image (``list_reassignments``).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Mapping

from rillet.coordinator.metadata import MetadataImage
from rillet.transport import protocol as P

from rillet.frozen import frozen

E = P.ErrorCode
Key = tuple[str, int]


@frozen
class DescribeLog:
    """To a partition actor: ``reply(DescribeLogDirsPartition)``."""

    reply: Callable[[P.DescribeLogDirsPartition], None]


def describe_on_replica(replica, msg: DescribeLog) -> None:
    """On the ``PartitionReplica``'s thread (actors/partition.py)."""
    log = replica.log
    if log is None:
        msg.reply(P.DescribeLogDirsPartition(partition=replica.partition, size=0))
        return
    leo = log.log_end_offset
    msg.reply(P.DescribeLogDirsPartition(
        partition=replica.partition,
        size=log.size_in_bytes,
        offset_lag=max(0, replica.high_watermark - leo),
        log_start_offset=log.log_start_offset,
        log_end_offset=leo,
    ))


def serve_describe_log_dirs(
    req: P.DescribeLogDirsRequest, respond, ctx, log_dir: str
) -> None:
    """Fan out to the hosted replicas (``ctx.replicas``) of the named topics (all: null)."""
    wanted = None if req.topics is None else set(req.topics)
    keys = sorted(k for k in list(ctx.replicas) if wanted is None or k[0] in wanted)
    total, usable = _disk(log_dir)
    results: dict[Key, P.DescribeLogDirsPartition] = {}
    lock = threading.Lock()
    pending = set(keys)

    def finish() -> None:
        topics: dict[str, list] = {}
        for key in keys:
            if key in results:
                topics.setdefault(key[0], []).append(results[key])
        respond(P.DescribeLogDirsResponse(broker_id=ctx.broker_id, results=(P.DescribeLogDir(
            log_dir=log_dir, total_bytes=total, usable_bytes=usable,
            topics=tuple(P.DescribeLogDirsTopic(name=t, partitions=tuple(ps))
                         for t, ps in topics.items())),)))

    def put(key: Key, answer) -> None:
        with lock:
            if key not in pending:
                return
            pending.discard(key)
            if answer is not None:
                results[key] = answer
            done = not pending
        if done:
            finish()

    if not keys:
        finish()
        return
    for key in keys:
        ref = ctx.replicas.get(key)
        if ref is None:  # stopped meanwhile (deleted, moved away)
            put(key, None)
            continue
        try:
            ref.tell(DescribeLog(lambda r, key=key: put(key, r)))
        except Exception:  # noqa: BLE001 - a dead actor: leave it out
            put(key, None)


def _disk(path: str) -> tuple[int, int]:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return -1, -1
    return usage.total, usage.free


def list_reassignments(
    image: MetadataImage, topics: tuple[P.GroupTopicPartitions, ...] | None
) -> P.ListPartitionReassignmentsResponse:
    """The partitions of ``topics`` (None: every topic) with a reassignment under way: those
    with adding or removing replicas in the image. An unknown topic is
    UNKNOWN_TOPIC_OR_PARTITION for the whole answer, as Kafka does."""
    selected: Mapping[str, tuple[int, ...] | None]
    if topics is None:
        selected = {name: None for name in image.topics}
    else:
        selected = {t.topic: tuple(t.partitions) for t in topics}
        missing = sorted(n for n in selected if n not in image.topics)
        if missing:
            return P.ListPartitionReassignmentsResponse(
                error_code=E.UNKNOWN_TOPIC_OR_PARTITION,
                error_message=f"unknown topic(s): {', '.join(missing)}")
    out = []
    for name in sorted(selected):
        info = image.topics[name]
        numbers = selected[name]
        ongoing = [
            P.OngoingPartitionReassignment(
                partition=p.partition, replicas=tuple(p.replicas),
                adding_replicas=tuple(p.adding_replicas),
                removing_replicas=tuple(p.removing_replicas))
            for n, p in sorted(info.partitions.items())
            if (numbers is None or n in numbers) and (p.adding_replicas or p.removing_replicas)
        ]
        if ongoing:
            out.append(P.OngoingTopicReassignment(name=name, partitions=tuple(ongoing)))
    return P.ListPartitionReassignmentsResponse(topics=tuple(out))
