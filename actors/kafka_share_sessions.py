"""Share sessions (KIP-932) of the KAFKA listener: which partitions a share consumer fetches
from this broker, and the session epoch that orders its ShareFetch / ShareAcknowledge.

A Kafka share consumer (librdkafka's, the Java client's) keeps one share session per
(group, member) with each partition leader. Its first ShareFetch has epoch 0 and names the
partitions it fetches; each later request carries the next epoch (1, 2, ... wrapping to 1
after 2**31-1) and only the partitions it adds (``topics``) or drops
(``forgotten_topics_data``); epoch -1 closes the session. Rillet's native share consumer
has no session (each native ShareFetch lists its partitions), so the session lives here, at
the edge: each Kafka ShareFetch becomes a native one naming every partition of the session.

The rules are Kafka's (SharePartitionManager.newContext / acknowledgeSessionUpdate):

===============================  ==========================================================
ShareFetch epoch 0               acknowledgements present: INVALID_REQUEST; else a new
                                 session replaces any old one (SHARE_SESSION_LIMIT_REACHED
                                 when ``MAX_SESSIONS`` live sessions are not idle)
ShareFetch epoch -1              no session: SHARE_SESSION_NOT_FOUND; else acknowledge
                                 only (nothing fetched) and close the session
ShareFetch epoch n > 0           no session: SHARE_SESSION_NOT_FOUND; n not the session's
                                 epoch: INVALID_SHARE_SESSION_EPOCH; else add / forget
                                 partitions and expect n + 1 next
ShareAcknowledge epoch 0         INVALID_SHARE_SESSION_EPOCH
ShareAcknowledge epoch -1        no session: SHARE_SESSION_NOT_FOUND; else close it
ShareAcknowledge epoch n > 0     as ShareFetch n > 0, partitions unchanged
===============================  ==========================================================

A session unused for ``IDLE_MS`` (longer than any share-group session timeout rillet
accepts) is forgotten; its member's next request gets SHARE_SESSION_NOT_FOUND and the client
opens a new session (epoch 0), as after a broker restart. Thread-safe (handlers of several
connections run on the listener's worker pool); the clock is an argument.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kio.schema.errors import ErrorCode as E

from rillet.frozen import frozen

INITIAL_EPOCH, FINAL_EPOCH = 0, -1
MAX_EPOCH = 2**31 - 1
MAX_SESSIONS = 10_000  # live share sessions per broker (Kafka: 1000 per broker by default)
IDLE_MS = 600_000  # a session not used for this long is forgotten

Key = tuple[str, str]  # (group id, member id)
Partition = tuple[Any, int]  # (topic id as the client names it, partition)


@dataclass(slots=True)
class ShareSession:
    """One (group, member)'s session: its partitions in the order they were added, and the
    epoch its next request must carry."""

    partitions: dict[Partition, None] = field(default_factory=dict)
    epoch: int = 1
    last_used_ms: int = 0


@frozen
class Context:
    """What a request may do: ``error`` (0: go on), the session's ``partitions`` to fetch
    from, and ``final`` (acknowledge only, the session is closed; ``closed``: its
    partitions, whose records the member still holds are released)."""

    error: E = E.none
    message: str | None = None
    partitions: tuple[Partition, ...] = ()
    final: bool = False
    closed: tuple[Partition, ...] = ()  # final: the closed session's partitions


def next_epoch(epoch: int) -> int:
    return 1 if epoch >= MAX_EPOCH else epoch + 1


class ShareSessions:
    """The share sessions of one broker's KAFKA listener (see the module docstring)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS, idle_ms: int = IDLE_MS) -> None:
        self.max_sessions = max_sessions
        self.idle_ms = idle_ms
        self._sessions: dict[Key, ShareSession] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def fetch(self, key: Key, epoch: int, add: Iterable[Partition],
              forget: Iterable[Partition], acknowledging: bool, now_ms: int) -> Context:
        """The context of a ShareFetch of ``key`` at ``epoch`` (see the table above)."""
        add, forget = list(add), list(forget)
        with self._lock:
            if epoch == INITIAL_EPOCH:
                if acknowledging:
                    return Context(E.invalid_request, "acknowledgements in the ShareFetch "
                                   "that opens a share session (epoch 0)")
                self._sessions.pop(key, None)
                if len(self._sessions) >= self.max_sessions:
                    self._evict(now_ms)
                    if len(self._sessions) >= self.max_sessions:
                        return Context(E.share_session_limit_reached,
                                       f"{len(self._sessions)} share sessions are open here")
                session = ShareSession(dict.fromkeys(p for p in add if p not in forget),
                                       1, now_ms)
                self._sessions[key] = session
                return Context(partitions=tuple(session.partitions))
            session, refused = self._current(key, epoch, now_ms)
            if refused is not None:
                return refused
            if epoch == FINAL_EPOCH:
                del self._sessions[key]
                return Context(partitions=tuple(dict.fromkeys(add)), final=True,
                               closed=tuple(session.partitions))
            for p in forget:
                session.partitions.pop(p, None)
            for p in add:
                session.partitions.setdefault(p, None)
            session.epoch = next_epoch(epoch)
            session.last_used_ms = now_ms
            return Context(partitions=tuple(session.partitions))

    def acknowledge(self, key: Key, epoch: int, now_ms: int) -> Context:
        """The context of a ShareAcknowledge of ``key`` at ``epoch``."""
        with self._lock:
            if epoch == INITIAL_EPOCH:
                return Context(E.invalid_share_session_epoch,
                               "ShareAcknowledge cannot open a share session (epoch 0)")
            session, refused = self._current(key, epoch, now_ms)
            if refused is not None:
                return refused
            if epoch == FINAL_EPOCH:
                del self._sessions[key]
                return Context(final=True, closed=tuple(session.partitions))
            session.epoch = next_epoch(epoch)
            session.last_used_ms = now_ms
            return Context(partitions=tuple(session.partitions))

    def _current(self, key: Key, epoch: int, now_ms: int
                 ) -> tuple[ShareSession | None, Context | None]:
        session = self._sessions.get(key)
        if session is not None and now_ms - session.last_used_ms > self.idle_ms:
            del self._sessions[key]
            session = None
        if session is None:
            return None, Context(E.share_session_not_found,
                                 f"no share session of member {key[1]!r} of group {key[0]!r}")
        if epoch != FINAL_EPOCH and epoch != session.epoch:
            return None, Context(E.invalid_share_session_epoch,
                                 f"share session epoch {epoch}, expected {session.epoch}")
        return session, None

    def _evict(self, now_ms: int) -> None:
        idle = [k for k, s in self._sessions.items() if now_ms - s.last_used_ms > self.idle_ms]
        for k in idle:
            del self._sessions[k]


_registry: dict[int, tuple[Any, ShareSessions]] = {}
_registry_lock = threading.Lock()


def of(broker: Any) -> ShareSessions:
    """The share sessions of ``broker`` (a BrokerContext; one per broker process)."""
    with _registry_lock:
        entry = _registry.get(id(broker))
        if entry is None or entry[0] is not broker:
            entry = (broker, ShareSessions())
            _registry[id(broker)] = entry
        return entry[1]
