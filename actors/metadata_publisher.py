"""MetadataPublisher: applies new metadata images to the broker off the controller's thread.

Kafka's MetadataLoader hands each new image to its publishers (ReplicaManager, ...) on an
event queue of its own, not on the Raft client's thread. Here the Controller (Raft) runs on
the "controller" lane, and publishing an image makes the hosted partition actors match it:
creating a 10,000-partition topic starts 10,000 partition actors on each broker, seconds of
work. Done on the controller's thread it stopped Raft for that long: the quorum missed its
election timeout (1 s), changed leader every few seconds and a topic creation was retried
and answered "already exists" (issue #12).

``offer(old, new)`` queues one publication and returns; one thread publishes them in order
(never coalesced: every change of ISR or leader is seen, as before). ``after(fn)`` runs
``fn`` once everything offered before it is published: the controller answers a proposal
(CreateTopics, ...) only then, so the active controller's broker still hosts a new topic's
partition actors before anyone hears "created". A failing publication is logged, never
fatal; the next one diffs from the image that failed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from loguru import logger

Publish = Callable[[object, object], None]


class MetadataPublisher:
    def __init__(self, publish: Publish, name: str = "rillet-metadata-publisher") -> None:
        self._publish = publish
        self._queue: deque[tuple[object, object, Callable[[], None] | None]] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = False
        self.published = 0  # images published (tests)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def offer(self, old: object, new: object) -> None:
        """Any thread: publish ``new`` (diffed from ``old``) after everything offered before."""
        self._put((old, new, None))

    def after(self, fn: Callable[[], None]) -> None:
        """Any thread: run ``fn`` on the publisher's thread once everything offered so far
        is published (at once if the queue is empty and idle: still on the publisher's
        thread, so it never runs inside the caller)."""
        self._put((None, None, fn))

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def stop(self, timeout_s: float = 30.0) -> None:
        """Publish what is queued (the caller has stopped offering), then end the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def _put(self, item: tuple) -> None:
        with self._cond:
            self._queue.append(item)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if not self._queue:
                    return  # stopped and drained
                old, new, fn = self._queue.popleft()
                self._busy = True
            try:
                if fn is not None:
                    fn()
                elif old is not new:
                    self._publish(old, new)
                    self.published += 1
            except Exception:  # noqa: BLE001 - one bad image must not stop publishing
                logger.exception("metadata publication failed")
            finally:
                with self._cond:
                    self._busy = False
