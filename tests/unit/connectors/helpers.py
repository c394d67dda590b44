"""Small helpers to drive tasks directly, without a worker."""

from __future__ import annotations

import json
from typing import Any

from rillet.connectors.api import SinkTaskContext, SourceTaskContext


class DictOffsetReader:
    def __init__(self, offsets: dict[str, dict] | None = None) -> None:
        self.stored = offsets or {}

    def offset(self, partition):
        return self.stored.get(json.dumps(partition, sort_keys=True))

    def offsets(self, partitions):
        return {k: v for p in partitions
                if (v := self.offset(p)) is not None for k in [json.dumps(p, sort_keys=True)]}


def source_task(cls, config: dict[str, Any], offsets: dict | None = None):
    task = cls()
    task.context = SourceTaskContext("c", 0, DictOffsetReader(offsets))
    task.start(config)
    return task


def commit(records) -> dict[str, dict]:
    """What the worker would store: the latest offset per source partition."""
    return {json.dumps(r.source_partition, sort_keys=True): dict(r.source_offset)
            for r in records}


class Reporter:
    def __init__(self) -> None:
        self.reported = []

    def report(self, record, error):
        self.reported.append((record, error))


def sink_task(cls, config: dict[str, Any], reporter=None, name="c"):
    task = cls()
    task.context = SinkTaskContext(name, 0, reporter)
    task.start(config)
    return task
