"""A ShareConsumer's fetching: ShareFetch per partition leader with piggybacked
acknowledgements, ShareAcknowledge for the rest, and the records of the acquired ranges.

One ShareFetch is in flight per leader at most. Its response's batches are framed and
decoded with the consumer's decoder (:meth:`rillet._fetcher.Fetcher._decode`, the same fast
path), cut to the ``acquired_records`` ranges (a stored batch may hold offsets acquired by
another member) and handed out as :class:`ShareRecord`\\ s carrying their delivery count.

Acknowledgement outcomes (the ShareFetch ``acknowledge_error_code`` of a partition, or a
ShareAcknowledge result) are queued as ``(acks, error)`` for the consumer to report. A leader
that moved (NOT_LEADER_OR_FOLLOWER) has lost this member's locks with it: what was held
there is forgotten (the records come again, with a higher delivery count).

Threads: used by the application thread only; futures complete on the endpoint's I/O thread.
"""

from __future__ import annotations

import bisect
import operator
import time
import types
from collections import _tuplegetter, deque
from concurrent.futures import Future
from itertools import repeat
from typing import Any, NamedTuple

from rillet._fetcher import Fetcher, PartitionState, _Chunk
from rillet._network import NetworkClient, map_error
from rillet._share_acks import Acknowledgements
from rillet.errors import error_for_code
from rillet.logstore.batch_fast import scan_batches
from rillet.records import ConsumerRecord, TopicPartition, _FetchedRecordType
from rillet.transport import protocol as P
from rillet.transport.protocol import ACK_RELEASE

E = P.ErrorCode
_MOVED = {E.NOT_LEADER_OR_FOLLOWER, E.LEADER_NOT_AVAILABLE, E.UNKNOWN_TOPIC_OR_PARTITION,
          E.FENCED_LEADER_EPOCH, E.UNKNOWN_LEADER_EPOCH}
_offset = operator.itemgetter(2)
_DECODED_BATCHES = 64


def _overlaps(ranges: list[tuple[int, int]], first: int, last: int) -> bool:
    """Does [first, last] meet one of the sorted, disjoint ``ranges``?"""
    i = bisect.bisect_right(ranges, (last, float("inf"))) - 1
    return i >= 0 and ranges[i][1] >= first


class ShareRecord(ConsumerRecord, metaclass=_FetchedRecordType):
    """A record of a share group: a ConsumerRecord plus ``delivery_count`` (1 the first
    time it is delivered, one more each time it comes again)."""

    __slots__ = ()
    _fields = ConsumerRecord._fields + ("delivery_count",)
    __match_args__ = _fields
    delivery_count = _tuplegetter(7, "deliveries of this record so far, this one included")

    def _replace(self, **changes: Any) -> ShareRecord:
        fields = dict(zip(self._fields, self, strict=True))
        fields.update(changes)
        return ShareRecord(tuple(fields[f] for f in self._fields))

    @classmethod
    def _make(cls, iterable) -> ShareRecord:
        out = cls(iterable)
        if len(out) != 8:
            raise TypeError(f"expected 8 fields, got {len(out)}")
        return out


class Delivery(NamedTuple):
    """Records of one acquired range [first, last] of ``tp`` (offsets without a record in
    the range are gaps)."""

    tp: TopicPartition
    first: int
    last: int
    records: list[ShareRecord]


class ShareFetcher:
    def __init__(self, client: NetworkClient, config, acks: Acknowledgements,
                 member_id: str) -> None:
        self.client = client
        self.config = config
        self.acks = acks
        self.group_id = config.group_id
        self.member_id = member_id
        self._decoder = Fetcher(client, types.SimpleNamespace(
            auto_offset_reset="latest", check_crcs=config.check_crcs,
            key_deserializer=config.key_deserializer,
            value_deserializer=config.value_deserializer,
            retry_backoff_ms=config.retry_backoff_ms, isolation_level="read_uncommitted"))
        # leader address -> (future, {tp: acknowledgement batches sent with it})
        self.in_flight: dict[str, tuple[Future, dict]] = {}
        self._ack_requests: list[tuple[Future, dict]] = []
        self._retry_at: dict[str, float] = {}
        self.outcomes: deque[tuple[dict, BaseException | None]] = deque()
        self.lock_timeout_ms = 0
        self._decoded: dict[tuple, list] = {}  # (tp, base offset, digest) -> records

    # -- sending ------------------------------------------------------------------------------

    def _by_leader(self, tps) -> tuple[dict[str, list[TopicPartition]], bool]:
        out: dict[str, list[TopicPartition]] = {}
        missing = False
        for tp in tps:
            address = self.client.leader_address(tp.topic, tp.partition)
            if address is None:
                missing = True
            else:
                out.setdefault(address, []).append(tp)
        if missing:
            self.client.request_metadata_update()
        return out, missing

    def send_fetches(self, assignment: frozenset[TopicPartition], max_wait_ms: int) -> None:
        """A ShareFetch to every leader of ``assignment`` without one in flight; pending
        acknowledgements of partitions not assigned go by ShareAcknowledge."""
        now = time.monotonic()
        by_leader, _ = self._by_leader(assignment)
        cfg = self.config
        for address, tps in by_leader.items():
            if address in self.in_flight or self._retry_at.get(address, 0) > now:
                continue
            acks = self.acks.take(tps)
            topics: dict[str, list[P.ShareFetchPartition]] = {}
            for tp in sorted(tps):
                topics.setdefault(tp.topic, []).append(P.ShareFetchPartition(
                    partition=tp.partition, acknowledgement_batches=acks.get(tp, ())))
            req = P.ShareFetchRequest(
                group_id=self.group_id, member_id=self.member_id, max_wait_ms=max_wait_ms,
                min_bytes=cfg.fetch_min_bytes, max_bytes=cfg.fetch_max_bytes,
                max_records=cfg.max_poll_records,
                topics=tuple(P.ShareFetchTopic(name=t, partitions=tuple(ps))
                             for t, ps in topics.items()))
            fut = self.client.request(address, req, cfg.request_timeout_ms + max_wait_ms)
            self.in_flight[address] = (fut, acks)
        others = [tp for tp in set(self.acks.pending) | set(self.acks.pending_ranges)
                  if tp not in assignment]
        if others:
            self.send_acknowledgements(others)

    def send_acknowledgements_to_busy_leaders(self) -> None:
        """Pending acknowledgements whose leader has a ShareFetch in flight go now, by
        ShareAcknowledge, rather than wait for that fetch to come back."""
        pending = set(self.acks.pending) | set(self.acks.pending_ranges)
        busy = [tp for tp in pending
                if self.client.leader_address(tp.topic, tp.partition) in self.in_flight]
        if busy:
            self.send_acknowledgements(busy)

    def send_acknowledgements(self, tps=None) -> list[tuple[Future, dict]]:
        """ShareAcknowledge of the pending acknowledgements (of ``tps``, default all), one
        request per leader; returns the requests (their outcomes are queued when done)."""
        acks = self.acks.take(tps)
        by_leader, _ = self._by_leader(acks)
        sent = []
        for address, group in by_leader.items():
            mine = {tp: acks.pop(tp) for tp in group}
            topics: dict[str, list[P.ShareFetchPartition]] = {}
            for tp in sorted(mine):
                topics.setdefault(tp.topic, []).append(P.ShareFetchPartition(
                    partition=tp.partition, acknowledgement_batches=mine[tp]))
            req = P.ShareAcknowledgeRequest(
                group_id=self.group_id, member_id=self.member_id,
                topics=tuple(P.ShareAcknowledgeTopic(name=t, partitions=tuple(ps))
                             for t, ps in topics.items()))
            entry = (self.client.request(address, req), mine)
            self._ack_requests.append(entry)
            sent.append(entry)
        for tp, batches in acks.items():  # no leader known: their locks are gone anyway
            self.outcomes.append(({tp: batches}, error_for_code(
                E.LEADER_NOT_AVAILABLE, f"no leader for {tp.topic}-{tp.partition}")))
        return sent

    # -- receiving ----------------------------------------------------------------------------

    def futures(self) -> list[Future]:
        return [f for f, _ in self.in_flight.values()] + [f for f, _ in self._ack_requests]

    def collect(self) -> list[Delivery]:
        """Deliveries of the ShareFetch responses that arrived (ack outcomes are queued)."""
        out: list[Delivery] = []
        for address, (fut, acks) in list(self.in_flight.items()):
            if not fut.done():
                continue
            del self.in_flight[address]
            exc = fut.exception()
            if exc is not None:
                self._failed(address, acks, map_error(exc))
                continue
            self._handle_fetch(address, fut.result(), acks, out)
        for entry in list(self._ack_requests):
            fut, acks = entry
            if fut.done():
                self._ack_requests.remove(entry)
                self._handle_acknowledge(fut, acks)
        return out

    def _failed(self, address: str, acks: dict, error: BaseException) -> None:
        if acks:
            self.outcomes.append((acks, error))
        if not getattr(error, "retriable", False):
            raise error
        self._retry_at[address] = time.monotonic() + self.config.retry_backoff_ms / 1000
        self.client.request_metadata_update()

    def _handle_fetch(self, address: str, r, acks: dict, out: list) -> None:
        if isinstance(r, P.ErrorResponse) or r.error_code:
            self._failed(address, acks, error_for_code(r.error_code, r.error_message))
            return
        if r.acquisition_lock_timeout_ms:
            self.lock_timeout_ms = r.acquisition_lock_timeout_ms
        for t in r.topics:
            for p in t.partitions:
                tp = TopicPartition(t.name, p.partition)
                sent = acks.pop(tp, None)
                if sent:
                    code = p.acknowledge_error_code or (p.error_code if p.error_code in _MOVED
                                                        else 0)
                    self.outcomes.append(({tp: sent}, error_for_code(
                        code, p.acknowledge_error_message or f"{tp.topic}-{tp.partition}")
                        if code else None))
                if p.error_code in _MOVED:
                    self.acks.forget([tp])
                    self._retry_at[address] = (time.monotonic()
                                               + self.config.retry_backoff_ms / 1000)
                    self.client.request_metadata_update()
                    continue
                if p.error_code:
                    if not P.retriable(p.error_code):
                        raise error_for_code(p.error_code, p.error_message or
                                             f"share fetch {tp.topic}-{tp.partition}")
                    # e.g. the share-partition state still loading: ask again shortly
                    self._retry_at[address] = (time.monotonic()
                                               + self.config.retry_backoff_ms / 1000)
                    continue
                if p.acquired_records:
                    self._deliver(tp, p.records, p.acquired_records, out)
        for tp, sent in acks.items():  # partitions the response did not mention
            self.outcomes.append(({tp: sent}, None))

    def _deliver(self, tp: TopicPartition, records, acquired, out: list) -> None:
        """Hand out the acquired records the response carries. An acquired offset without a
        record is a gap (a control batch, a compacted offset) only when the response's
        batches cover it; acquired offsets past what they cover (missing bytes, a corrupt
        batch) are released at once, never taken for gaps: a gap acknowledgement would
        tell the leader there is no record there."""
        buf = records if type(records) is bytes else bytes(records)
        first = min(a.first_offset for a in acquired)
        batches, covered_to, _bad = scan_batches(buf, first, self.config.check_crcs,
                                                 digests=False, stop_at_corrupt=True)
        ranges = sorted((a.first_offset, a.last_offset) for a in acquired)
        # only the batches holding an acquired offset are decoded (a response may carry
        # more: batches hold records acquired by other members, or the leader sent extra)
        wanted = [b for b in batches if _overlaps(ranges, b[0], b[0] + b[3])]
        decoded, corrupt_at = self._decode(tp, buf, wanted)
        if corrupt_at is not None:  # a digest mismatch: the records end before that batch
            covered_to = min(covered_to, corrupt_at)
        for a in sorted(acquired, key=lambda a: a.first_offset):
            last = min(a.last_offset, covered_to - 1)
            if a.last_offset > last:
                self.acks.pending.setdefault(tp, []).extend(
                    (o, ACK_RELEASE, 0, "") for o in range(max(a.first_offset, covered_to),
                                                           a.last_offset + 1))
            if last < a.first_offset:
                continue
            lo = bisect.bisect_left(decoded, a.first_offset, key=_offset)
            hi = bisect.bisect_right(decoded, last, key=_offset)
            out.append(Delivery(tp, a.first_offset, last, list(map(
                ShareRecord, map(operator.add, decoded[lo:hi], repeat((a.delivery_count,)))))))

    def _decode(self, tp: TopicPartition, buf: bytes, batches: list) -> tuple[list, int | None]:
        """The records of ``batches`` (from :func:`scan_batches` over ``buf``) and the base
        offset of the first batch whose digest does not match (None: none). A stored batch
        larger than one acquisition comes in several responses: its records are decoded
        once and kept (the last ``_DECODED_BATCHES`` batches, by offset and digest)."""
        cache = self._decoded
        state = PartitionState(tp)
        out: list = []
        for b in batches:
            key = (tp, b[0], b[7])
            records = cache.get(key)
            if records is None:
                chunk = _Chunk(buf, [b])
                records = self._decoder._decode(state, chunk)
                if chunk.error is not None:
                    out.extend(records)
                    return out, b[0]
                cache[key] = records
                if len(cache) > _DECODED_BATCHES:
                    del cache[next(iter(cache))]
            out.extend(records)
        return out, None

    def _handle_acknowledge(self, fut: Future, acks: dict) -> None:
        exc = fut.exception()
        if exc is not None:
            self.outcomes.append((acks, map_error(exc)))
            return
        r = fut.result()
        if isinstance(r, P.ErrorResponse) or r.error_code:
            self.outcomes.append((acks, error_for_code(r.error_code, r.error_message)))
            return
        codes = {TopicPartition(t.name, x.partition): x.error_code
                 for t in r.results for x in t.partitions}
        for tp, sent in acks.items():
            code = codes.get(tp, 0)
            if code in _MOVED:
                self.acks.forget([tp])
            self.outcomes.append(({tp: sent}, error_for_code(code, f"{tp.topic}-{tp.partition}")
                                  if code else None))


__all__ = ["Delivery", "ShareFetcher", "ShareRecord"]
