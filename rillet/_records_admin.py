"""Deleting records, mixed into :class:`rillet.admin.Admin` (Kafka's ``Admin.deleteRecords``,
kafka-python's ``delete_records``)::

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
from collections.abc import Mapping

from rillet.errors import RilletError, RilletTimeoutError, error_for_code
from rillet.records import TopicPartition
from rillet.transport import protocol as p

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
