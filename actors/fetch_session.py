"""Incremental fetch sessions for followers (KIP-227), the leader side.

Without sessions every follower long poll names every partition it follows and the leader
hands each one to its partition actor: with 3,000 partitions on 3 brokers that is thousands of
messages per broker every ``replica.fetch.wait.max.ms`` while nothing happens. With a session:

* The follower's first request (``session_epoch`` 0) lists all its partitions; the leader
  opens a ``ReplicaFetchSession`` (at most one per follower broker) and answers with its id.
  Later requests carry the next epoch and only the partitions whose fetch offset or leader
  epoch changed (``forgotten_topics``: the ones it stopped fetching).
* Only those partitions get a ``Read``. Each Read carries a ``Watch`` (this session and the
  partition's *generation* in it); the partition actor keeps it as long as the follower does
  not name the partition again (partition_fetch.py, ``_serve_watches``). When the partition
  has records the follower has not been sent, or a high watermark the follower was not told,
  it *notifies* the session with a ready ``FetchPartitionResponse``.
* A poll is answered when its explicit partitions have answered and something is new (bytes
  >= ``min_bytes``, an error, or an urgent notification: records, an error, a new log start
  offset), else it is parked until the first urgent notification or ``max_wait_ms``.
  Notifications that arrive while no poll is parked wait in ``_ready`` for the next one. So
  an idle poll is O(1) work on the leader: no partition actor sees it.
* An answer with nothing but a new high watermark (notified, or a named partition's own) is
  *held* (``notify``): it goes with the partition's next records, with a poll answered at its
  deadline, or with any answer once it has waited ``HW_HOLD_S``.
* A follower whose partitions do not change still counts as fetching them: the partition's
  ISR check (every ``replica.lag.time.max.ms / 2``) takes the session's last poll time as the
  follower's fetch time at the watched offset (``ReplicaFetchSession.last_poll_for``).

Generations make stale notifications harmless: a partition named again (or forgotten) gets a
new generation, and a notification of an older one is refused (the partition drops that
watch). Nothing the partition has counted as sent is ever dropped: answers that miss their
poll, or do not fit under ``max_bytes``, wait in ``_ready``. If a response is lost anyway (a
connection break), the follower's request times out and it opens a new session.

Threads: a session is used by the ClientSession serving the follower's polls, by partition
actors (notify) and by the ticker (a parked poll's deadline); one lock guards it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import pykka
from rillet.transport import protocol as P

from rillet.frozen import frozen

from . import partition as R
from .gather import _group
from .runtime import tell_inline

E = P.ErrorCode
Key = tuple[str, int]
MAX_EPOCH = (1 << 31) - 1
# How long a follower's new high watermark may wait for that partition's next records while
# the follower keeps fetching others (an idle follower gets it at its poll's deadline). What
# the follower does with it before then: its checkpoint, every
# replica.high.watermark.checkpoint.interval.ms (5 s by default).
HW_HOLD_S = 5.0


class Counters:
    """Monotonic counters shared by a broker's threads (BrokerCounters API)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


@frozen
class Watch:
    """Carried by a session's ``Read``: the partition notifies ``session`` while
    ``generation`` is the partition's current one in it."""

    session: ReplicaFetchSession
    generation: int


def _merge(old: P.FetchPartitionResponse | None, new: P.FetchPartitionResponse):
    """Two answers for one partition waiting for the same poll: records already counted as
    sent must stay; a later high watermark or an error wins."""
    if old is None or new.error_code != E.NONE or not old.records or new.records:
        return new
    if old.error_code != E.NONE:
        return old
    return replace(
        old,
        high_watermark=new.high_watermark,
        last_stable_offset=new.last_stable_offset,
        log_start_offset=new.log_start_offset,
    )


def _hw_only(r: P.FetchPartitionResponse) -> bool:
    return not r.records and r.error_code == E.NONE and r.diverging_epoch < 0


class ReplicaFetchSession:
    """One follower's session on this leader. See the module docstring."""

    def __init__(
        self,
        session_id: int,
        replica_id: int,
        counters: Counters,
        call_later: Callable[[float, Callable[[], None]], object],
    ) -> None:
        self.session_id = session_id
        self.replica_id = replica_id
        self._counters = counters
        self._call_later = call_later
        self._lock = threading.Lock()
        self.epoch = P.INITIAL_EPOCH  # of the last poll begun
        self.last_poll_ms = 0
        self.closed = False
        self._generation: dict[Key, int] = {}
        self._next_generation = 0
        self._ready: dict[Key, P.FetchPartitionResponse] = {}
        # answers with nothing but a new high watermark: held for the partition's next
        # records, until the oldest waited HW_HOLD_S, or a poll's deadline (see notify)
        self._held: dict[Key, P.FetchPartitionResponse] = {}
        self._held_since = 0.0  # monotonic s of the oldest held answer
        # the poll being answered (at most one: a follower waits for each answer)
        self._poll = 0
        self._send: Callable[[object], None] | None = None
        self._outstanding = 0
        self._results: dict[Key, P.FetchPartitionResponse] = {}
        self._news = False
        self._min_bytes = 1
        self._max_bytes = 1 << 30
        self._max_wait_ms = 0
        self._timer = None

    @property
    def parked(self) -> bool:
        """A poll is waiting for news or its deadline (racy read from any thread)."""
        return self._send is not None and self._outstanding == 0 and not self.closed

    # ---------------------------------------------------------------- the follower's polls

    def begin(
        self,
        epoch: int,
        changed: list[Key],
        forgotten: list[Key],
        respond: Callable[[object], None],
        now_ms: int,
        *,
        min_bytes: int,
        max_bytes: int,
        max_wait_ms: int,
    ) -> tuple[int, dict[Key, int]] | None:
        """Start a poll: (its id, the new generation of each changed partition), or None if
        ``epoch`` is not the session's next one."""
        with self._lock:
            if self.closed:
                return None
            if epoch != P.INITIAL_EPOCH:
                expected = self.epoch + 1 if self.epoch < MAX_EPOCH else 1
                if epoch != expected:
                    return None
            previous = self._take_response() if self._send is not None else None
            for key in forgotten:
                self._generation.pop(key, None)
                self._ready.pop(key, None)
                self._held.pop(key, None)
            generations = {}
            for key in changed:
                self._next_generation += 1
                generations[key] = self._generation[key] = self._next_generation
                self._ready.pop(key, None)  # the explicit answer supersedes it
                self._held.pop(key, None)
            self.epoch = epoch
            self.last_poll_ms = now_ms
            self._poll += 1
            self._send = respond
            self._outstanding = len(changed)
            self._results = {}
            self._news = False
            self._min_bytes = max(min_bytes, 1)
            self._max_bytes = max_bytes
            self._max_wait_ms = max_wait_ms
            poll = self._poll
            send = self._decide() if not changed else None
        if previous is not None:  # only if the follower gave up on it (then it is unused)
            previous()
        if send is not None:
            send()
        return poll, generations

    def immediate(self, poll: int, key: Key, generation: int, r: P.FetchPartitionResponse) -> None:
        """A changed partition's first answer."""
        with self._lock:
            if poll != self._poll or self._send is None:
                # that poll is answered: keep what the partition counts as sent
                if self._generation.get(key) == generation and not self.closed:
                    self._ready[key] = _merge(self._ready.get(key), r)
                return
            self._results[key] = r
            if r.error_code != E.NONE:
                self._news = True
            self._outstanding -= 1
            send = self._decide() if self._outstanding == 0 else None
        if send is not None:
            send()

    def notify(self, key: Key, generation: int, r: P.FetchPartitionResponse,
               urgent: bool = True) -> bool:
        """A watched partition has news for the follower. False: the session no longer
        watches it at that generation (the partition drops its watch).

        News that is not ``urgent`` (a new high watermark alone) answers no poll: it is held
        until the partition's next records (which carry the newer high watermark), goes with
        any answer once the oldest held one has waited ``HW_HOLD_S``, and with a poll
        answered at its deadline. As in Kafka, where a follower's delayed fetch completes on
        bytes, not on a high watermark; here a busy follower also gets no message per
        partition for a high watermark its next append brings anyway. An idle follower's
        high watermark trails the leader's by about ``replica.fetch.wait.max.ms``, a busy
        one's by at most ``HW_HOLD_S``; no produce waits for it (acks=all completes on the
        followers' fetch offsets)."""
        with self._lock:
            if self.closed or self._generation.get(key) != generation:
                return False
            self._counters.add("replica_fetch_notifications")
            parked = self._send is not None and self._outstanding == 0
            if not urgent and not (parked and key in self._results) and key not in self._ready:
                self._hold(key, r)
                return True
            held = self._held.pop(key, None)
            if held is not None:
                r = _merge(held, r)
            if parked:
                self._results[key] = _merge(self._results.get(key), r)
                send = self._take_response() if urgent else None
            else:
                self._ready[key] = _merge(self._ready.get(key), r)
                send = None
        if send is not None:
            send()
        return True

    def expire(self, poll: int) -> None:
        with self._lock:
            if poll != self._poll or self._send is None or self._outstanding:
                return
            send = self._take_response(deadline=True)
        send()

    def last_poll_for(self, key: Key, generation: int) -> int | None:
        """When the follower last polled with ``key`` at ``generation`` in its session (its
        fetch offset unchanged), or None if it no longer fetches it here."""
        with self._lock:
            if self.closed or self._generation.get(key) != generation:
                return None
            return self.last_poll_ms

    def close(self) -> None:
        """Replaced by a new session of the same follower: answer a parked poll, refuse
        every later notification."""
        with self._lock:
            self.closed = True
            self._ready.clear()
            self._held.clear()
            send = self._take_response() if self._send is not None else None
        if send is not None:
            send()

    # ------------------------------------------------------------------ under self._lock

    def _decide(self) -> Callable[[], None] | None:
        """All explicit answers are in: answer now, or park until news or the deadline."""
        if self._ready:
            for key, r in self._ready.items():
                self._results[key] = _merge(self._results.get(key), r)
            self._ready.clear()
            self._news = True
        if self._held and self._held_due():
            self._news = True  # they waited long enough: this poll takes them
        size = sum(len(r.records) for r in self._results.values())
        if self._news or size >= self._min_bytes or self._max_wait_ms <= 0:
            return self._take_response()
        poll = self._poll
        self._timer = self._call_later(self._max_wait_ms / 1000, lambda: self.expire(poll))
        return None

    def _hold(self, key: Key, r: P.FetchPartitionResponse) -> None:
        if not self._held:
            self._held_since = time.monotonic()
        self._held[key] = _merge(self._held.get(key), r)

    def _held_due(self) -> bool:
        return time.monotonic() - self._held_since >= HW_HOLD_S

    def _take_response(self, deadline: bool = False) -> Callable[[], None]:
        send, results = self._send, self._results
        self._send, self._results = None, {}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held and (deadline or self._held_due()):
            for key, r in self._held.items():
                results[key] = _merge(results.get(key), r)
            self._held = {}
        elif not deadline and self._max_wait_ms > 0:
            # explicit answers with nothing but a high watermark wait like notified ones
            for key in [k for k, r in results.items() if _hw_only(r)]:
                self._hold(key, results.pop(key))
        # Kafka's max_bytes: whole partitions until the cap, never nothing; what does not fit
        # waits for the next poll (its partition counts it as sent)
        kept: dict[Key, P.FetchPartitionResponse] = {}
        total = 0
        for key, r in results.items():
            size = len(r.records)
            if size and total and total + size > self._max_bytes:
                self._ready[key] = r
                continue
            total += size
            kept[key] = r
        response = P.FetchResponse(
            session_id=self.session_id,
            topics=_group(list(kept), kept, P.FetchTopicResponse),
        )
        return lambda: send(response)


class FetchSessions:
    """A broker's replica fetch sessions: at most one per follower broker (a new one
    replaces the old). Thread-safe."""

    def __init__(
        self,
        counters: Counters,
        call_later: Callable[[float, Callable[[], None]], object],
        rng: random.Random | None = None,
    ) -> None:
        self.counters = counters
        self._call_later = call_later
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._by_replica: dict[int, ReplicaFetchSession] = {}

    def open(self, replica_id: int) -> ReplicaFetchSession:
        with self._lock:
            old = self._by_replica.get(replica_id)
            session_id = self._rng.randrange(1, MAX_EPOCH)
            while old is not None and old.session_id == session_id:
                session_id = self._rng.randrange(1, MAX_EPOCH)
            session = ReplicaFetchSession(session_id, replica_id, self.counters, self._call_later)
            self._by_replica[replica_id] = session
        self.counters.add("replica_fetch_sessions_opened")
        if old is not None:
            old.close()
        return session

    def parked_polls(self) -> int:
        """Any thread: follower polls parked now, waiting for news or their deadline (a racy
        read, for the Fetch purgatory metric)."""
        with self._lock:
            sessions = list(self._by_replica.values())
        return sum(1 for s in sessions if s.parked)

    def get(self, session_id: int, replica_id: int) -> ReplicaFetchSession | None:
        with self._lock:
            session = self._by_replica.get(replica_id)
        return session if session is not None and session.session_id == session_id else None


def serve(
    sessions: FetchSessions,
    req: P.FetchRequest,
    respond: Callable[[object], None],
    replica: Callable[[str, int], tuple[int, object]],
    *,
    now_ms: int,
    max_wait_ms: int,
) -> None:
    """One follower poll of a session (``req.session_epoch != FINAL_EPOCH``); ``replica``
    is the ClientSession's lookup (error code, partition actor or None)."""
    counters = sessions.counters
    if req.replica_id < 0:
        respond(
            P.FetchResponse(error_code=E.INVALID_REQUEST)  # sessions are for followers only
        )
        return
    if req.session_epoch == P.INITIAL_EPOCH:
        if req.forgotten_topics:
            respond(P.FetchResponse(error_code=E.INVALID_REQUEST))
            return
        session = sessions.open(req.replica_id)
    else:
        session = sessions.get(req.session_id, req.replica_id)
        if session is None:
            counters.add("replica_fetch_session_errors")
            respond(P.FetchResponse(error_code=E.FETCH_SESSION_ID_NOT_FOUND))
            return
    changed = [(t.name, p.partition) for t in req.topics for p in t.partitions]
    forgotten = [(t.name, p) for t in req.forgotten_topics for p in t.partitions]
    begun = session.begin(
        req.session_epoch,
        changed,
        forgotten,
        respond,
        now_ms,
        min_bytes=req.min_bytes,
        max_bytes=req.max_bytes,
        max_wait_ms=max_wait_ms,
    )
    if begun is None:
        counters.add("replica_fetch_session_errors")
        respond(
            P.FetchResponse(session_id=session.session_id, error_code=E.INVALID_FETCH_SESSION_EPOCH)
        )
        return
    poll, generations = begun
    counters.add("replica_fetch_polls")
    for t in req.topics:
        for p in t.partitions:
            key = (t.name, p.partition)
            generation = generations[key]
            code, ref = replica(*key)
            if ref is None:
                session.immediate(
                    poll,
                    key,
                    generation,
                    P.FetchPartitionResponse(partition=p.partition, error_code=code),
                )
                continue
            counters.add("replica_fetch_partition_reads")
            read = R.Read(
                p.fetch_offset,
                max(1, min(p.partition_max_bytes, req.max_bytes)),
                reply=lambda r, key=key, g=generation: session.immediate(poll, key, g, r),
                on_data=None,
                replica_id=req.replica_id,
                current_leader_epoch=p.current_leader_epoch,
                replica_incarnation=req.replica_incarnation,
                last_fetched_epoch=p.last_fetched_epoch,
                watch=Watch(session, generation),
            )
            try:
                tell_inline(ref, read)  # read in this turn when the replica is idle
            except pykka.ActorDeadError:  # deleted or moved meanwhile
                read.reply(
                    P.FetchPartitionResponse(
                        partition=p.partition, error_code=E.NOT_LEADER_OR_FOLLOWER
                    )
                )
