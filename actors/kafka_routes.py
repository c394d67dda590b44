"""The KAFKA listener's way to the partition actors: the ClientSession's own paths.

Produce, Fetch (with its long poll through the partition's parked waiters) and ListOffsets
are routed to PartitionReplica actors by ``ClientSession._produce``, ``_fetch`` and
``_list_offsets`` (actors/session.py). The Kafka handlers translate kio's request into the
native request, call those same methods and translate the native answer back, so the
routing (leadership checks, internal topics refused, metrics, read_committed) exists once.

``SessionRoutes`` is a ClientSession that is never started as an actor: it has no mailbox
and no peer; its methods only ``tell`` partition actors and call back ``respond`` from their
threads, so a listener worker may call them directly. One per request (four attributes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kio.schema.errors import ErrorCode

from .session import BrokerContext, ClientSession, Listener, SessionState


def _nowhere(_peer: bytes, _frames: list) -> None:  # pragma: no cover - never called
    raise RuntimeError("a Kafka request's answer goes back through its Call")


class SessionRoutes(ClientSession):
    """ClientSession's routing methods without the actor (see the module docstring)."""

    def __init__(self, ctx: BrokerContext) -> None:  # noqa: D107 - deliberately no actor
        self.ctx = ctx
        self.peer = b"kafka"
        self.listener = Listener("kafka", False, _nowhere)
        self.state = SessionState()

    def produce(self, req: Any, respond: Callable[[object], None],
                release: Callable[[], None]) -> None:
        self._produce(req, respond, release)

    def fetch(self, req: Any, respond: Callable[[object], None]) -> None:
        self._fetch(req, respond)

    def list_offsets(self, req: Any, respond: Callable[[object], None]) -> None:
        self._list_offsets(req, respond)


def kafka_error(code: int) -> ErrorCode:
    """A rillet wire error code as kio's ErrorCode (the numbers are Kafka's)."""
    try:
        return ErrorCode(int(code))
    except ValueError:
        return ErrorCode.unknown_server_error
