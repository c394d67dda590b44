"""Incremental fetch sessions (KIP-227) for consumers on the KAFKA listener: a pure core.

A consumer that fetches many partitions names every one of them, with its offset, in every
Fetch, and the broker answers every one of them, data or not. A fetch session lets both
sides say only what changed:

* ``session_epoch`` -1 (FINAL): a full fetch without a session (closes ``session_id``'s
  session if one is named). librdkafka always fetches this way.
* ``session_epoch`` 0 (INITIAL): a full fetch that asks for a session (closing the one named
  by ``session_id``, if any). The answer carries the new session's id, or 0 when no slot is
  free (the client goes on with full fetches).
* ``session_epoch`` n > 0 with the session's id: an incremental fetch. The request names only
  partitions that are new or whose fetch offset / max bytes changed, and lists the ones to
  forget; the broker fetches every partition of the session and answers only those with
  records, an error, or a changed high watermark, last stable offset or log start offset.
  An unknown session id: FETCH_SESSION_ID_NOT_FOUND; an epoch other than the session's next:
  INVALID_FETCH_SESSION_EPOCH. Both make the client open a new session (epoch 0).

The cache holds at most ``max.incremental.fetch.session.cache.slots`` sessions (Kafka's
default 1000). When it is full, a new session takes the slot of the least recently used
session idle for ``EVICTION_MS`` (Kafka's 120 s), else of the session with the fewest
partitions if the new one has more (Kafka's rule: a bigger session saves more), else it gets
none. An evicted session's next incremental fetch gets FETCH_SESSION_ID_NOT_FOUND.

Transitions of a session (the only ones): created by an INITIAL fetch -> each incremental
fetch at the expected epoch advances the epoch (MAX_EPOCH wraps to 1) -> removed by a FINAL
or INITIAL fetch naming it, or evicted.

Pure: no clock (``now_ms`` is an argument), no randomness (``new_id`` is the caller's),
no locks (the caller serialises calls). Keys are (topic name, partition).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rillet.frozen import frozen

INITIAL_EPOCH = 0
FINAL_EPOCH = -1
MAX_EPOCH = (1 << 31) - 1
EVICTION_MS = 120_000  # Kafka's min.incremental.fetch.session.eviction.ms (internal)
DEFAULT_SLOTS = 1000  # max.incremental.fetch.session.cache.slots

NONE = 0
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71

Key = tuple[str, int]


@dataclass(slots=True)
class CachedPartition:
    """What the session remembers of one partition: the client's last fetch parameters and
    what it was last told (-2: nothing yet, so the first answer is always sent)."""

    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1
    high_watermark: int = -2
    last_stable_offset: int = -2
    log_start_offset: int = -2
    topic_id: object = None  # the topic as the client names it from Fetch v13 (opaque here)


@frozen
class PartitionAnswer:
    """One partition's fetch result, as far as the session compares it."""

    has_records: bool
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int


@dataclass(slots=True)
class FetchSession:
    """One consumer's session. ``epoch`` is the NEXT expected incremental epoch."""

    session_id: int
    epoch: int
    partitions: OrderedDict[Key, CachedPartition]
    created_ms: int
    last_used_ms: int

    def must_answer(self, key: Key, answer: PartitionAnswer, *, full: bool) -> bool:
        """Whether ``key``'s answer goes into the response (always for a full fetch, and for
        a partition the request named that the session does not hold: an unknown topic's
        error), and remember what the client is told. A partition answered with records
        moves to the end of the session, so a fetch capped by ``max_bytes`` reaches the
        others next time (Kafka's rotation)."""
        cached = self.partitions.get(key)
        if cached is None:
            return True
        send = full or answer.has_records or answer.error_code != NONE
        if answer.has_records:
            self.partitions.move_to_end(key)
        if cached.high_watermark != answer.high_watermark:
            cached.high_watermark = answer.high_watermark
            send = True
        if cached.last_stable_offset != answer.last_stable_offset:
            cached.last_stable_offset = answer.last_stable_offset
            send = True
        if cached.log_start_offset != answer.log_start_offset:
            cached.log_start_offset = answer.log_start_offset
            send = True
        return send


@frozen
class FetchContext:
    """What one Fetch request is, once the cache has seen it.

    ``error``: answer the request with this top-level error and nothing else. Otherwise fetch
    ``partitions`` (key -> CachedPartition, in session order); ``full``: answer every one of
    them, else only those ``session.must_answer`` says; ``session_id``: the id the answer
    carries (0: no session)."""

    error: int = NONE
    session_id: int = 0
    full: bool = True
    partitions: dict[Key, CachedPartition] = field(default_factory=dict)
    session: FetchSession | None = None


class FetchSessionCache:
    """The broker's consumer fetch sessions, by id. See the module docstring."""

    def __init__(self, max_slots: int = DEFAULT_SLOTS, eviction_ms: int = EVICTION_MS) -> None:
        if max_slots < 0:
            raise ValueError(f"max.incremental.fetch.session.cache.slots={max_slots} must be >= 0")
        self.max_slots = max_slots
        self.eviction_ms = eviction_ms
        self._sessions: OrderedDict[int, FetchSession] = OrderedDict()  # least recently used first
        self.evictions = 0
        self.created = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: int) -> FetchSession | None:
        return self._sessions.get(session_id)

    def new_context(
        self,
        session_id: int,
        epoch: int,
        requested: Iterable[tuple[Key, CachedPartition]],
        forgotten: Iterable[Key],
        now_ms: int,
        new_id: Callable[[], int],
    ) -> FetchContext:
        """Classify one Fetch request and update the cache (see the module docstring).
        ``new_id()`` proposes a session id (positive); one already in use is asked again."""
        requested = list(requested)
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id:
                self._sessions.pop(session_id, None)
            parts = OrderedDict(requested)
            if epoch == FINAL_EPOCH:
                return FetchContext(full=True, partitions=parts)
            session = self._create(parts, now_ms, new_id)
            if session is None:
                return FetchContext(full=True, partitions=parts)
            return FetchContext(full=True, session_id=session.session_id,
                                partitions=session.partitions, session=session)
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            return FetchContext(error=FETCH_SESSION_ID_NOT_FOUND)
        if epoch != session.epoch:
            return FetchContext(error=INVALID_FETCH_SESSION_EPOCH, session_id=session_id)
        for key in forgotten:
            session.partitions.pop(key, None)
        for key, params in requested:
            cached = session.partitions.get(key)
            if cached is None:
                session.partitions[key] = params
            else:
                cached.fetch_offset = params.fetch_offset
                cached.partition_max_bytes = params.partition_max_bytes
                cached.current_leader_epoch = params.current_leader_epoch
                cached.topic_id = params.topic_id
        session.epoch = 1 if session.epoch >= MAX_EPOCH else session.epoch + 1
        session.last_used_ms = now_ms
        self._sessions.move_to_end(session_id)
        return FetchContext(full=False, session_id=session_id,
                            partitions=dict(session.partitions), session=session)

    def _create(self, parts: OrderedDict[Key, CachedPartition], now_ms: int,
                new_id: Callable[[], int]) -> FetchSession | None:
        if self.max_slots == 0:
            return None
        if len(self._sessions) >= self.max_slots and not self._evict_for(len(parts), now_ms):
            return None
        sid = new_id()
        while sid <= 0 or sid in self._sessions:
            sid = new_id()
        session = FetchSession(sid, 1, parts, now_ms, now_ms)
        self._sessions[sid] = session
        self.created += 1
        return session

    def _evict_for(self, size: int, now_ms: int) -> bool:
        oldest_id, oldest = next(iter(self._sessions.items()))
        if now_ms - oldest.last_used_ms >= self.eviction_ms:
            victim = oldest_id
        else:
            victim_id, victim_session = min(self._sessions.items(),
                                            key=lambda kv: (len(kv[1].partitions), kv[1].last_used_ms))
            if len(victim_session.partitions) >= size:
                return False
            victim = victim_id
        del self._sessions[victim]
        self.evictions += 1
        return True
