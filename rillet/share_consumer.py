"""The share consumer (KIP-932 share groups, i.e. queues): per-record acknowledgement.

    consumer = ShareConsumer(bootstrap_servers="127.0.0.1:9092", group_id="crawler")
    consumer.subscribe(["urls"])
    for record in consumer.poll(timeout_ms=1000):       # record.delivery_count: 1, 2, ...
        consumer.acknowledge(record, "accept")          # or "release" / "reject" / "renew"

Any number of share consumers read the same partitions; the partition leader hands each
record to one of them at a time under a lock (``share.record.lock.duration.ms``). Records a
poll returned and the application did not acknowledge are accepted by the next poll,
``commit_sync``/``commit_async`` or ``close`` (``share.acknowledgement.mode=implicit``, the
default); once the application calls :meth:`~ShareConsumer.acknowledge`, or with
``explicit``, every record must be acknowledged before the next poll. See docs/queues.md.

Pipelining: when poll() hands records out it sends the next ShareFetch at once, so the
leader acquires the next records while the application processes these; the
acknowledgements made meanwhile ride on the next ShareFetch to that leader, or, when one is
already in flight there, go at the next poll() by ShareAcknowledge.

Threads: a ShareConsumer is used from one thread; the heartbeat runs on its own thread
(:mod:`rillet._share_membership`) and the endpoint's I/O thread owns the sockets.
Pieces: acknowledgement bookkeeping in :mod:`rillet._share_acks`, fetching in
:mod:`rillet._share_fetcher`.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import wait as wait_futures
from typing import Any

from rillet._network import NetworkClient
from rillet._share_acks import Acknowledgements
from rillet._share_fetcher import Delivery, ShareFetcher, ShareRecord
from rillet._share_membership import ShareMembership
from rillet.config import share_consumer_config
from rillet.errors import ConsumerClosedError, IllegalStateError, RilletError, RilletTimeoutError
from rillet.records import TopicPartition
from rillet.transport import protocol as P

_log = logging.getLogger("rillet.share_consumer")


class AcknowledgeType(enum.IntEnum):
    """How a record is acknowledged (Kafka's AcknowledgeType, plus RENEW of KIP-1222)."""

    ACCEPT = P.ACK_ACCEPT  #: processed: never delivered again
    RELEASE = P.ACK_RELEASE  #: deliver again (after the back-off, or ``delay_ms``)
    REJECT = P.ACK_REJECT  #: unprocessable: archived, written to the dead-letter topic
    RENEW = P.ACK_RENEW  #: still working on it: restart the lock's duration

    @classmethod
    def of(cls, value: AcknowledgeType | str | int) -> AcknowledgeType:
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                raise ValueError(f"acknowledge type {value!r}: use accept, release, reject "
                                 f"or renew") from None
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"acknowledge type {value!r}: use accept, release, reject or "
                             f"renew") from None


AckCallback = Callable[[dict[TopicPartition, set[int]], BaseException | None], None]


class ShareConsumer:
    """A member of a share group. Config: Kafka's share consumer keys (``group.id``,
    ``share.acknowledgement.mode``, ``max.poll.records``, ``fetch.max.wait.ms``, ...).
    Not thread-safe."""

    def __init__(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        cfg = share_consumer_config(config, kwargs)
        self.config = cfg
        self._client = NetworkClient(cfg, name="rillet-share-consumer")
        self._acks = Acknowledgements(explicit=cfg.share_acknowledgement_mode == "explicit")
        self._membership: ShareMembership | None = None
        self._fetcher: ShareFetcher | None = None
        self._buffer: list[Delivery] = []
        self._callback: AckCallback | None = None
        self._async_callbacks: list[tuple[set, AckCallback]] = []
        self._closed = False

    # -- subscription -----------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] | str) -> None:
        """Join the share group for these topics (replaces an earlier subscription)."""
        self._check_open()
        names = (topics,) if isinstance(topics, str) else tuple(topics)
        if not names or not all(isinstance(t, str) and t for t in names):
            raise IllegalStateError("subscribe() needs one or more topic names")
        if self._membership is not None:
            self.unsubscribe()
        self._membership = ShareMembership(self._client, self.config,
                                           tuple(sorted(set(names))))
        self._fetcher = ShareFetcher(self._client, self.config, self._acks,
                                     self._membership.member_id)

    def subscription(self) -> set[str]:
        return set(self._membership.topics) if self._membership else set()

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member fetches from now (shared with other members)."""
        return set(self._membership.current()) if self._membership else set()

    def unsubscribe(self) -> None:
        """Acknowledge what is settled, release what was fetched but not handed out, and
        leave the group."""
        if self._membership is None:
            return
        self._finish(timeout_s=self.config.request_timeout_ms / 1000)
        self._membership.close()
        self._membership = None
        self._fetcher = None

    @property
    def member_id(self) -> str | None:
        return self._membership.member_id if self._membership else None

    # -- consuming --------------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0) -> list[ShareRecord]:
        """Records acquired for this member (each with ``delivery_count``), waiting up to
        ``timeout_ms`` for some. First settles the previous poll's records: implicit mode
        accepts the unacknowledged ones; explicit mode raises IllegalStateError if any is
        not acknowledged."""
        self._check_open()
        m, f = self._membership, self._fetcher
        if m is None:
            raise IllegalStateError("poll() before subscribe()")
        if self._acks.explicit:
            self._acks.check_all()
        else:
            self._acks.settle()
        f.send_acknowledgements_to_busy_leaders()
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        max_wait = self.config.fetch_max_wait_ms
        while True:
            assignment = m.current()
            self._take_in(f.collect())
            self._report()
            if self._buffer:
                out = self._hand_out(self.config.max_poll_records)
                # prefetch: the leaders acquire the next records while the application works
                # on these (their acknowledgements follow by ShareAcknowledge, see above);
                # not while more than a poll's worth is still buffered (batch_optimized
                # acquisition), whose locks are already running
                if sum(len(d.records) for d in self._buffer) < self.config.max_poll_records:
                    f.send_fetches(assignment, max_wait)
                return out
            f.send_fetches(assignment, max_wait)
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            futures = f.futures()
            if futures:
                wait_futures(futures, timeout=min(left, 0.2), return_when=FIRST_COMPLETED)
            elif not assignment:
                m.joined.wait(min(left, 0.05))
                if m.joined.is_set():
                    time.sleep(min(left, 0.02))  # joined, waiting for an assignment
            else:
                time.sleep(min(left, self.config.retry_backoff_ms / 1000))

    def _take_in(self, deliveries: list[Delivery]) -> None:
        """Buffer what a collect brought, the buffer and it without the offsets this member
        has accepted or rejected (``ShareFetcher.settled``: a later delivery of a record
        whose lock expired while this member held it, which the acknowledgement then
        applied to)."""
        self._buffer.extend(deliveries)
        settled = self._fetcher.settled
        if settled:
            self._buffer = [piece for d in self._buffer for piece in settled.without(d)]

    def _hand_out(self, limit: int) -> list[ShareRecord]:
        """At most ``limit`` buffered records, in order; a range is split where the limit
        falls (the rest stays buffered for the next poll)."""
        out: list[ShareRecord] = []
        delivered = self._acks.delivered
        buffer = self._buffer
        i = 0
        while i < len(buffer) and len(out) < limit:
            d = buffer[i]
            room = limit - len(out)
            if len(d.records) > room:
                head, rest = d.split(room)
                buffer[i] = rest
                d = head
            else:
                i += 1
            delivered(d.tp, d.first, d.last, d.offsets())
            out.extend(d.records)
        del buffer[:i]
        return out

    def acknowledge(self, record: ShareRecord, type: AcknowledgeType | str = AcknowledgeType.ACCEPT,  # noqa: A002
                    delay_ms: int | None = None, reason: str | None = None) -> None:
        """Acknowledge one record this consumer holds. ``delay_ms`` (RELEASE only): None the
        group's back-off, 0 at once, > 0 not before that many ms. ``reason`` (REJECT only):
        goes into the dead-letter record's ``rillet.dlq.reason`` header. Sent with the next
        poll, ``commit_sync`` or ``commit_async``. Switches the consumer to explicit mode."""
        self._check_open()
        kind = AcknowledgeType.of(type)
        if delay_ms is not None:
            if kind != AcknowledgeType.RELEASE:
                raise ValueError("delay_ms is only for RELEASE")
            if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or delay_ms < 0:
                raise ValueError(f"delay_ms must be an int >= 0 (None: the group's back-off), "
                                 f"got {delay_ms!r}")
        if reason is not None:
            if kind != AcknowledgeType.REJECT:
                raise ValueError("reason is only for REJECT")
            if not isinstance(reason, str):
                raise ValueError(f"reason must be a str, got {reason.__class__.__name__}")
        tp = TopicPartition(record[0], record[1])
        self._acks.acknowledge(tp, record[2], int(kind), -1 if delay_ms is None else delay_ms,
                               reason or "")
        self._acks.explicit = True

    # -- committing acknowledgements --------------------------------------------------------

    def set_acknowledgement_commit_callback(self, callback: AckCallback | None) -> None:
        """``callback({tp: offsets}, error)`` runs in poll()/commit for every acknowledgement
        the brokers answered (error None: durable)."""
        self._callback = callback

    def commit_sync(self, timeout_ms: int | None = None) -> dict[TopicPartition, BaseException | None]:
        """Send the pending acknowledgements (implicit mode: accept what the last poll
        returned) and wait until the leaders answered, i.e. until they are durable.
        Returns ``{tp: error or None}`` for every partition this call sent acknowledgements
        of, and only those (as Kafka's ``commitSync``): None only when the answer to *these*
        acknowledgements said durable; a ``RilletTimeoutError`` when it did not come within
        the timeout (the outcome, when it comes, goes to the callbacks and the log). Outcomes
        of earlier requests answered meanwhile are reported to the callbacks, never here."""
        self._check_open()
        f = self._fetcher
        if f is None:
            return {}
        if not self._acks.explicit:
            self._acks.settle()
        sent = f.send_acknowledgements()
        timeout_s = (timeout_ms or self.config.request_timeout_ms) / 1000
        wait_futures([fut for fut, _ in sent if fut is not None], timeout=timeout_s)
        mine = {tp: batches for _, acks in sent for tp, batches in acks.items()}
        results = self._report(collect=True, mine=mine)
        for tp in mine.keys() - results.keys():
            results[tp] = RilletTimeoutError(
                f"the acknowledgements of {tp.topic}-{tp.partition} were not answered within "
                f"{int(timeout_s * 1000)} ms: not known to be durable")
        return results

    def commit_async(self, callback: AckCallback | None = None) -> None:
        """Like commit_sync in the background; outcomes go to ``callback`` (or the
        acknowledgement commit callback) in a later poll()."""
        self._check_open()
        f = self._fetcher
        if f is None:
            return
        if not self._acks.explicit:
            self._acks.settle()
        sent = f.send_acknowledgements()
        if callback is not None:
            self._async_callbacks.append(({tp for _, acks in sent for tp in acks}, callback))

    def _report(self, collect: bool = False, mine: dict | None = None
                ) -> dict[TopicPartition, BaseException | None]:
        """Hand the queued acknowledgement outcomes to the callbacks (and the log); returns
        ``{tp: error or None}`` of those whose batches are ``mine[tp]`` (the very objects
        sent; ``mine`` None: of all)."""
        f = self._fetcher
        if collect:
            self._take_in(f.collect())
        results: dict[TopicPartition, BaseException | None] = {}
        reported: set[TopicPartition] = set()
        while f.outcomes:
            acks, error = f.outcomes.popleft()
            for tp, batches in acks.items():
                reported.add(tp)
                if mine is None or mine.get(tp) is batches:
                    results[tp] = error if results.get(tp) is None else results[tp]
            if error is not None and self._callback is None:
                _log.warning("acknowledgement of %s failed: %s", sorted(acks), error)
            callbacks = [cb for tps, cb in self._async_callbacks if tps & acks.keys()]
            if self._callback is not None:
                callbacks.append(self._callback)
            if callbacks:
                offsets = {tp: {x for b in batches
                                for x in range(b.first_offset, b.last_offset + 1)}
                           for tp, batches in acks.items()}
                for cb in callbacks:
                    cb(offsets, error)
        self._async_callbacks = [(tps, cb) for tps, cb in self._async_callbacks
                                 if tps - reported]
        return results

    # -- closing ----------------------------------------------------------------------------

    def _finish(self, timeout_s: float) -> None:
        """Settle, release what was fetched but never handed out, send, wait (bounded)."""
        f = self._fetcher
        if f is None:
            return
        if not self._acks.explicit:
            self._acks.settle()
        else:
            self._acks.release_all()  # not acknowledged: to the others at once
        deadline = time.monotonic() + timeout_s
        in_flight = [fut for fut, _ in f.in_flight.values()]
        if in_flight:  # records acquired for us meanwhile: release them rather than let
            wait_futures(in_flight, timeout=min(timeout_s, 1.0))  # their locks expire
        try:
            self._take_in(f.collect())
        except RilletError as exc:
            _log.info("share fetch failed while closing: %s", exc)
        for d in self._buffer:
            self._acks.delivered(d.tp, d.first, d.last, d.offsets())
            for r in d.records:
                self._acks.acknowledge(d.tp, r[2], P.ACK_RELEASE, 0, "")
        self._buffer = []
        sent = [fut for fut, _ in f.send_acknowledgements() if fut is not None]
        if sent:
            wait_futures(sent,
                         timeout=max(0.0, deadline - time.monotonic()))
        try:
            self._report(collect=True)
        except RilletError as exc:
            _log.info("acknowledgements while closing: %s", exc)

    def close(self, timeout_ms: int | None = None) -> None:
        """Acknowledge (implicit mode: accept the last poll's records), release records
        fetched but not handed out, leave the group and close the connections. Idempotent."""
        if self._closed:
            return
        try:
            if self._membership is not None:
                self._finish((timeout_ms or self.config.request_timeout_ms) / 1000)
                self._membership.close()
                self._membership = None
        finally:
            self._closed = True
            self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ConsumerClosedError()

    def __enter__(self) -> ShareConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["AcknowledgeType", "ShareConsumer", "ShareRecord"]
