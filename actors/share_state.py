"""ShareStateActor: the share-state coordinator (KIP-932) of one broker. It hosts the pure
core (coordinator/share/state.py) for the ``__share_group_state`` partitions this broker
leads and serves ReadShareGroupState / WriteShareGroupState, which partition leaders send
over the inter-broker listener (actors/share_state_client.py). docs/queues.md,
"Share-state coordinator".

One *shard* per led partition (actors/share_state_shard.py), loaded at that partition's
leader epoch by writing a barrier with acks=all and replaying the partition up to the high
watermark; unloaded when the leadership goes. Messages (``tell`` only):

* ``ShareStateRequest``  a Read/WriteShareGroupStateRequest and where to answer
* ``ImageChanged``       a new metadata image: gain/lose shards
* ``ShareStateTick``     retries of loads, appends unanswered for too long; given the
                         ticker's ``schedule`` the actor arms one timer for when a tick next
                         has work (actors/wakeup.py): none while every shard is loaded and
                         no append is in flight

Every operation of a shard goes through its queue; the queued operations run one after the
other against the core (which applies their records at once), their records go out as ONE
acks=all append (group commit: only the last record of each key), and only once it is
acknowledged are they answered. A read queued behind a write is answered after that write
is durable, so nothing not yet durable is ever shown. One append per shard is in flight; if
it fails the shard reloads from the log and the operations get NOT_COORDINATOR /
COORDINATOR_NOT_AVAILABLE (the client retries; writes are idempotent). A shard not yet
loaded answers COORDINATOR_LOAD_IN_PROGRESS, a key of a partition led elsewhere
NOT_COORDINATOR. Nothing here waits on another actor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka
from loguru import logger
from rillet.coordinator.metadata import MetadataImage, gone_or_recreated, user_topic_ids
from rillet.coordinator.share import state as SS
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P

from rillet.frozen import frozen

from . import partition as R
from .runtime import DispatchedActor
from .share_state_shard import MORE, RETRY, LoadStep, ShareShard, finish
from .share_state_wire import (
    SHARE_STATE_TOPIC,
    encode_record,
    error_response,
    find_coordinator,
    key_of,
    state_partition,
    to_wire,
    write_of,
)
from .ticker import now_ms
from .wakeup import Schedule, WokenWhenDue, earliest, shard_due

__all__ = ["SHARE_STATE_TOPIC", "ImageChanged", "ShareStateActor", "ShareStateRequest",
           "ShareStateTick", "error_response", "find_coordinator"]

E = P.ErrorCode
_STUCK_MS = 30_000
_BATCH_MAX_OPS = 1000
TICK_MS = 200  # the shortest time between ticks: a load is retried at this pace


@frozen
class ShareStateRequest:
    request: P.ReadShareGroupStateRequest | P.WriteShareGroupStateRequest
    respond: Callable[[object], None]


@frozen
class ImageChanged:
    image: MetadataImage


@frozen
class ShareStateTick:
    now_ms: int


@frozen
class _AppendDone:
    partition: int
    generation: int
    error_code: int
    ops: tuple
    """(done, result or None, error or None) per operation."""


class ShareStateActor(WokenWhenDue, DispatchedActor):
    """``ctx``: the BrokerContext (broker id, replicas). Started once per broker by the node;
    fed ``ImageChanged`` and ``ShareStateTick``."""

    tick_message = ShareStateTick

    def __init__(self, ctx: Any, clock: Callable[[], int] = now_ms,
                 schedule: Schedule | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.clock = clock
        self.shards: dict[int, ShareShard] = {}
        self.num_partitions = 0
        self._generation = 0
        self._topic_ids: dict[str, str] = {}  # of the last image: a deleted topic's states go
        self._wake = self._wakeup(schedule, clock, TICK_MS)
        self._log = logger.bind(broker=ctx.broker_id, actor="share-state")

    def _next_due(self, now: int) -> int | None:
        """When ``_tick`` next has work: an append unanswered for too long, a load to retry
        (asked again every tick while the replica is missing), a load step lost."""
        due = None
        for shard in self.shards.values():
            due = earliest(due, shard_due(shard, now, _STUCK_MS))
        return due

    def _dispatch(self, message: Any) -> None:
        try:
            match message:
                case ShareStateRequest():
                    self._request(message.request, message.respond)
                case ImageChanged():
                    self._image_changed(message.image)
                case ShareStateTick():
                    self._tick(message.now_ms)
                case LoadStep():
                    self._load_step(message)
                case _AppendDone():
                    self._append_done(message)
                case _:
                    self._log.warning("ignoring unknown message {!r}", type(message).__name__)
        except Exception:  # noqa: BLE001 - never let one message stop the coordinator
            self._log.exception("share-state coordinator failed on {}", type(message).__name__)
            if isinstance(message, ShareStateRequest):
                message.respond(error_response(message.request, E.UNKNOWN_SERVER_ERROR, "bug"))

    # ---------------------------------------------------------------------------- requests

    def _request(self, req: Any, respond: Callable[[object], None]) -> None:
        if not isinstance(req, P.ReadShareGroupStateRequest | P.WriteShareGroupStateRequest):
            respond(error_response(req, E.INVALID_REQUEST, f"{req.API} not handled"))
            return
        if self.num_partitions <= 0:
            respond(error_response(req, E.COORDINATOR_NOT_AVAILABLE, f"no {SHARE_STATE_TOPIC}"))
            return
        p = state_partition(req.group_id, req.topic, req.partition, self.num_partitions)
        shard = self.shards.get(p)
        if shard is None:
            respond(error_response(req, E.NOT_COORDINATOR,
                                   f"not the share-state coordinator of {SHARE_STATE_TOPIC}-{p}"))
            return
        if shard.core is None:
            respond(error_response(req, E.COORDINATOR_LOAD_IN_PROGRESS, "loading"))
            return
        if isinstance(req, P.ReadShareGroupStateRequest):
            key, leader_epoch = key_of(req), req.leader_epoch

            def fn(core: SS.ShareStateCoordinator) -> SS.ShareResult:
                return core.read(key, leader_epoch)
        else:
            write = write_of(req)

            def fn(core: SS.ShareStateCoordinator) -> SS.ShareResult:
                return core.write(write)

        def done(result: SS.ShareResult | None, error: tuple[int, str] | None) -> None:
            respond(error_response(req, *error) if error else to_wire(result.response))

        shard.queue.append((fn, done))
        self._drain(shard)

    def _drain(self, shard: ShareShard) -> None:
        """Run the queued operations of ``shard`` as one write (see the module doc)."""
        while shard.core is not None and not shard.busy and shard.queue:
            ops: list = []
            latest: dict = {}  # key -> its last record in this group commit
            while shard.queue and len(ops) < _BATCH_MAX_OPS:
                fn, done = shard.queue.popleft()
                try:
                    result = fn(shard.core)
                except Exception as e:  # noqa: BLE001 - a core bug answers this op only
                    self._log.exception("share-state core failed")
                    ops.append((done, None, (E.UNKNOWN_SERVER_ERROR, str(e))))
                    continue
                for record in result.records:
                    latest.pop(record.key, None)  # keep the order of last writes
                    latest[record.key] = record
                ops.append((done, result, None))
            if not latest:
                finish(ops)
                continue
            self._append(shard, list(latest.values()), ops)

    def _append(self, shard: ShareShard, records: list, ops: list) -> None:
        ref = self.ctx.replicas.get((SHARE_STATE_TOPIC, shard.partition))
        if ref is None:
            self._reload(shard, ops, (E.NOT_COORDINATOR, f"{SHARE_STATE_TOPIC} not hosted here"))
            return
        batch = BatchBuilder()
        ts = self.clock()
        for record in records:
            batch.append(ts, *encode_record(record))
        shard.busy, shard.busy_since = True, self.clock()
        me, partition, generation, done_ops = (self.actor_ref, shard.partition,
                                               shard.generation, tuple(ops))

        def on_appended(r: P.ProducePartitionResponse) -> None:
            try:
                me.tell(_AppendDone(partition, generation, r.error_code, done_ops))
            except pykka.ActorDeadError:
                pass

        try:
            # acks=all: an answered write survives the loss of this broker
            ref.tell(R.Append(batch.build(), on_appended, acks=-1, timeout_ms=10_000))
        except pykka.ActorDeadError:
            shard.busy = False
            self._reload(shard, ops, (E.NOT_COORDINATOR, f"{SHARE_STATE_TOPIC} not hosted here"))

    def _append_done(self, msg: _AppendDone) -> None:
        shard = self.shards.get(msg.partition)
        if shard is None or shard.generation != msg.generation:
            finish(msg.ops, (E.NOT_COORDINATOR, "the coordinator moved while writing"))
            return
        shard.busy = False
        if msg.error_code != E.NONE:
            self._log.warning("append to {}-{} failed: {}", SHARE_STATE_TOPIC, msg.partition,
                              msg.error_code)
            wire = E.NOT_COORDINATOR if msg.error_code == E.NOT_LEADER_OR_FOLLOWER else (
                E.COORDINATOR_NOT_AVAILABLE)
            self._reload(shard, msg.ops, (wire, f"could not write (error {msg.error_code})"))
            return
        finish(msg.ops)
        self._drain(shard)

    def _reload(self, shard: ShareShard, ops: Any, error: tuple[int, str]) -> None:
        """The in-memory state may be ahead of the log: answer ``ops`` with ``error`` and
        rebuild the shard from what is durable (queued operations wait for the load)."""
        finish(ops, error)
        self._generation += 1
        shard.reset(self._generation)
        self._load(shard)

    # ------------------------------------------------------------------------ leadership

    def _image_changed(self, image: MetadataImage) -> None:
        self._forget_deleted_topics(image)
        topic = image.topics.get(SHARE_STATE_TOPIC)
        self.num_partitions = len(topic.partitions) if topic else 0
        led = {p: info.leader_epoch for p, info in (topic.partitions.items() if topic else ())
               if info.leader == self.ctx.broker_id}
        for p in list(self.shards):
            if p not in led or self.shards[p].leader_epoch != led[p]:
                shard = self.shards.pop(p)
                self._log.info("no longer share-state coordinator for {}-{}",
                               SHARE_STATE_TOPIC, p)
                for _fn, done in shard.queue:
                    done(None, (E.NOT_COORDINATOR, "the coordinator moved"))
        for p, epoch in led.items():
            if p not in self.shards:
                self._generation += 1
                shard = self.shards[p] = ShareShard(p, epoch, self._generation)
                self._log.info("share-state coordinator for {}-{} (epoch {}): loading",
                               SHARE_STATE_TOPIC, p, epoch)
                self._load(shard)

    def _forget_deleted_topics(self, image: MetadataImage) -> None:
        """Topics gone from ``image``, or created again under their name (a new topic id),
        lose their share-partitions' states in the shards led here, as Kafka deletes share
        group state with a topic (a group read a re-created topic from the old start offset,
        past its records)."""
        ids = user_topic_ids(image)
        deleted = gone_or_recreated(self._topic_ids, ids)
        self._topic_ids = ids
        if not deleted:
            return

        def fn(core: SS.ShareStateCoordinator) -> SS.ShareResult:
            return core.delete_topics(deleted)

        def done(_result: SS.ShareResult | None, error: tuple[int, str] | None) -> None:
            if error:
                self._log.warning("share states of deleted topics {} not removed: {}",
                                  sorted(deleted), error)

        for shard in self.shards.values():
            shard.queue.append((fn, done))
            self._drain(shard)

    def _load(self, shard: ShareShard) -> None:
        shard.load(self.ctx.replicas.get((SHARE_STATE_TOPIC, shard.partition)), self._tell_me,
                   self.clock())

    def _tell_me(self, message: object) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    def _load_step(self, step: LoadStep) -> None:
        shard = self.shards.get(step.partition)
        if shard is None or shard.generation != step.generation:
            return
        outcome, code, skipped = shard.on_load_step(step)
        for offset in skipped:
            self._log.warning("skipping an unreadable record at offset {}", offset)
        if outcome == RETRY:
            self._log.info("loading {}-{}: error {} (retried)", SHARE_STATE_TOPIC,
                           shard.partition, code)
            return
        if outcome == MORE:
            self._load(shard)
            return
        self._log.info("share-state coordinator for {}-{} loaded: {} share-partitions (up to "
                       "offset {})", SHARE_STATE_TOPIC, shard.partition,
                       len(shard.core.states), shard.load_offset)
        self._drain(shard)

    def _tick(self, now: int) -> None:
        for shard in list(self.shards.values()):
            if shard.busy and now - shard.busy_since > _STUCK_MS:
                self._log.error("append to {}-{} unanswered for {} ms: reloading",
                                SHARE_STATE_TOPIC, shard.partition, now - shard.busy_since)
                self._reload(shard, (), (E.COORDINATOR_NOT_AVAILABLE, "reloading"))
            if shard.core is None:
                if shard.loading and now - shard.loading_since > _STUCK_MS:
                    shard.loading = False  # the answer was lost: ask again
                self._load(shard)
