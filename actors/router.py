"""The router: a ServerEndpoint's handler, running on the endpoint's I/O thread.

A broker has one router per listener (client, inter-broker); the sessions a router starts
know their listener, which is what decides whether inter-broker APIs are served.

It owns no state but the peer -> ClientSession map: each inbound message is told to the
session of its peer (started on first contact), so requests of one client are handled in
order and clients do not wait for each other. Sessions idle for longer than
``connections.max.idle.ms`` are stopped by ``expire_idle`` (called from the ticker).
The endpoint's ``Lease`` of each request travels with it to the session, which releases it
when the request is finished with (``queued.max.request.bytes``); a message that reaches no
session is released here.
"""

from __future__ import annotations

import threading
import time

import pykka
from loguru import logger

from .session import BrokerContext, ClientSession, Inbound, Listener


class Router:
    def __init__(self, ctx: BrokerContext, max_idle_ms: int, listener: Listener | None = None):
        self.ctx = ctx
        self.listener = listener or Listener("client", False, ctx.send)
        self.max_idle_s = max_idle_ms / 1000
        self._sessions: dict[bytes, pykka.ActorRef] = {}
        self._last_seen: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._log = logger.bind(broker=ctx.broker_id, actor="router", listener=self.listener.name)

    def handle(self, peer: bytes, frames: list[bytes], lease=None) -> None:
        """Endpoint I/O thread: pass the frames on, never block."""
        with self._lock:
            if self._closed:
                if lease is not None:
                    lease.release()
                return
            ref = self._sessions.get(peer)
            if ref is None:
                ref = ClientSession.start(self.ctx, peer, self.listener)
                self._sessions[peer] = ref
                self._log.debug("session started for {}", peer.hex())
            self._last_seen[peer] = time.monotonic()
        try:
            ref.tell(Inbound(frames, lease))
        except pykka.ActorDeadError:
            if lease is not None:
                lease.release()
            with self._lock:
                self._sessions.pop(peer, None)

    def expire_idle(self) -> None:
        cutoff = time.monotonic() - self.max_idle_s
        with self._lock:
            idle = [p for p, seen in self._last_seen.items() if seen < cutoff]
            refs = [self._sessions.pop(p) for p in idle if p in self._sessions]
            for p in idle:
                self._last_seen.pop(p, None)
        for ref in refs:
            ref.stop(block=False)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            refs = list(self._sessions.values())
            self._sessions.clear()
        for ref in refs:
            ref.stop(block=False)
