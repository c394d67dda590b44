"""The router: a ServerEndpoint's handler, running on the endpoint's I/O thread.

A broker has one router per listener (client, inter-broker); the sessions a router starts
know their listener, which is what decides whether inter-broker APIs are served.

It owns no state but the peer -> ClientSession map: each inbound message is told to the
session of its peer (started on first contact), so requests of one client are handled in
order and clients do not wait for each other. A session is released (its actor stopped,
which also ends its parked fetches and their leases; see ``ClientSession.on_stop``) when:

* the endpoint reports that its peer's connection closed (``disconnected``, from the socket
  monitor: transport/connections.py), or
* it has been idle for ``connections.max.idle.ms`` (``expire_idle``, from the ticker): no
  request arrived for that long and none is in flight (a parked fetch is not idleness).

An idle session's request is handled on the endpoint's I/O thread itself (a hosted turn,
actors/runtime.py ``claim``): decoded, its partitions appended inline, answered into the
endpoint's outbox, which the I/O thread sends once it has read what is ready; a session with
a turn in progress or queued gets the request in its mailbox, and the ``default`` lane runs
it, in order. Only on the client listener: the inter-broker listener's I/O thread also reads
Raft messages and heartbeats for the controller lane, and a follower catching up (reads of a
megabyte per partition over thousands of partitions) must not hold them up, so its sessions
stay on the lane. A request crossed two thread hand-offs on the broker before (I/O thread ->
session -> I/O thread), each a wake-up that costs more CPU on this kind of machine than the
request's own work (docs/runtime.md, "Hosted sessions"). Session handlers never block (every
request is a hand-off to another actor or an inline turn that writes to or reads from the
page cache; an older segment's read goes to the io lane), so the I/O thread does not wait on
them.

Every ``tell``, claim and ``stop`` of a session happens under the router's lock, so a
session's requests are all in its mailbox (or its claimed turn) before its stop: they are
handled (and answered, into the void if the peer is gone) before the actor stops, and a
request arriving after the release starts a new session. The endpoint's ``Lease`` of each request travels with it to the
session, which releases it when the request is finished with (``queued.max.request.bytes``);
a message that reaches no session is released here.
"""

from __future__ import annotations

import threading
import time

import pykka
from loguru import logger

from . import runtime
from .controller import BROKER_IDENTITY_PREFIX
from .session import BrokerContext, ClientSession, Inbound, Listener, SessionState


class PeerControlSession(ClientSession):
    """The session of another broker's control connection on the inter-broker listener
    (its ``peers`` endpoint: Raft, broker heartbeats, metadata fetches, forwarded admin
    requests). It runs on the ``controller`` lane, as the Controller does: a Raft message
    must not wait for a turn behind the client sessions of the ``default`` lane, which a
    spread produce over thousands of partitions keeps busy (the quorum then lost its leader
    every few seconds). Every request it handles is a hand-off (a ``tell``), never a wait."""

    lane = "controller"
    host_ok = False  # on its lane, never on an I/O thread


def is_peer_control(peer: bytes) -> bool:
    """A broker's control connection: ``rillet-broker:<id>:`` then random bytes (its replica
    fetchers connect as ``rillet-broker:<id>-fetch:``, bulk data, on the default lane)."""
    if not peer.startswith(BROKER_IDENTITY_PREFIX):
        return False
    head, sep, _ = peer[len(BROKER_IDENTITY_PREFIX):].partition(b":")
    return bool(sep) and head.isdigit()


class Router:
    def __init__(self, ctx: BrokerContext, max_idle_ms: int, listener: Listener | None = None):
        self.ctx = ctx
        self.listener = listener or Listener("client", False, ctx.send)
        self.max_idle_s = max_idle_ms / 1000
        # hosted turns (module docstring): not on the inter-broker listener, whose I/O thread
        # also reads Raft and heartbeats; a follower's catch-up reads must not hold them up
        self.hosting = not self.listener.internal
        self._sessions: dict[bytes, tuple[pykka.ActorRef, SessionState]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0  # sessions started so far
        self.released_disconnected = 0  # released because the peer's connection closed
        self.released_idle = 0  # released by connections.max.idle.ms
        self._log = logger.bind(broker=ctx.broker_id, actor="router", listener=self.listener.name)

    def handle(self, peer: bytes, frames: list[bytes], lease=None) -> None:
        """Endpoint I/O thread: pass the frames on, never block."""
        with self._lock:
            if self._closed:
                if lease is not None:
                    lease.release()
                return
            entry = self._sessions.get(peer)
            if entry is None:
                state = SessionState()
                kind = (PeerControlSession if self.listener.internal and is_peer_control(peer)
                        else ClientSession)
                entry = (kind.start(self.ctx, peer, self.listener, state), state)
                self._sessions[peer] = entry
                self.opened += 1
            ref, state = entry
            state.last_seen = time.monotonic()
            # idle: its turn runs here, below, outside the lock (client listener only)
            inbox = runtime.claim(ref) if self.hosting else None
            if inbox is None:
                try:
                    ref.tell(Inbound(frames, lease))
                except pykka.ActorDeadError:  # it failed on its own (on_failure ran)
                    if lease is not None:
                        lease.release()
                    del self._sessions[peer]
                return
        runtime.run_claimed(inbox, Inbound(frames, lease))

    def disconnected(self, peer: bytes) -> None:
        """Endpoint I/O thread: ``peer``'s connection closed; release its session."""
        with self._lock:
            entry = self._sessions.pop(peer, None)
            if entry is None:
                return
            self.released_disconnected += 1
            _stop(entry[0])
        self._log.debug("session of {} released: disconnected", peer.hex())

    def expire_idle(self) -> None:
        """Ticker thread: release the sessions idle for longer than connections.max.idle.ms."""
        cutoff = time.monotonic() - self.max_idle_s
        with self._lock:
            idle = [
                p
                for p, (_, state) in self._sessions.items()
                if state.last_seen < cutoff and state.in_flight == 0
            ]
            for p in idle:
                _stop(self._sessions.pop(p)[0])
            self.released_idle += len(idle)
        if idle:
            self._log.debug("{} idle sessions released", len(idle))

    @property
    def session_count(self) -> int:
        """Open sessions (racy read from any thread)."""
        return len(self._sessions)

    def session_states(self) -> list[tuple[pykka.ActorRef, SessionState]]:
        """Any thread: the open sessions and their states (a copy; metrics read it)."""
        with self._lock:
            return list(self._sessions.values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            refs = [ref for ref, _ in self._sessions.values()]
            self._sessions.clear()
        for ref in refs:
            _stop(ref)


def _stop(ref: pykka.ActorRef) -> None:
    try:
        ref.stop(block=False)
    except pykka.ActorDeadError:
        pass
