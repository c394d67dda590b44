"""The consumer's fetch engine: positions, pipelined Fetch requests, lazy batch decoding.

Per assigned partition a :class:`PartitionState` holds the ``position`` (next offset handed to
the application) and the ``fetch_offset`` (next offset to ask the broker for; ahead of the
position while fetched chunks wait in the buffer). A partition is fetched again as soon as its
previous response arrived, while at most ``_PREFETCH`` undecoded chunks wait, so the broker
reads the next chunk while the application processes the current one. A response is only
framed on arrival (:func:`scan_batches`: one struct unpack per batch header); its batches are
digest-checked and decoded when poll() hands their records out, batch by batch:
``logstore.batch_fast.decode_columns_at`` for the common batch shape, else
``logstore.batch.decode_columns``; each batch's records are built in one C-level loop with the
GC paused (see :func:`_gc_paused`). A ``seek`` bumps the partition's generation, which
discards buffered chunks and any response still in flight for it.

Chained fetches (issue #12): when a response with records arrives, the endpoint's I/O thread
frames it (the same :func:`scan_batches` walk) and sends the next Fetch for those partitions
at once, from the offset after the response, if nothing is buffered for them; the consumer
thread adopts that request as the partition's one fetch in flight when it collects the
response. The next fetch then leaves without waiting for the consumer thread to wake up and
hand it back to the I/O thread: at a steady trickle of records that round trip was the
largest part of a record's wait on the broker for a fetch to answer it. Only the consumer
thread changes partition state; the I/O thread reads it, and a request it chained on a
state that moved on (seek, pause, reassignment) is answered and dropped as stale.

A corrupt batch (bad framing, or a digest mismatch with ``check.crcs``) ends its chunk: the
records before it are handed out as usual, and the poll that reaches it with nothing else
to return raises ``CorruptMessageError`` for that partition (as Kafka's consumer raises
CorruptRecordException), once per corrupt response. The position stays at the corrupt
batch's offset and the partition is fetched again from there after ``retry.backoff.ms``
with a metadata refresh, so a broker that has since moved leadership to a healthy replica
serves the rest and the consumer goes on; nothing is skipped silently.

Transactions: control batches (transaction markers) are never handed out; with
``isolation.level=read_committed`` neither are the batches of aborted transactions, named by
the response's ``aborted_transactions`` (:mod:`rillet._read_committed`). Once a chunk is
handed out entirely the position moves to the offset after its last batch, past skipped
batches and markers too (as Kafka's consumer), so a partition whose tail is a marker does
not look behind.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import operator
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import contextmanager
from itertools import chain, repeat

from rillet._client_metrics import ConsumerMetrics
from rillet._network import NetworkClient, map_error
from rillet._read_committed import drop_aborted
from rillet.config import ClientConfig
from rillet.errors import (
    BrokerUnavailableError,
    CorruptMessageError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    RilletError,
    RilletTimeoutError,
    error_for_code,
)
from rillet.logstore.batch import (
    CODEC_MASK,
    HEADER_SIZE,
    LOG_APPEND_TIME_FLAG,
    decode_columns,
    digest_at,
)
from rillet.logstore.batch_fast import decode_columns_at, scan_batches
from rillet.records import ConsumerRecord, FetchedRecord, LogAppendTimeRecord, TopicPartition
from rillet.transport.protocol import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    READ_COMMITTED,
    ErrorCode,
    FetchPartition,
    FetchRequest,
    FetchTopic,
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
    retriable,
)

# max_timestamp of a batch (logstore/batch.py's header): a LogAppendTime batch's append time
_MAX_TIMESTAMP = struct.Struct(">q").unpack_from
_MAX_TIMESTAMP_AT = 63
_PREFETCH = 2  # undecoded chunks buffered per partition before fetching pauses
_offset = operator.itemgetter(2)


class PartitionState:
    __slots__ = ("tp", "position", "fetch_offset", "generation", "paused", "high_watermark",
                 "log_start_offset", "in_flight", "chunks", "retry_at")

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.position: int | None = None
        self.fetch_offset: int | None = None
        self.generation = 0
        self.paused = False
        self.high_watermark: int | None = None
        self.log_start_offset: int | None = None
        self.in_flight = False
        self.chunks: deque[_Chunk] = deque()
        self.retry_at = 0.0

    def seek(self, offset: int) -> None:
        self.position = self.fetch_offset = offset
        self.generation += 1
        self.chunks.clear()
        self.in_flight = False  # a response still in flight is stale (older generation)


class _Chunk:
    """The batches of one fetch response for one partition: raw until first needed.
    ``batches`` holds a tuple per batch (see :func:`scan_batches`) into ``buf``; ``error``
    says why the chunk ends early at a corrupt batch (None: it does not)."""

    __slots__ = ("buf", "batches", "records", "index", "error", "next_offset")

    def __init__(self, buf: bytes, batches: list, error: str | None = None,
                 next_offset: int = -1) -> None:
        self.buf = buf
        self.batches = batches
        self.records: list[ConsumerRecord] | None = None
        self.index = 0
        self.error = error
        self.next_offset = next_offset  # after the chunk's last batch (skipped ones too)


class Fetcher:
    """Owned by one Consumer (one thread). The endpoint's I/O thread reads partition state to
    chain fetches (``_chain``) and writes only ``_chained`` / ``_unadopted``."""

    def __init__(self, client: NetworkClient, config: ClientConfig) -> None:
        self.client = client
        self.config = config
        self.states: dict[TopicPartition, PartitionState] = {}
        # request number -> (future, {tp: (fetch offset, generation)})
        self._in_flight: dict[int, tuple[Future, dict[TopicPartition, tuple[int, int]]]] = {}
        # request number -> (request number, future, sent) of the fetch the I/O thread chained
        # on its response; written by the I/O thread before that response is handed over
        self._chained: dict[int, tuple[int, Future, dict[TopicPartition, tuple[int, int]]]] = {}
        # chained requests the consumer thread has not adopted yet: their responses chain no
        # further, so an application that stops polling stops the fetching too
        self._unadopted: set[int] = set()
        # set by the I/O thread when a fetch it answered (or could not send) is complete:
        # poll() waits on it (concurrent.futures.wait installs and removes a waiter on every
        # future in flight, with their locks, each time)
        self._arrived = threading.Event()
        self.chained_fetches = 0  # fetches sent by the I/O thread (tests, benchmarks)
        self._request_ids = itertools.count()
        self._reset = config.auto_offset_reset
        self._check_crcs = config.check_crcs
        self._key_deserializer = config.key_deserializer
        self._value_deserializer = config.value_deserializer
        self._backoff_s = config.retry_backoff_ms / 1000
        self._next_start = 0
        self._read_committed = config.isolation_level == "read_committed"
        self.metrics = ConsumerMetrics()  # Consumer.metrics() (rillet/_client_metrics.py)

    def assign(self, tps: list[TopicPartition]) -> None:
        old = dict(self.states)
        self.states.clear()
        for tp in tps:
            self.states[tp] = old.get(tp) or PartitionState(tp)

    # -- offsets ---------------------------------------------------------------------------

    def list_offsets(self, tps: list[TopicPartition], timestamp: int,
                     timeout_s: float | None = None) -> dict[TopicPartition, int]:
        """Offsets by ListOffsets, retrying retriable errors (leader moves) until the timeout."""
        deadline = time.monotonic() + (timeout_s or self.config.request_timeout_ms / 1000)
        result: dict[TopicPartition, int] = {}
        todo = list(dict.fromkeys(tps))
        last: BaseException | None = None
        while todo:
            by_leader: dict[str, list[TopicPartition]] = {}
            for tp in todo:
                self.client.wait_for_topic(tp.topic, self.config.request_timeout_ms)
                address = self.client.leader_address(tp.topic, tp.partition)
                if address is not None:
                    by_leader.setdefault(address, []).append(tp)
            retry: list[TopicPartition] = [tp for tp in todo
                                           if not any(tp in v for v in by_leader.values())]
            for address, group in by_leader.items():
                topics: dict[str, list[ListOffsetsPartition]] = {}
                for tp in group:
                    topics.setdefault(tp.topic, []).append(
                        ListOffsetsPartition(partition=tp.partition, timestamp=timestamp))
                # read_committed: LATEST is the last stable offset (Kafka's consumer too)
                req = ListOffsetsRequest(
                    isolation_level=READ_COMMITTED if self._read_committed else 0,
                    topics=tuple(ListOffsetsTopic(name=t, partitions=tuple(ps))
                                 for t, ps in topics.items()))
                try:
                    resp = self.client.call(address, req)
                except RilletError as exc:
                    if not exc.retriable:
                        raise
                    last = exc
                    retry.extend(group)
                    continue
                for t in resp.topics:
                    for p in t.partitions:
                        tp = TopicPartition(t.name, p.partition)
                        if p.error_code == ErrorCode.NONE:
                            result[tp] = p.offset
                        elif retriable(p.error_code):
                            last = error_for_code(p.error_code, f"{t.name}-{p.partition}")
                            retry.append(tp)
                        else:
                            raise error_for_code(p.error_code, f"{t.name}-{p.partition}")
            todo = [tp for tp in retry if tp not in result]
            if todo:
                if time.monotonic() >= deadline:
                    raise RilletTimeoutError(f"ListOffsets for {todo} did not succeed: {last}")
                self.client.request_metadata_update()
                time.sleep(self._backoff_s)
                self.client.refresh_metadata({tp.topic for tp in todo})
        return result

    def reset_positions(self, tps: list[TopicPartition]) -> None:
        if self._reset == "none":
            raise NoOffsetForPartitionError(
                f"no position for {', '.join(f'{t}-{p}' for t, p in tps)} and "
                f"auto.offset.reset is 'none'")
        ts = EARLIEST_TIMESTAMP if self._reset == "earliest" else LATEST_TIMESTAMP
        for tp, offset in self.list_offsets(tps, ts).items():
            self.states[tp].seek(offset)

    # -- polling ---------------------------------------------------------------------------

    def poll(self, timeout_s: float, max_records: int) -> dict[TopicPartition, list]:
        deadline = time.monotonic() + timeout_s
        while True:
            self._collect()
            missing = [tp for tp, s in self.states.items() if s.position is None]
            if missing:
                self.reset_positions(missing)
            self._send_fetches()
            out = self._drain(max_records)
            if out:
                self._send_fetches()  # refill what this poll emptied before returning
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return {}
            if self._in_flight:
                arrived = self._arrived
                arrived.clear()  # before looking: a fetch done after the look sets it again
                if not any(f.done() for f, _ in self._in_flight.values()):
                    arrived.wait(left)
            else:
                time.sleep(min(left, self._backoff_s))

    def _send_fetches(self) -> None:
        now = time.monotonic()
        by_leader: dict[str, list[PartitionState]] = {}
        need_metadata = False
        for state in self.states.values():
            if (state.in_flight or state.paused or state.position is None
                    or len(state.chunks) >= _PREFETCH or state.retry_at > now):
                continue
            address = self.client.leader_address(state.tp.topic, state.tp.partition)
            if address is None:
                need_metadata = True
                continue
            by_leader.setdefault(address, []).append(state)
        if need_metadata:
            self.client.request_metadata_update()
        cfg = self.config
        for address, states in by_leader.items():
            topics: dict[str, list[FetchPartition]] = {}
            sent: dict[TopicPartition, tuple[int, int]] = {}
            for state in states:
                topics.setdefault(state.tp.topic, []).append(FetchPartition(
                    partition=state.tp.partition, fetch_offset=state.fetch_offset,
                    partition_max_bytes=cfg.max_partition_fetch_bytes))
                sent[state.tp] = (state.fetch_offset, state.generation)
                state.in_flight = True
            req = self._fetch_request(topics)
            rid = next(self._request_ids)
            future, send = self._request(address, req, sent, rid)
            send()
            self._in_flight[rid] = (future, sent)

    def _fetch_request(self, topics: dict[str, list[FetchPartition]]) -> FetchRequest:
        cfg = self.config
        return FetchRequest(
            max_wait_ms=cfg.fetch_max_wait_ms, min_bytes=cfg.fetch_min_bytes,
            max_bytes=cfg.fetch_max_bytes,
            isolation_level=READ_COMMITTED if self._read_committed else 0,
            topics=tuple(FetchTopic(name=t, partitions=tuple(ps)) for t, ps in topics.items()),
            client_id=cfg.client_id)

    def _request(self, address: str, req: FetchRequest,
                 sent: dict[TopicPartition, tuple[int, int]],
                 rid: int) -> tuple[Future, Callable[[], None]]:
        """A Fetch and the Future the consumer thread waits on: ``(future, send)``, nothing
        sent until ``send()`` (a chained fetch is sent once the response it follows is handed
        over). The future completes only after the I/O thread has chained the next fetch on
        the response (see :meth:`_chain`)."""
        cfg = self.config
        outer: Future = Future()
        metrics, started = self.metrics, time.monotonic()

        def arrived(f: Future) -> None:  # the endpoint's I/O thread
            metrics.fetches += 1
            metrics.latency.observe((time.monotonic() - started) * 1000)
            exc = f.exception()  # done: neither call waits
            response = f.result() if exc is None else None
            send_next = None
            if response is not None:
                if getattr(response, "throttle_time_ms", 0):
                    metrics.throttle.observe(response.throttle_time_ms)  # the broker holds us
                try:
                    send_next = self._chain(address, response, sent, rid)
                except Exception:  # noqa: BLE001 - chaining is an optimisation: never lose it
                    pass
            if outer.set_running_or_notify_cancel():
                if exc is not None:
                    outer.set_exception(exc)
                else:
                    outer.set_result(response)
            self._arrived.set()
            if send_next is not None:
                # after the hand-over: the consumer thread wakes while the request is encoded
                # and sent (it adopts the chained future whether or not it left yet)
                send_next()

        def send() -> None:
            inner = self.client.request(
                address, req, cfg.request_timeout_ms + cfg.fetch_max_wait_ms)
            inner.add_done_callback(arrived)

        return outer, send

    def _chain(self, address: str, response, sent: dict[TopicPartition, tuple[int, int]],
               rid: int) -> Callable[[], None] | None:
        """I/O thread: fetch the partitions that just got records again at once, from the
        offset after them, when nothing is buffered for them. Reads state, never writes it.
        The chained fetch is registered here; the caller sends it (the returned function)."""
        if rid in self._unadopted:
            return  # one chained fetch ahead of the consumer thread at most
        topics: dict[str, list[FetchPartition]] = {}
        chained: dict[TopicPartition, tuple[int, int]] = {}
        now = time.monotonic()
        max_bytes = self.config.max_partition_fetch_bytes
        for t in response.topics:
            for p in t.partitions:
                if p.error_code != ErrorCode.NONE or not p.records:
                    continue
                tp = TopicPartition(t.name, p.partition)
                state = self.states.get(tp)
                asked = sent.get(tp)
                if (state is None or asked is None or state.generation != asked[1]
                        or state.paused or state.chunks or state.retry_at > now):
                    continue
                records = p.records if type(p.records) is bytes else bytes(p.records)
                _batches, next_offset, bad = scan_batches(
                    records, asked[0], self._check_crcs, digests=False, stop_at_corrupt=True)
                if bad is not None or next_offset <= asked[0]:
                    continue
                if self.client.leader_address(tp.topic, tp.partition) != address:
                    continue
                topics.setdefault(tp.topic, []).append(FetchPartition(
                    partition=tp.partition, fetch_offset=next_offset,
                    partition_max_bytes=max_bytes))
                chained[tp] = (next_offset, asked[1])
        if not chained:
            return
        crid = next(self._request_ids)
        self._unadopted.add(crid)
        future, send = self._request(address, self._fetch_request(topics), chained, crid)
        self._chained[rid] = (crid, future, chained)
        self.chained_fetches += 1

        def send_chained() -> None:
            try:
                send()
            except Exception as exc:  # noqa: BLE001 - e.g. the client closed meanwhile
                # not sent: a consumer thread that has not adopted it never will (it fetches
                # itself, as without a chain); one that has sees a retriable failed fetch
                if self._chained.pop(rid, None) is not None:
                    self._unadopted.discard(crid)
                elif future.set_running_or_notify_cancel():
                    future.set_exception(BrokerUnavailableError(f"fetch not sent: {exc}"))
                    self._arrived.set()

        return send_chained

    def _adopt(self, rid: int) -> None:
        """Consumer thread: the fetch chained on request ``rid``'s response becomes the one in
        flight for the partitions it names (those whose state it still matches)."""
        entry = self._chained.pop(rid, None)
        if entry is None:
            return
        crid, future, chained = entry
        self._in_flight[crid] = (future, chained)
        self._unadopted.discard(crid)
        for tp, (offset, generation) in chained.items():
            state = self.states.get(tp)
            if state is not None and (state.fetch_offset, state.generation) == (offset,
                                                                                generation):
                state.in_flight = True

    def _collect(self) -> None:
        for rid, (fut, sent) in list(self._in_flight.items()):
            if not fut.done():
                continue
            del self._in_flight[rid]
            for tp, (_offset, generation) in sent.items():
                state = self.states.get(tp)
                if state is not None and state.generation == generation:
                    state.in_flight = False
            exc = fut.exception()
            if exc is not None:
                self._adopt(rid)
                error = map_error(exc)
                if not getattr(error, "retriable", False):
                    raise error
                self._backoff(sent, refresh=True)
                continue
            try:
                self._handle_fetch(fut.result(), sent)
            finally:
                self._adopt(rid)  # after the response moved fetch_offset to where it starts

    def _backoff(self, tps, refresh: bool) -> None:
        retry_at = time.monotonic() + self._backoff_s
        for tp in tps:
            state = self.states.get(tp)
            if state is not None:
                state.retry_at = retry_at
        if refresh:
            self.client.request_metadata_update()

    def _handle_fetch(self, response, sent: dict[TopicPartition, tuple[int, int]]) -> None:
        for t in response.topics:
            for p in t.partitions:
                tp = TopicPartition(t.name, p.partition)
                state = self.states.get(tp)
                asked = sent.get(tp)
                if state is None or asked is None or asked != (state.fetch_offset,
                                                               state.generation):
                    continue  # unassigned or sought since: stale
                code = p.error_code
                if code == ErrorCode.NONE:
                    state.high_watermark = p.high_watermark
                    state.log_start_offset = p.log_start_offset
                    if p.records:
                        self.metrics.bytes_fetched += len(p.records)
                        self._buffer(state, p.records, p.aborted_transactions)
                elif code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    if self._reset == "none":
                        raise OffsetOutOfRangeError(
                            f"offset {state.fetch_offset} is out of range for {t.name}-"
                            f"{p.partition} and auto.offset.reset is 'none'")
                    state.position = None  # reset on the next poll
                    state.chunks.clear()
                elif retriable(code):
                    self._backoff([tp], refresh=True)
                else:
                    raise error_for_code(code, f"fetch {t.name}-{p.partition}")

    def _buffer(self, state: PartitionState, records, aborted=None) -> None:
        if type(records) is not bytes:
            records = bytes(records)
        # digests are checked batch by batch when decoded (the bytes are then cached)
        start = state.fetch_offset
        batches, next_offset, bad = scan_batches(records, start,
                                                 self._check_crcs, digests=False,
                                                 stop_at_corrupt=True)
        if aborted and self._read_committed:
            batches = drop_aborted(records, batches, aborted, self._check_crcs)
        state.fetch_offset = next_offset  # past control batches too; at a corrupt batch
        error = None
        if bad is not None:
            error = (f"corrupt batch from {state.tp.topic}-{state.tp.partition} at offset "
                     f"{next_offset}: {bad}")
            self._backoff([state.tp], refresh=True)  # the leader may be moving away from it
        if batches or error or next_offset > start:
            # (a chunk of skipped batches only still moves the position when handed out)
            state.chunks.append(_Chunk(records, batches, error, next_offset))

    def _drain(self, max_records: int) -> dict[TopicPartition, list]:
        out: dict[TopicPartition, list] = {}
        states = list(self.states.values())
        if not states:
            return out
        # rotate the starting partition so no partition starves the others
        start = self._next_start % len(states)
        self._next_start += 1
        remaining = max_records
        corrupt: list[PartitionState] = []
        for state in states[start:] + states[:start]:
            if remaining <= 0:
                break
            if state.paused or state.position is None:
                continue
            chunks = state.chunks
            while chunks and remaining > 0:
                chunk = chunks[0]
                records = chunk.records
                if records is None:
                    records = chunk.records = self._decode(state, chunk)
                    chunk.buf = chunk.batches = None
                    chunk.index = bisect.bisect_left(records, state.position, key=_offset)
                i = chunk.index
                # a whole chunk is handed out as it is (the list is not used again here)
                take = records if i == 0 and len(records) <= remaining else records[
                    i:i + remaining]
                if take:
                    got = out.get(state.tp)
                    if got is None:
                        out[state.tp] = take
                    else:
                        got.extend(take)
                    remaining -= len(take)
                    self.metrics.records_consumed += len(take)
                    state.position = take[-1][2] + 1
                    chunk.index = i + len(take)
                if chunk.index >= len(records):
                    if chunk.error is not None:
                        corrupt.append(state)
                        break  # reported when this poll has nothing else to return
                    chunks.popleft()
                    if chunk.next_offset > state.position:
                        state.position = chunk.next_offset  # past skipped batches and markers
        if not out and corrupt:
            state = corrupt[0]
            chunk = state.chunks.popleft()
            self._backoff([state.tp], refresh=True)
            raise CorruptMessageError(chunk.error)
        return out

    def _decode(self, state: PartitionState, chunk: _Chunk) -> list[ConsumerRecord]:
        """The records of a chunk: ``chunk.batches`` from :func:`scan_batches` over
        ``chunk.buf``, up to the first batch whose digest does not match (the chunk then ends
        there with ``chunk.error`` set, and the partition is fetched again from it).

        Batch by batch: digest, columns, then the batch's records in one C-level loop
        (``map(FetchedRecord, zip(...))``: tuple's own constructor, no Python code per
        record), while its bytes and new values are still in the CPU cache. The cyclic GC
        is paused meanwhile (see :func:`_gc_paused`)."""
        buf, batches = chunk.buf, chunk.batches
        topic, partition = state.tp
        kd, vd = self._key_deserializer, self._value_deserializer
        mv = memoryview(buf)
        check = self._check_crcs
        out: list[ConsumerRecord] = []
        extend = out.extend
        with _gc_paused():
            for base, attributes, first, last_delta, n, start, end, digest in batches:
                if check and digest_at(mv, start, end) != digest:
                    chunk.error = (f"corrupt batch from {topic}-{partition} at offset {base}:"
                                   f" digest mismatch")
                    if state.fetch_offset is not None and state.fetch_offset > base:
                        # fetch it again: nothing after it was handed out
                        state.fetch_offset = base
                        state.generation += 1  # responses in flight for later offsets
                        state.in_flight = False
                        if chunk in state.chunks:
                            while state.chunks[-1] is not chunk:
                                state.chunks.pop()
                    self._backoff([state.tp], refresh=True)
                    break
                fast = None
                if not attributes & CODEC_MASK and n == last_delta + 1:
                    fast = decode_columns_at(buf, start + HEADER_SIZE, end, n)
                if fast is not None:  # the common shape, parsed without cbor2 (batch_fast)
                    deltas, ks, vs, _ = fast
                    offsets = range(base, base + n)
                    runs: list = []
                    _add_timestamps(runs, first, deltas, n)
                    timestamps = runs[0] if len(runs) == 1 else chain.from_iterable(runs)
                    hs = None
                else:
                    offsets, timestamps, ks, vs, hs = decode_columns(mv[start:end],
                                                                     validate=False)
                    if all(k is None for k in ks):
                        ks = None
                    if all(v is None for v in vs):
                        vs = None
                    if any(hs):
                        hs = [tuple(map(tuple, h)) if h else () for h in hs]
                    else:
                        hs = None
                if ks is None:  # every key null
                    ks = repeat(None)
                elif kd is not None:
                    ks = [None if k is None else kd(k) for k in ks]
                if vs is None:  # every value null (tombstones)
                    vs = repeat(None)
                elif vd is not None:
                    vs = [None if v is None else vd(v) for v in vs]
                record = FetchedRecord
                if attributes & LOG_APPEND_TIME_FLAG:  # every record: the append time
                    record = LogAppendTimeRecord
                    timestamps = repeat(_MAX_TIMESTAMP(buf, start + _MAX_TIMESTAMP_AT)[0])
                extend(map(record, zip(repeat(topic), repeat(partition), offsets,
                                       timestamps, ks, vs,
                                       repeat(()) if hs is None else hs)))
        return out


def _add_timestamps(out: list, first: int, deltas: bytes, n: int) -> None:
    """Append iterables of the ``n`` timestamps ``first + delta`` (deltas < 24, one byte each)
    to ``out``, sharing the int objects: a batch is usually one or two runs of equal
    timestamps (a producer fills one in about a millisecond), else a 24-entry table."""
    d0 = deltas[0]
    c = deltas.count(d0)
    if c == n:
        out.append(repeat(first + d0, n))
        return
    d1 = deltas[-1]
    if deltas.find(d1) == c and deltas.count(d1) == n - c:  # d0 * c, then d1 * (n - c)
        out.append(repeat(first + d0, c))
        out.append(repeat(first + d1, n - c))
        return
    out.append(map(list(range(first, first + 24)).__getitem__, deltas))


@contextmanager
def _gc_paused():
    """Run the block with the cyclic GC paused, then move the objects it made to the oldest
    generation.

    Records are tuple subclasses, which the collector never untracks, so building a chunk of
    ~10,000 of them would run a young collection every 700 and, every tenth of those, an
    older one traversing every record still buffered; and after a paused build, the next
    young collection would traverse all of them once. Measured: ~40% of the consumer's CPU.
    So the collector is paused while a chunk is decoded (Python code runs only per batch:
    framing checks, deserializers), and the new objects are then moved to the oldest
    generation (``gc.freeze()`` + ``gc.unfreeze()``: two list splices, no traversal), where a
    record is looked at only if it is still alive at the next full collection. The move is
    skipped when the application uses ``gc.freeze()`` itself. The only effect on other
    objects: garbage cycles made since the last young collection (< 700 objects, or what
    another thread made meanwhile) are reclaimed at the next full collection instead.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
        if not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
    finally:
        gc.enable()
