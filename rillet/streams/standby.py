"""Standby replicas and the instances topic (docs/streams.md "Standby replicas").

``num.standby.replicas`` = n > 0: for every task with a logged store, n instances that do
not hold it keep a warm copy of its stores by reading their changelogs as they are written
(Kafka's standby tasks). A persistent copy lives where the task's own stores would
(``{state.dir}/{application.id}/{task}``), with its changelog position checkpointed in the
same SQLite file; an in-memory copy lives in the standby task, its position in memory. When
the task moves there (a rebalance, an instance killed) the new active task finds the store
almost up to date (the files, or the in-memory store objects handed over) and restores only
the changelog records the standby had not read yet, instead of the whole changelog.

Where the standbys go is worked out by every instance from the instances topic
(instances.py: each instance's active and standby tasks, kept fresh every second), with
rendezvous hashing, so the instances agree without a leader. An instance never keeps a
standby of a task it holds; when the group gives it a task it had a standby of, the
standby is closed (its stores committed at its position) and the active task opens the
same files.

Threads: everything here runs on the app's run thread (``Runtime.loop`` calls ``tick``;
the rebalance listener calls ``release``). Under exactly_once the standby reads
read_committed, and its directory is trusted after a restart only if it was closed cleanly
(the same marker as an active task's).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import TYPE_CHECKING, Any

from rillet.consumer import Consumer
from rillet.producer import Producer
from rillet.records import TopicPartition

from .api import Subtopology, TaskId, changelog_topic, topic_of
from .config import _base, restore_consumer_config
from .instances import (
    PUBLISH_S,
    Directory,
    HostInfo,
    InstanceInfo,
    decode,
    encode,
    instances_topic,
    place_standbys,
)
from .task import _CLEAN_MARKER

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("rillet.streams.standby")

TICK_S = 0.05  # how often the loop reads the instances topic and the standbys' changelogs


def standby_specs(subtopology: Subtopology) -> dict[str, Any]:
    """The stores a standby keeps: the logged ones. A persistent copy is handed over
    through its files (the task opens them); an in-memory one as the store object itself
    (``StandbyTask.hand_over``), with its changelog position as its checkpoint."""
    return {n: s for n, s in subtopology.stores.items() if s.logged}


class StandbyTask:
    """The warm copy of one task's persistent logged stores."""

    def __init__(self, task_id: TaskId, subtopology: Subtopology, *, application_id: str,
                 state_dir: str, store_factory: Any, exactly_once: bool) -> None:
        self.id = task_id
        self.dir = os.path.join(state_dir, application_id, str(task_id))
        self.exactly_once = exactly_once
        marker = os.path.join(self.dir, _CLEAN_MARKER)
        if exactly_once and not os.path.exists(marker):
            shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir, exist_ok=True)
        try:
            os.unlink(marker)
        except FileNotFoundError:
            pass
        self.stores: dict[TopicPartition, Any] = {}
        self.positions: dict[TopicPartition, int | None] = {}
        self.applied = 0
        try:
            for name, spec in standby_specs(subtopology).items():
                store = store_factory(spec, task_id)
                store.open(self.dir, None, None)
                tp = TopicPartition(changelog_topic(application_id, name), task_id.partition)
                self.stores[tp] = store
                self.positions[tp] = store.checkpoint()
        except BaseException:
            self.close(clean=False)
            raise

    def apply(self, tp: TopicPartition, records: list) -> int:
        store = self.stores.get(tp)
        if store is None or not records:
            return 0
        store.restore([(r[4], r[5]) for r in records])
        self.positions[tp] = records[-1][2] + 1
        self.applied += len(records)
        return len(records)

    def commit(self) -> None:
        for tp, store in self.stores.items():
            position = self.positions.get(tp)
            if position is not None:
                store.commit(position)

    def hand_over(self) -> dict[str, Any]:
        """The task moves here: commit every store at its position, close the persistent
        ones (the task opens their files) and return the in-memory ones by name, open,
        their checkpoint the position read (the task restores from there)."""
        self.commit()
        handed = {}
        for tp, store in list(self.stores.items()):
            if not store.persistent:
                handed[store.name] = self.stores.pop(tp)
        self.close(clean=True)
        return handed

    def close(self, clean: bool) -> None:
        """Clean: committed at the positions read, and marked as safe to reuse."""
        if clean:
            try:
                self.commit()
            except Exception:  # noqa: BLE001 - then it is not clean
                log.exception("standby task %s: commit failed", self.id)
                clean = False
        for store in self.stores.values():
            try:
                store.close()
            except Exception:  # noqa: BLE001
                log.exception("standby task %s: closing store %s failed", self.id,
                              store.name)
        if clean and os.path.isdir(self.dir):
            with open(os.path.join(self.dir, _CLEAN_MARKER), "w"):
                pass
        elif not clean and self.exactly_once:
            shutil.rmtree(self.dir, ignore_errors=True)


class Standbys:
    """The instances topic (read and written) and this instance's standby tasks."""

    def __init__(self, runtime: Runtime, directory: Directory) -> None:
        self.rt = runtime
        cfg = runtime.cfg
        self.cfg = cfg
        self.me = runtime.app.instance_id
        self.replicas = cfg.num_standby_replicas
        self.server = (None if cfg.application_server is None
                       else HostInfo.parse(cfg.application_server))
        self.topic = instances_topic(cfg.application_id)
        self.tp = TopicPartition(self.topic, 0)
        self.directory = directory
        self.tasks: dict[TaskId, StandbyTask] = {}
        self.task_of: dict[TopicPartition, StandbyTask] = {}
        self.applied = 0
        self.published: InstanceInfo | None = None
        self.next_publish = self.next_tick = 0.0
        self.commit_s = max(cfg.commit_interval_ms, 1000) / 1000
        self.next_commit = time.monotonic() + self.commit_s
        self.producer: Producer | None = None
        self.consumer: Consumer | None = None
        try:
            producer_cfg = _base(cfg, "instances-producer")
            producer_cfg.update(cfg.producer)
            producer_cfg.update({"linger.ms": 0, "acks": 1, "enable.idempotence": False})
            self.producer = Producer(producer_cfg)
            consumer_cfg = restore_consumer_config(cfg)
            consumer_cfg["client.id"] = _base(cfg, "standby-consumer")["client.id"]
            self.consumer = Consumer(consumer_cfg)
            self.consumer.assign([self.tp])
            self.consumer.seek_to_beginning(self.tp)
        except BaseException:
            self.close()
            raise

    # -- the loop ------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now < self.next_tick:
            return
        self.next_tick = now + TICK_S
        wall_ms = time.time() * 1000
        for tp, records in self.consumer.poll(0).items():
            if tp == self.tp:
                self._heard(records, now, wall_ms)
            else:
                task = self.task_of.get(tp)
                if task is not None:
                    self.applied += task.apply(tp, records)
        for tp, task in self.task_of.items():
            # the next offset poll() returns: past transaction markers too (read_committed)
            position = self.consumer.position(tp)
            if position != task.positions.get(tp):
                task.positions[tp] = position
        self.publish(now)
        self.place(now)
        if now >= self.next_commit:
            self.next_commit = now + self.commit_s
            for task in self.tasks.values():
                task.commit()

    def _heard(self, records: list, now: float, wall_ms: float) -> None:
        for r in records:
            if r[4] is None:
                continue
            instance = r[4].decode(errors="replace")
            if r[5] is None:
                self.directory.apply(instance, None, now)
                continue
            try:
                info = decode(r[5])
            except ValueError as e:
                log.warning("%s: skipping a bad entry at offset %s: %s", self.topic, r[2], e)
                continue
            age_s = max(0.0, (wall_ms - r[3]) / 1000)
            self.directory.apply(instance, info, now - age_s)
            if instance != self.me and age_s > 6 * self.directory.liveness_s:
                # a long-dead instance's entry (killed: no tombstone of its own)
                self.producer.send(self.topic, None, key=r[4])

    def publish(self, now: float, force: bool = False) -> None:
        info = InstanceInfo(self.server, frozenset(self.rt.tasks), frozenset(self.tasks))
        if force or info != self.published or now >= self.next_publish:
            self.producer.send(self.topic, encode(info), key=self.me.encode())
            self.published = info
            self.next_publish = now + PUBLISH_S
            self.directory.apply(self.me, info, now)

    def all_tasks(self) -> list[TaskId]:
        """Every task with a store a standby would keep."""
        out = []
        app_id = self.cfg.application_id
        for st in self.rt.compiled.subtopologies:
            if not st.sources or not standby_specs(st):
                continue
            n = self.rt.partition_counts.get(topic_of(st.sources[0], app_id), 0)
            out.extend(TaskId(st.id, p) for p in range(n))
        return out

    def place(self, now: float) -> None:
        if self.replicas <= 0:
            return
        want = place_standbys(self.me, self.all_tasks(), self.directory.live(now),
                              self.replicas) - set(self.rt.tasks)
        if want == set(self.tasks):
            return
        for task_id in sorted(set(self.tasks) - want):
            self._close(task_id)
        by_id = {st.id: st for st in self.rt.compiled.subtopologies}
        for task_id in sorted(want - set(self.tasks)):
            task = StandbyTask(task_id, by_id[task_id.subtopology],
                               application_id=self.cfg.application_id,
                               state_dir=self.cfg.state_dir,
                               store_factory=self.rt.app._store_factory,
                               exactly_once=self.rt.eos)
            self.tasks[task_id] = task
            log.info("standby %s opened", task_id)
        self._reassign()
        self.publish(now, force=True)

    def _reassign(self) -> None:
        self.task_of = {tp: task for task in self.tasks.values() for tp in task.stores}
        self.consumer.assign([self.tp, *self.task_of])
        fresh = []
        for tp, task in self.task_of.items():
            position = task.positions.get(tp)
            if position is None:
                fresh.append(tp)
            elif self.consumer.position(tp) != position:
                self.consumer.seek(tp, position)
        if fresh:
            self.consumer.seek_to_beginning(*fresh)

    def _close(self, task_id: TaskId, clean: bool = True) -> None:
        task = self.tasks.pop(task_id, None)
        if task is not None:
            task.close(clean)
            log.info("standby %s closed (%d changelog records applied)", task_id,
                     task.applied)

    def release(self, task_id: TaskId) -> dict[str, Any]:
        """The group gave this instance ``task_id``: its standby (if any) is committed and
        closed, so the active task opens the same store files; its in-memory stores are
        returned by name, for the task to take as they are (``StandbyTask.hand_over``)."""
        task = self.tasks.pop(task_id, None)
        if task is None:
            return {}
        handed = task.hand_over()
        log.info("standby %s handed over (%d changelog records applied; in memory: %s)",
                 task_id, task.applied, ", ".join(sorted(handed)) or "none")
        self._reassign()
        return handed

    # -- life cycle ----------------------------------------------------------------------

    def metrics(self) -> dict[str, int]:
        return {"standby_tasks": len(self.tasks), "standby_records": self.applied}

    def close(self) -> None:
        """Clean: the entry's tombstone, the standbys committed and closed."""
        for task_id in list(self.tasks):
            self._close(task_id)
        if self.producer is not None:
            try:
                self.producer.send(self.topic, None, key=self.me.encode())
                self.producer.flush(5)
            except Exception as e:  # noqa: BLE001 - the others see it expire instead
                log.warning("%s: could not withdraw this instance's entry: %s", self.topic, e)
        for client in (self.consumer, self.producer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001
                    log.exception("closing a client failed")
        self.directory.apply(self.me, None, time.monotonic())


__all__ = ["StandbyTask", "Standbys", "standby_specs"]
