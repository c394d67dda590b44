"""A custom source connector: ``connector.class=counter:CounterSource`` (module:Class).

Each task counts from where it stopped (its offset is stored by the worker) and emits one
record ``{"task": i, "n": n}`` every ``interval.ms`` into ``topic``. Run it next to the
built-ins::

    rillet connect standalone worker.properties counter.properties

(the module must be importable: run from this directory, or put it on PYTHONPATH).
"""

from __future__ import annotations

import time
from typing import Any

from rillet.connectors.api import SourceConnector, SourceRecord, SourceTask
from rillet.connectors.config import ConfigDef, key


class CounterSource(SourceConnector):
    # declaring the keys gives typed values and did-you-mean errors for typos
    config_def = ConfigDef([key("topic"), key("interval.ms", "int", 1000, minimum=1),
                            key("limit", "int", -1)])

    def task_class(self) -> type[SourceTask]:
        return CounterTask

    def task_configs(self, max_tasks: int) -> list[dict[str, Any]]:
        return [{**self.config, "task.index": i} for i in range(max_tasks)]


class CounterTask(SourceTask):
    def start(self, config: dict[str, Any]) -> None:
        self.topic = config["topic"]
        self.index = int(config["task.index"])
        self.interval_ms = int(config["interval.ms"])
        self.limit = int(config["limit"])
        self.partition = {"counter": self.index}
        last = self.context.offset_storage_reader.offset(self.partition)
        self.n = last["n"] if last else 0
        self.next_due = 0.0

    def poll(self) -> list[SourceRecord]:
        # poll() must not block: when nothing is due, return [] and the worker calls again
        # after idle_wait_ms()
        if (self.limit >= 0 and self.n >= self.limit) or time.monotonic() < self.next_due:
            return []
        self.next_due = time.monotonic() + self.interval_ms / 1000
        self.n += 1
        return [SourceRecord(self.partition, {"n": self.n}, self.topic,
                             key=self.index, value={"task": self.index, "n": self.n})]

    def idle_wait_ms(self) -> int:
        return max(1, int((self.next_due - time.monotonic()) * 1000))
