"""SharePartitionManager: the share-partition state of the partitions this broker leads
(KIP-932's SharePartitionManager; docs/queues.md, "Share-partition").

One actor per broker. For each (share group, topic, partition) it serves it holds a ``_SP``:
the pure core (coordinator/share/partition.py) plus what the actor does around it:

- **loading**: on first use, and again whenever the partition's leader epoch changes, the
  state is read from the share-state coordinator (``ShareStateClient.read``:
  ReadShareGroupState). A share-partition with no stored state is initialised on its first
  ShareFetch at the partition's latest offset (``share.auto.offset.reset`` "earliest": its
  log start offset) and that start is written at once.
- **group commit**: every change marks the state dirty; while one WriteShareGroupState is in
  flight, changes accumulate and go out together in the next one (one write per
  share-partition at a time, never one per record). An acknowledgement is answered only once
  a write that includes it is durable. A write fenced by a newer leader or state epoch drops
  the share-partition (its requests get NOT_LEADER_OR_FOLLOWER; the next one reloads).
- **dead letters** (actors/share_dlq.py): once DEAD_LETTER_PENDING records are durable, their
  dead-letter writes start; when one is confirmed the records are archived (and written).
  After a load, pending ones are written again.
- **lock expiry and delayed records**: ``ShareTick`` expires locks and wakes parked
  ShareFetches whose records became available. Given the ticker's ``schedule``, the actor
  arms one timer (actors/wakeup.py) for the next of: a lock's expiry, a delayed record's
  availability for a parked fetch, a parked fetch's deadline, a state or dead-letter write
  retry, the end of a watch, an idle share-partition's eviction. None when nothing is due.

Requests (actors/share_requests.py) arrive as ``ShareRequest`` from client sessions.
Everything runs on this actor's thread; the persister, partition replicas and the
dead-letter writer answer by telling it a message.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pykka
from loguru import logger
from rillet.coordinator.share.partition import (
    Changes,
    SharePartition,
    SharePartitionConfig,
)
from rillet.transport import protocol as P

from rillet.frozen import frozen

from . import partition as R
from .runtime import DispatchedActor
from .share_config import partition_config
from .share_requests import ShareRequests
from .ticker import now_ms
from .wakeup import Schedule, WokenWhenDue, earliest

E = P.ErrorCode
WRITE_RETRY_MS = 200  # a failed state write (coordinator moving) is retried after this
DLQ_RETRY_MS = 500
WATCH_MS = 30_000
EVICT_FRESH_MS = 10_000  # a share-partition with no stored state is forgotten after this
EVICT_IDLE_MS = 600_000  # one with nothing in flight, unused this long, too
TICK_MS = 100  # the shortest time between ticks


@frozen
class ShareRequest:
    request: Any
    respond: Callable[[object], None]


@frozen
class ShareTick:
    now_ms: int


@frozen
class ImageChanged:
    image: Any


@frozen
class ReleaseMember:
    """A member's share session closed (a Kafka share consumer's, actors/kafka_share.py):
    the records it still holds in these partitions are available again at once (or dead
    letters at the delivery limit), as Kafka's broker releases them, not after their locks."""

    group_id: str
    member_id: str
    partitions: tuple[tuple[str, int], ...]


@frozen
class _Call:
    """Run ``fn(*args)`` on the actor's thread (answers from other actors and threads)."""

    fn: Callable[..., None]
    args: tuple


class _SP:
    """The actor's side of one share-partition (actor thread only)."""

    __slots__ = (
        "key", "leader_epoch", "config", "auto_offset_reset", "dlq_topic", "core",
        "state_epoch", "status", "waiters", "dirty", "writing", "replace_next",
        "next_waiters", "inflight_waiters", "retry_at", "parked", "watching", "watch_until",
        "dlq_busy", "dlq_retry_at", "hw", "record_bytes", "last_used", "topic_id",
    )

    def __init__(self, key, leader_epoch, config, auto_offset_reset, dlq_topic,
                 topic_id: str = "") -> None:
        self.key: tuple[str, str, int] = key
        self.topic_id = topic_id  # a topic created again under the name is another one
        self.leader_epoch: int = leader_epoch
        self.config: SharePartitionConfig = config
        self.auto_offset_reset = auto_offset_reset
        self.dlq_topic = dlq_topic
        self.core: SharePartition | None = None
        self.state_epoch = 0
        self.status = "loading"  # -> "fresh" (nothing stored) -> "init" -> "ready"; "dropped"
        self.waiters: list[Callable[[int], None]] = []  # until loaded (or initialised)
        self.dirty = False
        self.writing = False
        self.replace_next = False
        self.next_waiters: list[Callable[[int], None]] = []  # answered by the next write
        self.inflight_waiters: list[Callable[[int], None]] = []
        self.retry_at = 0
        self.parked: set = set()  # ShareFetch operations waiting for records here
        self.watching = False
        self.watch_until = 0
        self.dlq_busy: set[int] = set()
        self.dlq_retry_at = 0
        self.hw = -1
        self.record_bytes = 0.0  # bytes per record in this partition's batches (last read)
        self.last_used = 0  # ms: the last request that named it


class SharePartitionManager(WokenWhenDue, ShareRequests, DispatchedActor):
    """Collaborators are given: ``persister`` (actors/share_state_client.py), ``dead_letters``
    (actors/share_dlq.DeadLetterWriter), ``clock`` and ``rng`` (jitter)."""

    tick_message = ShareTick

    def __init__(self, ctx: Any, persister: Any, dead_letters: Any,
                 clock: Callable[[], int] = now_ms, rng: random.Random | None = None,
                 schedule: Schedule | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.persister = persister
        self.dead_letters = dead_letters
        self.clock = clock
        self.rng = rng or random.Random()
        self.sps: dict[tuple[str, str, int], _SP] = {}
        self.parked_ops: set = set()  # ShareFetch operations parked (share_requests.py)
        self._wake = self._wakeup(schedule, clock, TICK_MS)
        self._touched: set[_SP] = set()  # used or changed since the timer was last armed
        self._log = logger.bind(broker=ctx.broker_id, actor="share-partitions")

    def on_receive(self, message: Any) -> None:  # WokenWhenDue's, with the touched set
        tick = self._note_tick(message)
        self._dispatch(message)
        if self._wake is not None:
            now = self.clock()
            self._wake.arm(self._next_due(now, everything=tick), now)
        self._touched.clear()

    def _next_due(self, now: int, everything: bool) -> int | None:
        """When ``_tick`` next has work: after a tick every share-partition's deadlines,
        after another message only those of the ones it used (the others' did not move;
        one that moved later leaves an early wake-up, after which all are looked at)."""
        sps = self.sps.values() if everything else self._touched
        due = None
        for sp in sps:
            due = earliest(due, self._due_of(sp))
        for op in self.parked_ops:
            due = earliest(due, op.deadline)
        return due

    def _due_of(self, sp: _SP) -> int | None:
        if sp.status == "dropped":
            return None
        due = None
        core = sp.core
        if not (sp.waiters or sp.parked or sp.writing or sp.dirty or sp.next_waiters):
            if sp.status == "fresh":
                due = sp.last_used + EVICT_FRESH_MS
            elif sp.status == "ready" and not core.holders() and not core.dead_letter_pending():
                due = sp.last_used + EVICT_IDLE_MS
        if sp.status != "ready":
            return due
        due = earliest(due, core.next_lock_deadline())
        if sp.dirty and not sp.writing:
            due = earliest(due, sp.retry_at)
        if not sp.writing and not sp.dirty and any(
                d.first_offset not in sp.dlq_busy for d in core.dead_letter_pending()):
            due = earliest(due, sp.dlq_retry_at)
        if sp.watching:
            due = earliest(due, sp.watch_until)
        if sp.parked:
            due = earliest(due, core.next_available_at())
        return due

    def _dispatch(self, message: Any) -> None:
        try:
            match message:
                case ShareRequest():
                    self.handle(message.request, message.respond)
                case _Call():
                    self._touched.update(a for a in message.args if isinstance(a, _SP))
                    message.fn(*message.args)
                case ShareTick():
                    self._tick(message.now_ms)
                case ImageChanged():
                    self._image_changed(message.image)
                case ReleaseMember():
                    self._release_member(message)
                case _:
                    self._log.warning("ignoring unknown message {!r}", type(message).__name__)
        except Exception:  # noqa: BLE001 - never let one message stop the manager
            self._log.exception("share-partition manager failed on {}", type(message).__name__)
            if isinstance(message, ShareRequest):
                message.respond(P.ErrorResponse(error_code=E.UNKNOWN_SERVER_ERROR,
                                                error_message="share-partition manager bug"))

    def call(self, fn: Callable[..., None], *args: Any) -> Callable[..., None]:
        """A callback for another thread that runs ``fn(*args, *its args)`` here."""
        me = self.actor_ref

        def callback(*more: Any) -> None:
            try:
                me.tell(_Call(fn, (*args, *more)))
            except pykka.ActorDeadError:
                pass

        return callback

    def _release_member(self, m: ReleaseMember) -> None:
        for topic, partition in m.partitions:
            sp = self.sps.get((m.group_id, topic, partition))
            if sp is not None and sp.core is not None and sp.status == "ready":
                self.apply(sp, sp.core.release_member(m.member_id))

    # -------------------------------------------------------------------- share-partitions

    def share_partition(self, group: str, topic: str, partition: int) -> tuple[int, _SP | None]:
        """(error, the share-partition) for a partition this broker must lead; a new one
        (or one whose leader epoch changed) starts loading."""
        info = self.ctx.image.partition(topic, partition)
        if info is None:
            return E.UNKNOWN_TOPIC_OR_PARTITION, None
        if info.leader != self.ctx.broker_id or (topic, partition) not in self.ctx.replicas:
            return E.NOT_LEADER_OR_FOLLOWER, None
        key = (group, topic, partition)
        sp = self.sps.get(key)
        topic_id = self.ctx.image.topics[topic].topic_id
        if sp is not None and (sp.leader_epoch != info.leader_epoch or sp.topic_id != topic_id):
            self.drop(sp, E.NOT_LEADER_OR_FOLLOWER)
            sp = None
        if sp is None:
            gc = partition_config(self.ctx.image, group, topic, self.ctx.broker_configs)
            sp = _SP(key, info.leader_epoch, gc[0], gc[1], gc[0].dead_letter_topic, topic_id)
            self.sps[key] = sp
            self._load(sp)
        sp.last_used = self.clock()
        self._touched.add(sp)
        return E.NONE, sp

    def when_loaded(self, sp: _SP, fn: Callable[[int], None]) -> None:
        """``fn(error)`` once the stored state is known (``sp.core`` None: nothing stored)."""
        if sp.status in ("ready", "fresh"):
            fn(E.NONE)
        else:
            sp.waiters.append(fn)

    def when_ready(self, sp: _SP, fn: Callable[[int], None]) -> None:
        """``fn(error)`` once ``sp.core`` exists (a fresh share-partition is initialised)."""
        if sp.status == "ready":
            fn(E.NONE)
            return
        sp.waiters.append(lambda code: self._after_load_for_core(sp, code, fn))

    def _after_load_for_core(self, sp: _SP, code: int, fn: Callable[[int], None]) -> None:
        if code != E.NONE or sp.status == "ready":
            fn(code)
            return
        sp.waiters.append(fn)
        if sp.status == "fresh":
            sp.status = "init"
            ts = P.EARLIEST_TIMESTAMP if sp.auto_offset_reset == "earliest" else P.LATEST_TIMESTAMP
            self.list_offset(sp, ts, self.call(self._initialised, sp))

    def list_offset(self, sp: _SP, timestamp: int, answer: Callable[[Any], None]) -> None:
        ref = self.ctx.replicas.get(sp.key[1:])
        if ref is None:
            answer(P.ListOffsetsPartitionResponse(partition=sp.key[2],
                                                  error_code=E.NOT_LEADER_OR_FOLLOWER))
            return
        try:
            ref.tell(R.ListOffset(timestamp, answer))
        except pykka.ActorDeadError:
            answer(P.ListOffsetsPartitionResponse(partition=sp.key[2],
                                                  error_code=E.NOT_LEADER_OR_FOLLOWER))

    def _initialised(self, sp: _SP, r: P.ListOffsetsPartitionResponse) -> None:
        if sp.status != "init":
            return
        if r.error_code != E.NONE:
            sp.status = "fresh"
            self._run_waiters(sp, r.error_code)
            return
        group, topic, partition = sp.key
        sp.core = SharePartition(group, topic, partition, sp.config, r.offset)
        sp.status = "ready"
        self._log.info("share-partition {} starts at offset {}", sp.key, r.offset)
        self.apply(sp, Changes(dirty=True))
        self._run_waiters(sp, E.NONE)

    def _load(self, sp: _SP) -> None:
        group, topic, partition = sp.key
        self.persister.read(group, topic, partition, sp.leader_epoch, self.call(self._loaded, sp))

    def _loaded(self, sp: _SP, r: P.ReadShareGroupStateResponse) -> None:
        if sp.status != "loading":
            return
        if r.error_code != E.NONE:
            self._log.info("loading share-partition {} failed: {} {}", sp.key,
                           E(r.error_code).name if r.error_code in E._value2member_map_
                           else r.error_code, r.error_message or "")
            self.drop(sp, r.error_code)
            return
        sp.state_epoch = r.state_epoch
        if r.start_offset < 0:
            sp.status = "fresh"
        else:
            group, topic, partition = sp.key
            sp.core = SharePartition.from_state(group, topic, partition, sp.config,
                                                r.start_offset, _core_batches(r.state_batches))
            sp.status = "ready"
            self._log.info("share-partition {} loaded at start offset {} ({} ranges)", sp.key,
                           sp.core.start_offset, len(sp.core.ranges))
        self._run_waiters(sp, E.NONE)
        self._dead_letters(sp)  # a dead leader's pending dead letters, written again

    def _run_waiters(self, sp: _SP, code: int) -> None:
        waiters, sp.waiters = sp.waiters, []
        for fn in waiters:
            fn(code)

    def drop(self, sp: _SP, code: int) -> None:
        """Forget ``sp`` (no longer leader, fenced, load failed): everything waiting on it
        gets ``code``."""
        if sp.status == "dropped":
            return
        sp.status = "dropped"
        if self.sps.get(sp.key) is sp:
            del self.sps[sp.key]
        for fn in [*sp.waiters, *sp.inflight_waiters, *sp.next_waiters]:
            fn(code)
        sp.waiters, sp.inflight_waiters, sp.next_waiters = [], [], []
        for op in list(sp.parked):
            self.partition_failed(op, sp, code)

    def _image_changed(self, image: Any) -> None:
        for sp in list(self.sps.values()):
            info = image.partition(sp.key[1], sp.key[2])
            topic = image.topics.get(sp.key[1])
            if info is None or info.leader != self.ctx.broker_id or (
                info.leader_epoch != sp.leader_epoch
            ) or topic is None or topic.topic_id != sp.topic_id:
                self._log.info("share-partition {}: no longer led here", sp.key)
                self.drop(sp, E.NOT_LEADER_OR_FOLLOWER)
            else:
                self._reconfigure(sp, image)

    def _reconfigure(self, sp: _SP, image: Any) -> None:
        """A change of the group's configs (AlterConfigs on the GROUP resource) applies to a
        loaded share-partition from the next metadata image: lock duration, delivery limit,
        back-off and dead-letter topic of what happens next (records already acquired keep
        the lock they were given). ``share.auto.offset.reset`` only matters to a new one."""
        group, topic, _partition = sp.key
        config, reset = partition_config(image, group, topic, self.ctx.broker_configs)
        if config == sp.config:
            return
        self._log.info("share-partition {}: group configs changed", sp.key)
        sp.config, sp.auto_offset_reset, sp.dlq_topic = config, reset, config.dead_letter_topic
        if sp.core is not None:
            sp.core.config = config

    # ------------------------------------------------------------------- changes, writes

    def apply(self, sp: _SP, changes: Changes, waiter: Callable[[int], None] | None = None):
        """Carry out what the core decided: a write (``waiter(error)`` once it is durable),
        parked fetches woken when records became available."""
        self._touched.add(sp)
        if changes.dirty:
            sp.dirty = True
            if waiter is not None:
                sp.next_waiters.append(waiter)
            self._flush(sp)
        elif waiter is not None:
            waiter(E.NONE)
        if changes.released and sp.parked:
            self.actor_ref.tell(_Call(self.wake, (sp,)))

    def _flush(self, sp: _SP) -> None:
        if sp.writing or not sp.dirty or sp.core is None or sp.status != "ready":
            return
        start, batches = sp.core.to_state()
        group, topic, partition = sp.key
        request = P.WriteShareGroupStateRequest(
            group_id=group, topic=topic, partition=partition, state_epoch=sp.state_epoch,
            leader_epoch=sp.leader_epoch, start_offset=start, replace=sp.replace_next,
            state_batches=tuple(
                P.ShareStateBatch(first_offset=b.first_offset, last_offset=b.last_offset,
                                  delivery_state=b.delivery_state,
                                  delivery_count=b.delivery_count,
                                  available_at_ms=b.available_at_ms, reason=b.reason)
                for b in batches),
        )
        sp.writing, sp.dirty = True, False
        sp.inflight_waiters, sp.next_waiters = sp.next_waiters, []
        self.persister.write(request, self.call(self._written, sp, request.replace))

    def _written(self, sp: _SP, replace: bool, r: P.WriteShareGroupStateResponse) -> None:
        if sp.status == "dropped":
            return
        sp.writing = False
        if r.error_code == E.NONE:
            if r.state_epoch:
                sp.state_epoch = r.state_epoch
            waiters, sp.inflight_waiters = sp.inflight_waiters, []
            for fn in waiters:
                fn(E.NONE)
            self._flush(sp)
            self._dead_letters(sp)
            return
        if r.error_code in (E.FENCED_STATE_EPOCH, E.FENCED_LEADER_EPOCH, E.INVALID_REQUEST):
            # fenced (a newer leader or a reset) or refused: what is durable is the truth
            self._log.warning("share-partition {}: state write refused ({} {}); reloading",
                              sp.key, r.error_code, r.error_message or "")
            self.drop(sp, E.NOT_LEADER_OR_FOLLOWER)
            return
        # the coordinator is moving or unreachable: the same changes go out again later
        sp.dirty = True
        sp.replace_next = sp.replace_next or replace
        sp.next_waiters = sp.inflight_waiters + sp.next_waiters
        sp.inflight_waiters = []
        sp.retry_at = self.clock() + WRITE_RETRY_MS

    # ---------------------------------------------------------------------- dead letters

    def _dead_letters(self, sp: _SP) -> None:
        """Start the dead-letter writes of pending records, once their state is durable."""
        if sp.core is None or sp.status != "ready" or sp.writing or sp.dirty:
            return
        if self.clock() < sp.dlq_retry_at:
            return
        group, topic, partition = sp.key
        for d in sp.core.dead_letter_pending():
            if d.first_offset in sp.dlq_busy:
                continue
            sp.dlq_busy.add(d.first_offset)
            self.dead_letters.write(
                group=group, topic=topic, partition=partition, first=d.first_offset,
                last=d.last_offset, delivery_count=d.delivery_count, reason=d.reason,
                dlq_topic=sp.dlq_topic, done=self.call(self._dead_lettered, sp, d.first_offset))

    def _dead_lettered(self, sp: _SP, first: int, code: int, until: int) -> None:
        sp.dlq_busy.discard(first)
        if sp.status != "ready":
            return
        if code != E.NONE or until <= first:
            self._log.info("share-partition {}: dead-letter write of offset {} failed ({}), "
                           "retrying", sp.key, first, code)
            sp.dlq_retry_at = self.clock() + DLQ_RETRY_MS
            return
        self.apply(sp, sp.core.dead_lettered(first, until - 1))

    # ---------------------------------------------------------------------------- ticks

    def _idle(self, sp: _SP, now: int) -> bool:
        """Nothing to keep in memory: no request waits on it, nothing held, written, pending."""
        if sp.waiters or sp.parked or sp.writing or sp.dirty or sp.next_waiters:
            return False
        if sp.status == "fresh":  # no stored state (a describe, a stray acknowledgement)
            return now - sp.last_used >= EVICT_FRESH_MS
        if sp.status != "ready" or now - sp.last_used < EVICT_IDLE_MS:
            return False
        return not sp.core.holders() and not sp.core.dead_letter_pending()

    def _tick(self, now: int) -> None:
        for sp in list(self.sps.values()):
            if self._idle(sp, now):  # loaded again on its next use
                self.drop(sp, E.NOT_LEADER_OR_FOLLOWER)
                continue
            if sp.status != "ready":
                continue
            self.apply(sp, sp.core.expire_locks(now))
            if sp.dirty and not sp.writing and now >= sp.retry_at:
                self._flush(sp)
            if sp.core.dead_letter_pending():
                self._dead_letters(sp)
            if sp.watching and now >= sp.watch_until:
                sp.watching = False
            if sp.parked:
                due = sp.core.next_available_at()
                if due is not None and due <= now:
                    self.wake(sp)
        self.expire_parked(now)

    def watch(self, sp: _SP) -> None:
        """Wake ``sp``'s parked fetches when records are appended past its end offset."""
        if sp.watching or sp.core is None:
            return
        ref = self.ctx.replicas.get(sp.key[1:])
        if ref is None:
            return
        sp.watching = True
        sp.watch_until = self.clock() + WATCH_MS
        wake = self.call(self._watched, sp)
        try:
            ref.tell(R.Read(sp.core.end_offset, 1, reply=lambda r: wake(r, True),
                            on_data=lambda r: wake(r, False), deadline_ms=sp.watch_until))
        except pykka.ActorDeadError:
            sp.watching = False

    def _watched(self, sp: _SP, r: P.FetchPartitionResponse, immediate: bool) -> None:
        if immediate and not r.records and r.error_code == E.NONE:
            return  # parked at the partition: on_data follows
        sp.watching = False
        if sp.status == "ready":
            self.wake(sp)


def _core_batches(batches):
    from rillet.coordinator.share.partition import StateBatch

    return tuple(StateBatch(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count,
                            b.available_at_ms, b.reason) for b in batches)
