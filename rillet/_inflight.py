"""The producer's Produce requests in flight, and the two deadlines that bound every one.

Kafka's producer promises that every send completes within ``delivery.timeout.ms``,
acknowledged or failed, and that a request unanswered for ``request.timeout.ms`` is given up
(then retried or failed). The network layer fails a request at its timeout too, but the
sender must not depend on it: a reply lost anywhere (a broker that never answers, a future
that is never completed) would otherwise leave the request's batches in flight for good and
``flush()``/``close()`` waiting forever. So the sender records each request here and asks,
every round, for:

* ``overdue(now_ms)``: the requests unanswered ``request.timeout.ms`` after they were sent.
  They are abandoned: they no longer count against ``max.in.flight.requests.per.connection``
  and their batches are retried (or failed) as after a timeout; a reply that still arrives
  later is ignored (``answered`` returns False).
* ``expiring(now_ms)``: the requests holding a batch created more than
  ``delivery.timeout.ms`` ago; the sender fails those batches at once (their request stays
  in flight, and whatever it answers later is ignored for them).

Owned by the sender thread (not thread-safe); times are ``time.monotonic()`` milliseconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

from rillet._accumulator import ProducerBatch


@dataclass(slots=True, eq=False)
class ProduceInFlight:
    """One Produce request sent and not yet answered nor abandoned."""

    address: str
    """The broker it went to (``host:port``)."""
    batches: list[ProducerBatch]
    """The batches it carries, in the order of the request."""
    future: Future
    """The network's future of the response."""
    deadline_ms: float
    """When it is abandoned if unanswered: sent + ``request.timeout.ms``."""
    oldest_ms: float
    """Creation time of its oldest batch not yet completed (the next to reach
    ``delivery.timeout.ms``; the sender moves it on as it fails expired batches)."""


class InFlightRequests:
    """The sender's requests in flight, in the order sent (= deadline order), and how many
    each broker has."""

    def __init__(self, request_timeout_ms: float, delivery_timeout_ms: float) -> None:
        self.request_timeout_ms = request_timeout_ms
        self.delivery_timeout_ms = delivery_timeout_ms
        self._requests: dict[ProduceInFlight, None] = {}  # insertion order = deadline order
        self._per_broker: dict[str, int] = defaultdict(int)
        self.abandoned = 0  # requests given up at their deadline (a lost reply)

    def add(self, address: str, batches: list[ProducerBatch], future: Future,
            now_ms: float) -> ProduceInFlight:
        request = ProduceInFlight(
            address=address, batches=batches, future=future,
            deadline_ms=now_ms + self.request_timeout_ms,
            oldest_ms=min((b.created_ms for b in batches), default=now_ms))
        self._requests[request] = None
        self._per_broker[address] += 1
        return request

    def answered(self, request: ProduceInFlight) -> bool:
        """The network completed ``request``: True if it was still in flight (its reply
        counts), False if it had been abandoned already (ignore the reply)."""
        if request not in self._requests:
            return False
        del self._requests[request]
        self._per_broker[request.address] -= 1
        return True

    def overdue(self, now_ms: float) -> list[ProduceInFlight]:
        """Remove and return the requests whose deadline has passed unanswered (oldest
        first). One whose future is done is not overdue: its reply waits for the sender."""
        late = []
        for request in self._requests:
            if request.deadline_ms > now_ms:
                break
            if not request.future.done():
                late.append(request)
        for request in late:
            del self._requests[request]
            self._per_broker[request.address] -= 1
        self.abandoned += len(late)
        return late

    def expiring(self, now_ms: float) -> Iterator[ProduceInFlight]:
        """The requests in flight holding a batch past ``delivery.timeout.ms`` (not those
        answered already: the reply decides)."""
        cutoff = now_ms - self.delivery_timeout_ms
        for request in self._requests:
            if request.oldest_ms <= cutoff and not request.future.done():
                yield request

    def next_deadline_ms(self) -> float | None:
        """When ``overdue`` or ``expiring`` next has something, or None if nothing is in
        flight (a request with only expired batches left counts by its deadline alone)."""
        if not self._requests:
            return None
        first = next(iter(self._requests)).deadline_ms
        oldest = min(r.oldest_ms for r in self._requests) + self.delivery_timeout_ms
        return min(first, oldest)

    def to(self, address: str) -> int:
        """How many requests to ``address`` are in flight."""
        return self._per_broker.get(address, 0)

    def __len__(self) -> int:
        return len(self._requests)
