"""WriteTxnMarkers on a partition leader (inter-broker listener only; docs/transactions.md,
"Partition wiring").

A transaction coordinator sends one request per leader with the markers of one or more
transactions; each names partitions this broker should lead. Every partition gets a
``partition.WriteMarker``; the response goes once every partition has answered (each answer
comes once its marker is replicated to the ISR, or with the error):

- NONE: written and replicated (or refused harmlessly: nothing to do)
- NOT_LEADER_OR_FOLLOWER: not led here (the coordinator retries after a metadata change)
- INVALID_PRODUCER_EPOCH / TRANSACTION_COORDINATOR_FENCED: a stale marker (dropped)
- UNKNOWN_TOPIC_OR_PARTITION: the partition is gone (dropped)
- NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR: retried by the coordinator
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rillet.transport import protocol as P

from . import partition as R

E = P.ErrorCode


class _MarkerGather:
    """Collects one code per (marker index, topic, partition); sends the response when the
    last arrives (any thread)."""

    def __init__(self, req: P.WriteTxnMarkersRequest, respond: Callable[[object], None]):
        self._req = req
        self._respond = respond
        self._codes: dict[tuple[int, str, int], int] = {}
        self._expected = {
            (i, t.name, p)
            for i, m in enumerate(req.markers)
            for t in m.topics
            for p in t.partitions
        }
        self._lock = threading.Lock()
        self._sent = False

    def put(self, key: tuple[int, str, int], code: int) -> None:
        with self._lock:
            if self._sent or key in self._codes:
                return
            self._codes[key] = code
            if len(self._codes) < len(self._expected):
                return
            self._sent = True
        self._respond(self.response())

    def response(self) -> P.WriteTxnMarkersResponse:
        results = []
        for i, m in enumerate(self._req.markers):
            topics = tuple(
                P.TopicPartitionErrors(
                    name=t.name,
                    partitions=tuple(
                        P.PartitionError(partition=p, error_code=self._codes[(i, t.name, p)])
                        for p in t.partitions
                    ),
                )
                for t in m.topics
            )
            results.append(P.WritableTxnMarkerResult(producer_id=m.producer_id, topics=topics))
        return P.WriteTxnMarkersResponse(markers=tuple(results))


def write_txn_markers(
    req: P.WriteTxnMarkersRequest,
    respond: Callable[[object], None],
    replica: Callable[[str, int], tuple[int, object]],
) -> None:
    """Fan ``req`` out to the partition actors (``replica(topic, partition)`` -> (error
    code, actor ref or None): session.py ``_replica``); ``respond`` gets the response."""
    gather = _MarkerGather(req, respond)
    if not gather._expected:
        respond(gather.response())
        return
    sent: set[tuple[int, str, int]] = set()
    for i, m in enumerate(req.markers):
        for t in m.topics:
            for p in t.partitions:
                key = (i, t.name, p)
                if key in sent:
                    continue  # named twice in one marker: written and answered once
                sent.add(key)
                code, ref = replica(t.name, p)
                if ref is None:
                    gather.put(key, code)
                    continue
                ref.tell(
                    R.WriteMarker(
                        producer_id=m.producer_id,
                        producer_epoch=m.producer_epoch,
                        committed=m.transaction_result,
                        coordinator_epoch=m.coordinator_epoch,
                        transaction_version=m.transaction_version,
                        reply=lambda code, key=key: gather.put(key, code),
                    )
                )
