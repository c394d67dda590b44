"""Many consumer-group members in one process, each a real ``Consumer`` (own connections, own
heartbeat thread) polled by its own thread; used by tests/integration/test_groups_latency.py
and bench/group_rebalance_bench.py.

``holdings()`` is what each member held after its last ``poll()`` (its ``assignment()``), so
"every member holds its target" is judged from the members' side, not the coordinator's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rillet.consumer import Consumer
from rillet.records import TopicPartition


class Members:
    """Not thread-safe to drive; the member threads only write their own slots."""

    def __init__(self, bootstrap: str, group: str, topic: str, **config: object) -> None:
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.config = config
        self._held: dict[str, frozenset[TopicPartition]] = {}
        self._stop: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.errors: list[BaseException] = []

    def join(self, name: str) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                             "client.id": name, "enable.auto.commit": False,
                             "auto.offset.reset": "earliest", **self.config})
        consumer.subscribe([self.topic])
        stop = threading.Event()
        self._stop[name] = stop
        self._held[name] = frozenset()
        thread = threading.Thread(target=self._run, args=(name, consumer, stop),
                                  name=f"member-{name}", daemon=True)
        self._threads[name] = thread
        thread.start()

    def _run(self, name: str, consumer: Consumer, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                consumer.poll(20)
                self._held[name] = frozenset(consumer.assignment())
        except BaseException as exc:  # noqa: BLE001 - reported by check()
            self.errors.append(exc)
        finally:
            consumer.close()
            self._held.pop(name, None)

    def leave(self, name: str, timeout_s: float = 10.0) -> None:
        """close() the member (it revokes, then leaves the group); waits for its thread."""
        self._stop[name].set()
        self._threads.pop(name).join(timeout_s)

    def holdings(self) -> dict[str, frozenset[TopicPartition]]:
        return dict(self._held)

    def balanced(self, partitions: int) -> bool:
        """Every partition held by exactly one member and every member holding its fair
        share (the uniform assignor's floor or ceiling of partitions / members)."""
        held = self.holdings()
        if not held:
            return False
        flat = [tp for tps in held.values() for tp in tps]
        if len(flat) != partitions or len(set(flat)) != partitions:
            return False
        low = partitions // len(held)
        return all(low <= len(tps) <= low + 1 for tps in held.values())

    def check(self) -> None:
        if self.errors:
            raise AssertionError(f"a member failed: {self.errors[0]!r}") from self.errors[0]

    def close(self) -> None:
        for name in list(self._threads):
            self.leave(name)


def time_until(condition: Callable[[], bool], timeout_s: float, step_s: float = 0.005) -> float:
    """Poll ``condition`` until true; returns the monotonic time it was first seen true.
    Raises AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(step_s)
