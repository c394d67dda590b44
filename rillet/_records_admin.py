"""Deleting records and looking at storage, mixed into :class:`rillet.admin.Admin` (Kafka's
``deleteRecords``, ``describeLogDirs``, ``listPartitionReassignments``)::

    admin.describe_log_dirs()              # {broker: {log_dir: LogDirDescription}}
    admin.list_partition_reassignments()   # {TopicPartition: PartitionReassignment}

    admin.delete_records({TopicPartition("orders", 0): 1200})   # {tp: new log start}
    admin.delete_records({("orders", 1): -1})                    # -1: up to the high watermark

Each partition's records below the offset are deleted: its log start offset (the "low
watermark") becomes the offset, consumers reading from "earliest" start there, and a
consumer positioned below it gets OFFSET_OUT_OF_RANGE (``auto.offset.reset`` applies).
Requests go to each partition's leader, grouped per leader; a leader that moved
(NOT_LEADER_OR_FOLLOWER) is looked up again until ``request.timeout.ms``. See
docs/operations.md, "Deleting records".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from rillet.errors import RilletError, RilletTimeoutError, error_for_code
from rillet.frozen import frozen
from rillet.records import TopicPartition
from rillet.transport import protocol as p


@frozen
class ReplicaInfo:
    """One replica in a log directory: ``size`` in bytes, Kafka's ``offset_lag`` (the high
    watermark minus the log end offset when positive), its log start and end offsets."""

    size: int
    offset_lag: int
    is_future: bool = False
    log_start_offset: int = -1
    log_end_offset: int = -1


@frozen
class LogDirDescription:
    """A broker's log directory: its replicas and the bytes of its file system."""

    error: RilletError | None
    replica_infos: dict[TopicPartition, ReplicaInfo]
    total_bytes: int = -1
    usable_bytes: int = -1


@frozen
class PartitionReassignment:
    """An ongoing reassignment: the current replicas and which are being added / removed."""

    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...]
    removing_replicas: tuple[int, ...]


HIGH_WATERMARK = -1  # delete everything consumers can read (Kafka's RecordsToDelete)
_MOVING = (p.ErrorCode.NOT_LEADER_OR_FOLLOWER, p.ErrorCode.LEADER_NOT_AVAILABLE,
           p.ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


class RecordsAdminMixin:
    """Needs ``self._client`` (NetworkClient) and ``self.config`` (the admin config)."""

    def delete_records(self, records_to_delete: Mapping[tuple[str, int], int], *,
                       timeout_ms: int | None = None, raise_errors: bool = True
                       ) -> dict[TopicPartition, int | RilletError]:
        """Delete every record below ``offset`` in each partition (``-1``: below the high
        watermark). Returns ``{TopicPartition: new log start offset}``; with
        ``raise_errors=False`` a failed partition maps to its error instead of raising the
        first (OffsetOutOfRangeError: the offset is above the high watermark;
        PolicyViolationError: a compacted topic; InvalidTopicError: an internal topic)."""
        wanted: dict[TopicPartition, int] = {}
        for tp, offset in records_to_delete.items():
            tp = TopicPartition(*tp)
            offset = int(offset)
            if offset < HIGH_WATERMARK:
                raise ValueError(f"{tp.topic}-{tp.partition}: offset {offset} is negative "
                                 "(-1 means the high watermark)")
            wanted[tp] = offset
        timeout_ms = timeout_ms or self.config.request_timeout_ms
        deadline = time.monotonic() + timeout_ms / 1000
        for topic in sorted({tp.topic for tp in wanted}):
            self._client.wait_for_topic(topic, timeout_ms)
        out: dict[TopicPartition, int | RilletError] = {}
        pending = dict(wanted)
        backoff = 0.05
        while pending:
            retry = self._delete_records_round(pending, out, deadline)
            pending = {tp: wanted[tp] for tp in retry}
            if not pending:
                break
            if time.monotonic() >= deadline:
                for tp, code in retry.items():
                    out[tp] = error_for_code(code, f"{tp.topic}-{tp.partition}: no leader "
                                                   f"took the request within {timeout_ms} ms")
                break
            time.sleep(backoff)
            backoff = min(backoff * 2, 0.5)
            self._client.refresh_metadata(sorted({tp.topic for tp in pending}))
        if raise_errors:
            for tp in sorted(out):
                if isinstance(out[tp], RilletError):
                    raise out[tp]
        return dict(sorted(out.items()))

    def _delete_records_round(self, pending: dict[TopicPartition, int],
                              out: dict, deadline: float) -> dict[TopicPartition, int]:
        """One request per leader; the partitions to try again (leader moving) with the
        code that said so."""
        retry: dict[TopicPartition, int] = {}
        by_leader: dict[str, list[TopicPartition]] = {}
        for tp in sorted(pending):
            address = self._client.leader_address(tp.topic, tp.partition)
            if address is None:
                retry[tp] = p.ErrorCode.LEADER_NOT_AVAILABLE
            else:
                by_leader.setdefault(address, []).append(tp)
        for address, tps in by_leader.items():
            topics: dict[str, list[p.DeleteRecordsPartition]] = {}
            for tp in tps:
                topics.setdefault(tp.topic, []).append(
                    p.DeleteRecordsPartition(partition=tp.partition, offset=pending[tp]))
            remaining = max(1, int((deadline - time.monotonic()) * 1000))
            req = p.DeleteRecordsRequest(topics=tuple(
                p.DeleteRecordsTopic(name=t, partitions=tuple(ps)) for t, ps in topics.items()),
                timeout_ms=remaining)
            try:
                resp = self._client.call(address, req, remaining)
            except RilletTimeoutError:
                retry.update({tp: p.ErrorCode.REQUEST_TIMED_OUT for tp in tps})
                continue
            except RilletError as e:
                if not e.retriable:
                    raise
                retry.update({tp: e.code for tp in tps})
                continue
            if isinstance(resp, p.ErrorResponse):
                raise error_for_code(resp.error_code, resp.error_message)
            for t in resp.topics:
                for r in t.partitions:
                    tp = TopicPartition(t.name, r.partition)
                    if r.error_code in _MOVING:
                        retry[tp] = r.error_code
                    elif r.error_code:
                        out[tp] = error_for_code(r.error_code, r.error_message
                                                 or f"{t.name}-{r.partition}")
                    else:
                        out[tp] = r.low_watermark
        return retry

    def describe_log_dirs(self, broker_ids: Iterable[int] | None = None, *,
                          topics: Iterable[str] | None = None
                          ) -> dict[int, dict[str, LogDirDescription]]:
        """Each broker's log directory and the replicas it holds there (Kafka's
        describeLogDirs): ``{broker_id: {log_dir: LogDirDescription}}``. ``broker_ids``
        None: every live broker; ``topics`` None: every topic."""
        view = self._client.refresh_metadata((), via_controller=True)
        wanted = sorted(view.brokers) if broker_ids is None else sorted(set(broker_ids))
        req = p.DescribeLogDirsRequest(topics=None if topics is None else tuple(topics))
        out: dict[int, dict[str, LogDirDescription]] = {}
        for broker_id in wanted:
            address = view.brokers.get(broker_id)
            if address is None:
                raise error_for_code(p.ErrorCode.BROKER_NOT_AVAILABLE,
                                     f"broker {broker_id} is not a live broker")
            resp = self._client.call(address, req)
            out[broker_id] = {
                d.log_dir: LogDirDescription(
                    error=None if not d.error_code else error_for_code(d.error_code),
                    replica_infos={
                        TopicPartition(t.name, x.partition): ReplicaInfo(
                            x.size, x.offset_lag, x.is_future, x.log_start_offset,
                            x.log_end_offset)
                        for t in d.topics for x in t.partitions},
                    total_bytes=d.total_bytes, usable_bytes=d.usable_bytes)
                for d in resp.results}
        return out

    def list_partition_reassignments(
            self, partitions: Iterable[tuple[str, int]] | None = None
    ) -> dict[TopicPartition, PartitionReassignment]:
        """The reassignments under way (Kafka's listPartitionReassignments), of
        ``partitions`` (None: every partition), from the active controller's image."""
        topics = None
        if partitions is not None:
            by_topic: dict[str, list[int]] = {}
            for t, n in partitions:
                by_topic.setdefault(t, []).append(int(n))
            topics = tuple(p.GroupTopicPartitions(topic=t, partitions=tuple(sorted(ns)))
                           for t, ns in sorted(by_topic.items()))
        resp = self._client.call_controller(p.ListPartitionReassignmentsRequest(topics=topics))
        if resp.error_code:
            raise error_for_code(resp.error_code, resp.error_message)
        return {TopicPartition(t.name, x.partition): PartitionReassignment(
                    tuple(x.replicas), tuple(x.adding_replicas), tuple(x.removing_replicas))
                for t in resp.topics for x in t.partitions}
