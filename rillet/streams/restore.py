"""Restoring a task's stores from their changelog topics (docs/streams.md "Running").

An assign-only consumer (no group; read_committed under exactly_once, so aborted writes
never come back) reads each logged store's changelog partition from the store's checkpoint
(the offset its local state already includes; None: from the beginning) up to the end
offset taken when the restore starts, and hands the records to ``store.restore`` in
batches. Then the store is committed at that end offset, so the next restart starts there:
a store whose local SQLite file survived replays only what it missed.

Thread: the App's run thread (restores run in the rebalance listener, before the task
processes anything).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rillet.errors import RilletTimeoutError
from rillet.records import TopicPartition

from .errors import StreamsError

log = logging.getLogger("rillet.streams.restore")


def restore_task(consumer: Any, task: Any, timeout_s: float = 120.0) -> int:
    """Restore every logged store of ``task``; returns how many changelog records were
    applied. ``consumer``: the restore consumer (assign-only)."""
    plan: dict[TopicPartition, tuple[str, Any]] = {}
    for name, (topic, partition) in task.changelogs.items():
        plan[TopicPartition(topic, partition)] = (name, task.stores[name])
    if not plan:
        return 0
    tps = list(plan)
    consumer.assign(tps)
    ends = consumer.end_offsets(tps)
    starts = consumer.beginning_offsets(tps)
    pending: dict[TopicPartition, int] = {}
    for tp, (name, store) in plan.items():
        checkpoint = store.checkpoint()
        end = ends[tp]
        if checkpoint is not None and checkpoint > end:
            # the changelog lost records the local state has (topic recreated, unclean
            # election): the local state cannot be trusted
            log.warning("task %s: store %s checkpoint %s is past the changelog end %s: "
                        "wiping the local state", task.id, name, checkpoint, end)
            store.wipe()
            checkpoint = None
        start = starts[tp] if checkpoint is None else max(checkpoint, starts[tp])
        if start < end:
            consumer.seek(tp, start)
            pending[tp] = end
        task.changelog_offsets[name] = end
    restored = 0
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            raise StreamsError(f"task {task.id}: restoring {sorted(pending)} did not finish "
                               f"in {timeout_s} s")
        consumer.pause(*[tp for tp in tps if tp not in pending])
        batch = consumer.poll(200)
        for tp, records in batch.items():
            if tp not in pending:
                continue
            end = pending[tp]
            items = [(r[4], r[5]) for r in records if r[2] < end]
            if items:
                plan[tp][1].restore(items)
                restored += len(items)
        for tp in list(pending):
            try:
                position = consumer.position(tp)
            except RilletTimeoutError:
                continue
            if position >= pending[tp]:
                del pending[tp]
    for name, store in plan.values():
        store.commit(task.changelog_offsets[name])
    consumer.assign([])
    if restored:
        log.info("task %s: restored %d records from %s", task.id, restored,
                 ", ".join(f"{tp.topic}-{tp.partition}" for tp in tps))
    return restored


__all__ = ["restore_task"]
