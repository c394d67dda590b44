"""The share-state coordinator as a partition leader sees it (KIP-932's *persister*).

A partition leader keeps the share-partition state of each share group in memory and
persists it through the share-state coordinator of ``(group, topic, partition)``: the leader
of ``__share_group_state`` partition ``partition_for(f"{group}:{topic}:{partition}", n)``
(actors/share_state.py). ``ShareStateClient`` is what it is given (tests inject a fake with
the same two methods):

* ``read(group_id, topic, partition, leader_epoch, answer)`` -- on becoming leader (with its
  leader epoch: a higher one fences the previous leader's writes from then on).
* ``write(request, answer)`` -- a ``P.WriteShareGroupStateRequest`` (one per share-partition
  for all the changes since the last one: group commit).

``answer(response)`` is called exactly ONCE, on any thread -- possibly before ``read`` /
``write`` returns (a request refused at once) -- with the coordinator's
``ReadShareGroupStateResponse`` / ``WriteShareGroupStateResponse``: pass an ``answer`` that
only hands the response on (an actor's ``tell``), never one that takes a lock the caller holds. The client retries what moves or loads, within
``deadline_ms`` (default 15 s): NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
COORDINATOR_NOT_AVAILABLE, no coordinator yet (the topic is created on first use), a timeout,
an unreachable broker, an ``ErrorResponse``. Past the deadline it answers the response type
with COORDINATOR_NOT_AVAILABLE. Every other answer -- NONE, FENCED_LEADER_EPOCH,
FENCED_STATE_EPOCH, INVALID_REQUEST -- is final and handed over as it is.

Retrying a write is safe: a delta written twice gives the same state, and a retried reset
(``replace`` with a new ``start_offset``) whose first attempt was applied is answered NONE
(coordinator/share/state.py). Thread-safe: the client keeps no shared state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import pykka
from loguru import logger
from rillet.transport import protocol as P

from .share_state_wire import coordinator_key, error_response

E = P.ErrorCode
DEADLINE_MS = 15_000
REQUEST_TIMEOUT_MS = 5_000
_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 0.5
RETRIABLE = frozenset({E.NOT_COORDINATOR, E.COORDINATOR_LOAD_IN_PROGRESS,
                       E.COORDINATOR_NOT_AVAILABLE, E.REQUEST_TIMED_OUT})
_RESPONSES = (P.ReadShareGroupStateResponse, P.WriteShareGroupStateResponse)


class ShareStateClient:
    """``find(key)``: FindCoordinator key_type 2 answered from this broker's metadata image
    (``share_state_wire.find_coordinator``; creates the topic when missing).
    ``address_of(broker_id)``: its inter-broker ``host:port`` or None. ``request(address,
    message, timeout_ms)``: a future (``add_done_callback``) of the answer, as
    ``ClientEndpoint.request``. ``schedule(delay_s, fn)``: run ``fn`` later (the ticker)."""

    def __init__(
        self,
        find: Callable[[str], P.FindCoordinatorResponse],
        address_of: Callable[[int], str | None],
        request: Callable[[str, object, int], Any],
        schedule: Callable[[float, Callable[[], None]], Any],
        deadline_ms: int = DEADLINE_MS,
        request_timeout_ms: int = REQUEST_TIMEOUT_MS,
    ) -> None:
        self._find = find
        self._address_of = address_of
        self._request = request
        self._schedule = schedule
        self.deadline_ms = deadline_ms
        self.request_timeout_ms = request_timeout_ms

    def read(self, group_id: str, topic: str, partition: int, leader_epoch: int,
             answer: Callable[[P.ReadShareGroupStateResponse], None]) -> None:
        """Load ``group_id``'s state of ``topic``-``partition`` (the caller leads it at
        ``leader_epoch``); ``answer(ReadShareGroupStateResponse)`` once, on any thread."""
        request = P.ReadShareGroupStateRequest(group_id=group_id, topic=topic,
                                               partition=partition, leader_epoch=leader_epoch)
        self._start(request, answer)

    def write(self, request: P.WriteShareGroupStateRequest,
              answer: Callable[[P.WriteShareGroupStateResponse], None]) -> None:
        """Persist ``request``; ``answer(WriteShareGroupStateResponse)`` once, on any thread,
        when it is durable (acks=all in ``__share_group_state``) or refused."""
        self._start(request, answer)

    # ------------------------------------------------------------------------ internals

    def _start(self, request: Any, answer: Callable[[Any], None]) -> None:
        deadline = time.monotonic() + self.deadline_ms / 1000
        self._attempt(request, answer, deadline, _FIRST_BACKOFF_S)

    def _attempt(self, request: Any, answer: Callable[[Any], None], deadline: float,
                 backoff: float) -> None:
        def retry(reason: str) -> None:
            left = deadline - time.monotonic()
            if left <= 0:
                answer(error_response(request, E.COORDINATOR_NOT_AVAILABLE,
                                      f"no share-state coordinator answered: {reason}"))
                return
            try:
                self._schedule(min(backoff, left), lambda: self._attempt(
                    request, answer, deadline, min(backoff * 2, _MAX_BACKOFF_S)))
            except Exception:  # noqa: BLE001 - the ticker is stopping (broker shutdown)
                answer(error_response(request, E.COORDINATOR_NOT_AVAILABLE, "shutting down"))

        key = coordinator_key(request.group_id, request.topic, request.partition)
        try:
            found = self._find(key)
        except Exception as e:  # noqa: BLE001 - the image is being swapped, the controller is gone
            retry(f"finding the coordinator failed: {e}")
            return
        if found.error_code != E.NONE:
            if found.error_code in RETRIABLE:
                retry(found.error_message or "no coordinator")
            else:
                answer(error_response(request, found.error_code, found.error_message))
            return
        address = self._address_of(found.node_id)
        if address is None:
            retry(f"no address of broker {found.node_id}")
            return
        timeout_ms = max(100, min(self.request_timeout_ms,
                                  int((deadline - time.monotonic()) * 1000)))

        def done(future: Any) -> None:
            try:
                response = future.result()
            except Exception as e:  # noqa: BLE001 - timed out / unreachable: retriable
                logger.debug("{} to broker {} failed: {}", request.API, found.node_id, e)
                retry(f"broker {found.node_id}: {e or type(e).__name__}")
                return
            if not isinstance(response, _RESPONSES):  # an ErrorResponse: not served there yet
                retry(f"broker {found.node_id}: {getattr(response, 'error_message', response)}")
            elif response.error_code in RETRIABLE:
                retry(f"broker {found.node_id}: {response.error_message or response.error_code}")
            else:
                answer(response)

        try:
            self._request(address, request, timeout_ms).add_done_callback(done)
        except Exception as e:  # noqa: BLE001 - the endpoint is closing
            retry(f"not sent: {e}")


def local_first(remote: Callable[[str, object, int], Any], local_address: Callable[[], str],
                local_coordinator: Callable[[], Any],
                schedule: Callable[[float, Callable[[], None]], Any],
                ) -> Callable[[str, object, int], Future]:
    """The ``request`` of a broker's ShareStateClient: a request for this broker's own
    inter-broker address is told to its share-state coordinator actor
    (``ShareStateRequest``) instead of going out and back in over the loopback socket (two
    codecs, the session, four thread hops); any other goes by ``remote``. On one broker
    every state write is local, on N brokers about one in N. The future fails with
    TimeoutError after ``timeout_ms``, as a remote request would (the client retries)."""
    from .share_state import ShareStateRequest

    def request(address: str, message: object, timeout_ms: int) -> Future:
        ref = local_coordinator()
        if ref is None or address != local_address():
            return remote(address, message, timeout_ms)
        future: Future = Future()

        def settle(fn: Callable[[], None]) -> None:
            try:
                fn()
            except InvalidStateError:  # answered and timed out at once: the first wins
                pass

        timer = schedule(timeout_ms / 1000, lambda: settle(lambda: future.set_exception(
            TimeoutError(f"{message.API} to the local share-state coordinator"))))

        def respond(response: object) -> None:
            timer.cancel()
            settle(lambda: future.set_result(response))

        try:
            ref.tell(ShareStateRequest(message, respond))
        except pykka.ActorDeadError as e:  # stopping: the client retries, then gives up
            timer.cancel()
            raise ConnectionError("the share-state coordinator is stopping") from e
        return future

    return request
