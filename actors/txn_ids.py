"""Producer ids for the transaction coordinator, kept ahead of need.

The core's ``allocate()`` is synchronous (coordinator/transactions/coordinator.py), the ids
come from the active controller (InitProducerId without a transactional id: the controller
commits the next id to the metadata log, so no id is handed out twice, also across
controller failovers). The pool asks for ids before it runs out; an ``allocate()`` on an
empty pool raises :class:`NoProducerId` (the core calls ``allocate`` before it changes
anything, so the operation can simply wait and run again). Ids never used are lost when the
broker stops; the id space (int64) does not mind.

Not an actor: owned by the coordinator actor, used on its thread. ``ask()`` sends one request
to the controller without waiting (False: it could not), and the owner hands each answer to
:meth:`ProducerIdPool.on_answer` on its own thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from rillet.transport import protocol as P

LOW, TARGET = 4, 8  # ask when fewer than LOW ids are left (or asked for), up to TARGET
ANSWER_TIMEOUT_MS = 20_000  # asks unanswered this long are forgotten (asked again)


class NoProducerId(Exception):
    """The pool is empty: the operation waits for ids (nothing was changed)."""


class ProducerIdPool:
    def __init__(self, ask: Callable[[], bool], clock: Callable[[], int]) -> None:
        self._ask = ask
        self._clock = clock
        self.ids: deque[int] = deque()
        self.in_flight = 0
        self._asked_at = 0

    def allocate(self) -> int:
        """The next id (``NoProducerId`` if none is at hand: asked for already)."""
        if not self.ids:
            self.refill(force=True)
            raise NoProducerId
        pid = self.ids.popleft()
        self.refill()
        return pid

    def refill(self, force: bool = False) -> None:
        """Ask for ids while the pool and the asks in flight are below the target (only when
        below ``LOW``, unless ``force``)."""
        if self.in_flight and self._clock() - self._asked_at > ANSWER_TIMEOUT_MS:
            self.in_flight = 0  # the answers were lost (a controller went away)
        if not force and len(self.ids) + self.in_flight >= LOW:
            return
        while len(self.ids) + self.in_flight < TARGET:
            if not self._ask():
                return
            self.in_flight += 1
            self._asked_at = self._clock()

    def on_answer(self, response: object) -> bool:
        """The controller's answer; True if it brought an id."""
        self.in_flight = max(0, self.in_flight - 1)
        if (
            isinstance(response, P.InitProducerIdResponse)
            and response.error_code == P.ErrorCode.NONE
            and response.producer_id >= 0
        ):
            self.ids.append(response.producer_id)
            return True
        return False
