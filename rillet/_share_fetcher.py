"""A ShareConsumer's fetching: ShareFetch per partition leader with piggybacked
acknowledgements, ShareAcknowledge for the rest, and the records of the acquired ranges.

One ShareFetch is in flight per leader at most. Its response's batches are framed
(:func:`scan_batches`), only those holding an acquired offset are decoded, each once (a
stored batch larger than one acquisition comes in several responses; see :class:`_Batch`),
and the records of the ``acquired_records`` ranges (a stored batch may hold offsets acquired
by another member) are handed out as :class:`ShareRecord`\\ s carrying their delivery count.
A batch of the common shape (uncompressed, dense offsets, no headers: what the producer
writes) is kept as columns, and a range's records are built from slices of them in one
C-level loop (``map(ShareRecord, zip(...))``, as the plain consumer builds its records), so
a record costs one tuple, never a record plus a copy with the delivery count; other shapes
go through the consumer's decoder (:meth:`rillet._fetcher.Fetcher._decode`).

Acknowledgement outcomes (the ShareFetch ``acknowledge_error_code`` of a partition, or a
ShareAcknowledge result) are queued as ``(acks, error)`` for the consumer to report; a
partition the answer does not name gets an error (its outcome is unknown). A leader
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
from itertools import chain, repeat
from typing import Any, NamedTuple

from rillet._fetcher import Fetcher, PartitionState, _add_timestamps, _Chunk, _gc_paused
from rillet._network import NetworkClient, map_error
from rillet._share_acks import Acknowledgements, Settled, final_ranges
from rillet.errors import UnknownServerError, error_for_code
from rillet.logstore.batch import CODEC_MASK, HEADER_SIZE, LOG_APPEND_TIME_FLAG, digest_at
from rillet.logstore.batch_fast import decode_columns_at, scan_batches
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

    def offsets(self) -> range | list[int]:
        """The offsets of ``records`` (a range when the acquired range has no gap)."""
        if len(self.records) == self.last - self.first + 1:
            return range(self.first, self.last + 1)
        return [r[2] for r in self.records]

    def split(self, n: int) -> tuple[Delivery, Delivery]:
        """The first ``n`` records (0 < n < len(records)) and the rest, as two ranges that
        meet at the first record of the rest (gaps go with the range they fall in)."""
        at = self.records[n][2]
        return (Delivery(self.tp, self.first, at - 1, self.records[:n]),
                Delivery(self.tp, at, self.last, self.records[n:]))


class _Batch:
    """One stored batch's records, decoded once: ``timestamps``, ``keys`` and ``values``
    columns (``keys``/``values`` None: all null) for the common shape, whose offsets are
    ``base`` to ``last`` without gaps and whose records have no headers; else ``records``,
    its ConsumerRecords in offset order (any shape: compressed, compacted, headers)."""

    __slots__ = ("base", "last", "timestamps", "keys", "values", "records")

    def __init__(self, base: int, last: int, timestamps=None, keys=None, values=None,
                 records=None) -> None:
        self.base, self.last = base, last
        self.timestamps, self.keys, self.values = timestamps, keys, values
        self.records = records

    def add_range(self, out: list, tp: TopicPartition, first: int, last: int,
                  delivery_count: int) -> None:
        """Append the ShareRecords of offsets [first, last] held here to ``out``."""
        if self.records is not None:
            rs = self.records
            lo = bisect.bisect_left(rs, first, key=_offset)
            hi = bisect.bisect_right(rs, last, key=_offset)
            out.extend(map(ShareRecord, map(operator.add, rs[lo:hi],
                                            repeat((delivery_count,)))))
            return
        base = self.base
        lo = max(first, base) - base
        hi = min(last, self.last) - base + 1
        if hi <= lo:
            return
        ks, vs = self.keys, self.values
        out.extend(map(ShareRecord, zip(
            repeat(tp[0]), repeat(tp[1]), range(base + lo, base + hi),
            self.timestamps[lo:hi], repeat(None) if ks is None else ks[lo:hi],
            repeat(None) if vs is None else vs[lo:hi], repeat(()), repeat(delivery_count))))


class ShareFetcher:
    def __init__(self, client: NetworkClient, config, acks: Acknowledgements,
                 member_id: str) -> None:
        self.client = client
        self.config = config
        self.acks = acks
        self.group_id = config.group_id
        self.member_id = member_id
        # digests are checked here (_decode_batch), before a batch goes to this decoder
        self._decoder = Fetcher(client, types.SimpleNamespace(
            auto_offset_reset="latest", check_crcs=False,
            key_deserializer=config.key_deserializer,
            value_deserializer=config.value_deserializer,
            retry_backoff_ms=config.retry_backoff_ms, isolation_level="read_uncommitted"))
        # leader address -> (future, {tp: acknowledgement batches sent with it})
        self.in_flight: dict[str, tuple[Future, dict]] = {}
        self._ack_requests: list[tuple[Future, dict]] = []
        self._retry_at: dict[str, float] = {}
        self.outcomes: deque[tuple[dict, BaseException | None]] = deque()
        # what this member accepted or rejected durably: a later delivery of it is not
        # handed out (rillet/_share_acks.py, Settled)
        self.settled = Settled((config.request_timeout_ms + config.fetch_max_wait_ms) / 1000 + 1)
        self.lock_timeout_ms = 0
        self._decoded: dict[tuple, _Batch] = {}  # (tp, base offset, digest) -> its records
        self._check_crcs = config.check_crcs
        self._key_deserializer = config.key_deserializer
        self._value_deserializer = config.value_deserializer

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
                acquire_mode=0 if cfg.share_acquire_mode == "batch_optimized" else 1,
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

    def send_acknowledgements(self, tps=None) -> list[tuple[Future | None, dict]]:
        """ShareAcknowledge of the pending acknowledgements (of ``tps``, default all), one
        request per leader; returns ``(request, {tp: batches})`` of each (their outcomes are
        queued when done), and ``(None, {tp: batches})`` for those with no leader known
        (their outcome, LEADER_NOT_AVAILABLE, is queued at once). An outcome's batches are
        the very objects returned here: :meth:`ShareConsumer.commit_sync` tells its own
        outcomes from older ones by identity."""
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
            sent.append((None, {tp: batches}))
        return sent

    # -- receiving ----------------------------------------------------------------------------

    def futures(self) -> list[Future]:
        return [f for f, _ in self.in_flight.values()] + [f for f, _ in self._ack_requests]

    def collect(self) -> list[Delivery]:
        """Deliveries of the ShareFetch responses that arrived (ack outcomes are queued; the
        offsets they accept or reject go to ``settled``, which the consumer cuts out of its
        buffer and of these deliveries)."""
        out: list[Delivery] = []
        seen = len(self.outcomes)
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
        now = time.monotonic()
        for i in range(seen, len(self.outcomes)):
            acks, error = self.outcomes[i]
            if error is None:
                for tp, batches in acks.items():
                    self.settled.add(tp, final_ranges(batches), now)
        self.settled.prune(now)
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
            self.outcomes.append(({tp: sent}, _unanswered(tp)))

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
        lasts = [d.last for d in decoded]
        with _gc_paused():  # the records are tuples: see rillet._fetcher._gc_paused
            for a in sorted(acquired, key=lambda a: a.first_offset):
                last = min(a.last_offset, covered_to - 1)
                if a.last_offset > last:
                    self.acks.pending.setdefault(tp, []).extend(
                        (o, ACK_RELEASE, 0, "") for o in range(max(a.first_offset, covered_to),
                                                               a.last_offset + 1))
                if last < a.first_offset:
                    continue
                records: list[ShareRecord] = []
                for i in range(bisect.bisect_left(lasts, a.first_offset), len(decoded)):
                    d = decoded[i]
                    if d.base > last:
                        break
                    d.add_range(records, tp, a.first_offset, last, a.delivery_count)
                out.append(Delivery(tp, a.first_offset, last, records))

    def _decode(self, tp: TopicPartition, buf: bytes, batches: list
                ) -> tuple[list[_Batch], int | None]:
        """The decoded ``batches`` (from :func:`scan_batches` over ``buf``) and the base
        offset of the first batch whose digest does not match (None: none). A stored batch
        larger than one acquisition comes in several responses: it is decoded once and kept
        (the last ``_DECODED_BATCHES`` batches, by offset and digest)."""
        cache = self._decoded
        mv = memoryview(buf)
        out: list[_Batch] = []
        for b in batches:
            key = (tp, b[0], b[7])
            d = cache.get(key)
            if d is None:
                d = self._decode_batch(tp, buf, mv, b)
                if d is None:
                    return out, b[0]
                cache[key] = d
                if len(cache) > _DECODED_BATCHES:
                    del cache[next(iter(cache))]
            out.append(d)
        return out, None

    def _decode_batch(self, tp: TopicPartition, buf: bytes, mv: memoryview, b: tuple
                      ) -> _Batch | None:
        """One batch of :func:`scan_batches` (None: its digest does not match)."""
        base, attributes, first_ts, last_delta, n, start, end, digest = b
        if self._check_crcs and digest_at(mv, start, end) != digest:
            return None
        fast = None
        if not attributes & (CODEC_MASK | LOG_APPEND_TIME_FLAG) and n == last_delta + 1:
            fast = decode_columns_at(buf, start + HEADER_SIZE, end, n)
        if fast is None:  # another shape (or LogAppendTime): the consumer's decoder
            records = self._decoder._decode(PartitionState(tp), _Chunk(buf, [b]))
            return _Batch(base, base + last_delta, records=records)
        deltas, ks, vs, _ = fast
        runs: list = []
        _add_timestamps(runs, first_ts, deltas, n)
        kd, vd = self._key_deserializer, self._value_deserializer
        if ks is not None and kd is not None:
            ks = [None if k is None else kd(k) for k in ks]
        if vs is not None and vd is not None:
            vs = [None if v is None else vd(v) for v in vs]
        return _Batch(base, base + last_delta, list(chain.from_iterable(runs)), ks, vs)

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
            code = codes.get(tp)
            if code is None:
                self.outcomes.append(({tp: sent}, _unanswered(tp)))
                continue
            if code in _MOVED:
                self.acks.forget([tp])
            self.outcomes.append(({tp: sent}, error_for_code(code, f"{tp.topic}-{tp.partition}")
                                  if code else None))


def _unanswered(tp: TopicPartition) -> BaseException:
    """The outcome of acknowledgements the broker's answer did not name: unknown, so not
    reported as durable (Kafka's consumer completes only the partitions an answer names)."""
    return UnknownServerError(f"the broker's answer did not name {tp.topic}-{tp.partition}: "
                              "the acknowledgements' outcome is unknown")


__all__ = ["Delivery", "ShareFetcher", "ShareRecord"]
