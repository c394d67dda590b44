"""TxnCoordinatorActor: hosts the pure transaction coordinator core
(coordinator/transactions/) for the ``__transaction_state`` partitions this broker leads.
See docs/transactions.md, "Coordinator actor".

One actor per broker, one *shard* per led partition (actors/txn_shard.py): a
``TransactionCoordinator`` at ``coordinator_epoch`` = that partition's leader epoch, loaded
(``TransactionCoordinator.load``) by writing a barrier record with acks=all and then reading
the partition from offset 0 to the high watermark. Messages (``tell`` only):

* ``TxnRequest``    InitProducerId (with a transactional id), AddPartitionsToTxn (also
                    ``verify_only``), AddOffsetsToTxn, EndTxn, and where to answer
* ``ImageChanged``  a new metadata image: gain/lose shards, re-aim pending markers
* ``TxnTick``       retries (loads, markers), timed-out transactions
                    (``transaction.abort.timed.out.transaction.cleanup.interval.ms``), expired
                    transactional ids (``transaction.remove.expired.transaction.cleanup.interval.ms``);
                    given the ticker's ``schedule`` the actor arms one timer for when a tick
                    next has work (actors/wakeup.py): none on a broker without transactions

Every operation of a shard goes through its queue; the queued operations run one after the
other against the core (which applies their records at once), their records go out as ONE
acks=all append to the partition, and only once it is acknowledged are they answered and
their effects (marker writes, actors/txn_markers.py) carried out. One append per shard is in
flight. A request that meets its transaction's markers in flight is held until they are
written (``Shard.park``). If it fails the shard reloads from the log (what is durable is the truth) and the
operations get NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE. A shard not yet loaded answers
COORDINATOR_LOAD_IN_PROGRESS, an id of a partition led elsewhere NOT_COORDINATOR.

Producer ids: the core's ``allocate()`` is synchronous, so the actor keeps a small pool of ids
(actors/txn_ids.py), each obtained from the active controller ahead of need. An operation
that finds the pool empty raises before changing anything (the core calls ``allocate``
before applying) and waits at the head of its queue until ids arrive. Effects: markers are
sent (actors/txn_markers.py) once the Prepare* record is durable; when every partition
answered, ``markers_written`` goes through the queue like any operation. Nothing here waits
on another actor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
import pykka
from loguru import logger
from rillet.coordinator import transactions as T
from rillet.coordinator.metadata import MetadataImage
from rillet.coordinator.transactions import admin as TA
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P

from rillet.frozen import frozen

from . import partition as R
from .configs import BrokerConfig
from .group_coordinator import partition_for
from .runtime import DispatchedActor
from .ticker import now_ms
from .txn_ids import NoProducerId, ProducerIdPool
from .txn_markers import MarkerSender, MarkerToken
from .txn_shard import MORE, RETRY, LoadStep, Shard, finish
from .txn_wire import (
    TXN_TOPIC,
    error_response,
    find_coordinator,
    operation,
    to_wire,
)
from .wakeup import Schedule, WokenWhenDue, earliest, shard_due

__all__ = ["TXN_TOPIC", "ImageChanged", "TxnCoordinatorActor", "TxnRequest", "TxnTick",
           "error_response", "find_coordinator"]

E = P.ErrorCode
_STUCK_MS = 30_000
_BATCH_MAX_OPS = 500
TICK_MS = 100  # the shortest time between ticks: loads and waits for ids retried at this pace
_PARK_MS = 2_000  # how long a request may wait for its transaction's markers (Shard.park)


# ---------------------------------------------------------------------------------- messages


@frozen
class TxnRequest:
    request: object
    respond: Callable[[object], None]


@frozen
class ImageChanged:
    image: MetadataImage


@frozen
class TxnTick:
    now_ms: int


@frozen
class _AppendDone:
    partition: int
    generation: int
    error_code: int
    ops: tuple
    """(done, result or None, error or None) per operation."""


@frozen
class _ProducerId:
    response: object
    """The controller's InitProducerIdResponse, or an error reply / None."""


@frozen
class _MarkerReply:
    partition: int
    generation: int
    token: MarkerToken
    response: object | None


# ------------------------------------------------------------------------------------- actor


class TxnCoordinatorActor(WokenWhenDue, DispatchedActor):
    """``ctx``: the BrokerContext (image, replicas, controller, configs). ``send_to_broker(
    broker_id, request, timeout_ms)``: a future (``add_done_callback``) of the answer from
    that broker's inter-broker listener, or None when it has no address."""

    tick_message = TxnTick

    def __init__(self, ctx: Any, send_to_broker: Callable[[int, object, int], Any],
                 clock: Callable[[], int] = now_ms, schedule: Schedule | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.clock = clock
        self._wake = self._wakeup(schedule, clock, TICK_MS)
        self.send_to_broker = send_to_broker
        c = BrokerConfig.of(ctx.broker_configs)
        self.core_config = {
            "max_timeout_ms": c.int("transaction.max.timeout.ms"),
            "expiration_ms": c.int("transactional.id.expiration.ms"),
        }
        self.abort_interval_ms = c.int("transaction.abort.timed.out.transaction.cleanup.interval.ms")
        self.expire_interval_ms = c.int(
            "transaction.remove.expired.transaction.cleanup.interval.ms")
        self.offsets_partitions = c.int("offsets.topic.num.partitions")
        self.image = MetadataImage()
        self.shards: dict[int, Shard] = {}
        self.num_partitions = 0
        self.ids = ProducerIdPool(self._ask_for_id, clock)
        self._generation = 0
        self._next_abort = 0
        self._next_expire = 0
        self._log = logger.bind(broker=ctx.broker_id, actor="txn-coordinator")

    # ------------------------------------------------------------------------- dispatch

    def _next_due(self, now: int) -> int | None:
        """When ``_tick`` next has work: an append or a load step unanswered for too long, a
        load to retry, a marker write to retry, a held request's deadline, an operation
        waiting for producer ids; and while any transactional id is known, the periodic
        checks for timed-out transactions and expired ids (at their configured intervals,
        as before: ``abort_timed_out`` / ``expire_transactional_ids`` scan every id)."""
        due = None
        known = False
        for shard in self.shards.values():
            due = earliest(due, shard_due(shard, now, _STUCK_MS))
            if shard.core is None:
                continue
            due = earliest(due, shard.markers.next_due_ms())
            for held in shard.parked.values():
                due = earliest(due, min(h[3] for h in held))
            if shard.queue and not shard.busy:
                due = earliest(due, now)  # waiting for producer ids: asked again
            known = known or bool(shard.core.transactions)
        if known:
            due = earliest(due, min(self._next_abort, self._next_expire))
        return due

    def _dispatch(self, message: Any) -> None:
        try:
            match message:
                case TxnRequest(request=P.ListTransactionsRequest()):
                    message.respond(self._list(message.request))
                case TxnRequest(request=P.DescribeTransactionsRequest()):
                    message.respond(self._describe(message.request))
                case TxnRequest():
                    self._request(message.request, message.respond)
                case ImageChanged():
                    self._image_changed(message.image)
                case TxnTick():
                    self._tick(message.now_ms)
                case LoadStep():
                    self._load_step(message)
                case _AppendDone():
                    self._append_done(message)
                case _ProducerId():
                    self._producer_id(message.response)
                case _MarkerReply():
                    self._marker_reply(message)
                case _:
                    self._log.warning("ignoring unknown message {!r}", type(message).__name__)
        except Exception:  # noqa: BLE001 - never let one message stop the coordinator
            self._log.exception("transaction coordinator failed on {}", type(message).__name__)
            if isinstance(message, TxnRequest):
                message.respond(error_response(message.request, E.UNKNOWN_SERVER_ERROR, "bug"))

    def _request(self, req: Any, respond: Callable[[object], None]) -> None:
        tid = getattr(req, "transactional_id", None)
        if not isinstance(tid, str) or not tid:
            respond(error_response(req, E.INVALID_REQUEST, "the transactional id is empty"))
            return
        if self.num_partitions <= 0:
            respond(error_response(req, E.COORDINATOR_NOT_AVAILABLE, f"no {TXN_TOPIC} yet"))
            return
        shard = self.shards.get(partition_for(tid, self.num_partitions))
        if shard is None:
            respond(error_response(req, E.NOT_COORDINATOR, f"not the coordinator of {tid!r}"))
            return
        if shard.core is None:
            respond(error_response(req, E.COORDINATOR_LOAD_IN_PROGRESS, "loading"))
            return
        fn = operation(req, self.image, self.offsets_partitions, self._allocate, self.clock)
        if fn is None:
            return respond(error_response(req, E.INVALID_REQUEST, f"{req.API} not handled"))

        def done(result: Any, error: tuple[int, str] | None) -> None:
            respond(error_response(req, *error) if error else to_wire(req, result))

        shard.queue.append((fn, done, tid))
        self._drain(shard)

    # ---------------------------------------------------------------------- admin reads

    def _list(self, req: P.ListTransactionsRequest) -> P.ListTransactionsResponse:
        """The ids of the loaded shards (coordinator/transactions/admin.py)."""
        unknown = TA.unknown_states(req.state_filters)
        found = TA.list_transactions(
            (sh.core for sh in self.shards.values() if sh.core is not None),
            states=req.state_filters, producer_ids=req.producer_id_filters,
            min_duration_ms=req.duration_filter_ms, now_ms=self.clock())
        return P.ListTransactionsResponse(
            unknown_state_filters=unknown,
            transaction_states=tuple(P.ListedTransaction(
                transactional_id=t.transactional_id, producer_id=t.producer_id,
                transaction_state=t.state) for t in found))

    def _describe(self, req: P.DescribeTransactionsRequest) -> P.DescribeTransactionsResponse:
        out = []
        for tid in req.transactional_ids:
            shard = (self.shards.get(partition_for(tid, self.num_partitions))
                     if tid and self.num_partitions > 0 else None)
            if shard is None:
                out.append(P.DescribedTransaction(transactional_id=tid,
                                                  error_code=E.NOT_COORDINATOR))
                continue
            if shard.core is None:
                out.append(P.DescribedTransaction(transactional_id=tid,
                                                  error_code=E.COORDINATOR_LOAD_IN_PROGRESS))
                continue
            m = TA.describe(shard.core, tid)
            if m is None:
                out.append(P.DescribedTransaction(transactional_id=tid,
                                                  error_code=E.TRANSACTIONAL_ID_NOT_FOUND))
                continue
            out.append(P.DescribedTransaction(
                transactional_id=tid, transaction_state=m.state.value,
                transaction_timeout_ms=m.timeout_ms, transaction_start_time_ms=TA.start_ms(m),
                producer_id=m.producer_id, producer_epoch=m.producer_epoch,
                topics=tuple(P.TxnTopic(name=t, partitions=ps) for t, ps in
                             TA.partitions_by_topic(m.partitions).items())))
        return P.DescribeTransactionsResponse(transaction_states=tuple(out))

    # ------------------------------------------------------------------------- mutations

    def _drain(self, shard: Shard) -> None:
        """Run the queued operations of ``shard`` as one write (see the module doc)."""
        while shard.core is not None and not shard.busy and shard.queue:
            ops: list = []
            records: list[T.TxnRecord] = []
            waiting_for_ids = False
            while shard.queue and len(ops) < _BATCH_MAX_OPS:
                fn, done, tid = shard.queue[0]
                try:
                    result = fn(shard.core)
                except NoProducerId:
                    waiting_for_ids = True
                    break
                except T.IllegalTransition as e:
                    self._log.error("transaction core refused its own transition: {}", e)
                    result, error = None, (E.UNKNOWN_SERVER_ERROR, str(e))
                else:
                    error = None
                    if shard.park(fn, done, tid, result, self.clock() + _PARK_MS):
                        continue
                    records.extend(result.records)
                shard.queue.popleft()
                ops.append((done, result, error))
            if not records:
                finish(ops)
                self._carry_out(shard, ops)
                if waiting_for_ids:
                    return  # until ids arrive (_producer_id drains again)
                continue
            self._append(shard, records, ops)

    def _append(self, shard: Shard, records: list[T.TxnRecord], ops: list) -> None:
        ref = self.ctx.replicas.get((TXN_TOPIC, shard.partition))
        if ref is None:
            self._reload(shard, ops, (E.NOT_COORDINATOR, f"{TXN_TOPIC} not hosted here"))
            return
        batch = BatchBuilder()
        ts = self.clock()
        for record in records:
            key, value = T.to_kv(record)
            batch.append(ts, cbor2.dumps(key), None if value is None else cbor2.dumps(value))
        shard.busy, shard.busy_since = True, self.clock()
        me, partition, generation, done_ops = self.actor_ref, shard.partition, shard.generation, \
            tuple(ops)

        def on_appended(r: P.ProducePartitionResponse) -> None:
            try:
                me.tell(_AppendDone(partition, generation, r.error_code, done_ops))
            except pykka.ActorDeadError:
                pass

        try:
            # acks=all: the decision survives the loss of this broker
            ref.tell(R.Append(batch.build(), on_appended, acks=-1, timeout_ms=10_000))
        except pykka.ActorDeadError:
            shard.busy = False
            self._reload(shard, ops, (E.NOT_COORDINATOR, f"{TXN_TOPIC} not hosted here"))

    def _append_done(self, msg: _AppendDone) -> None:
        shard = self.shards.get(msg.partition)
        if shard is None or shard.generation != msg.generation:
            finish(msg.ops, (E.NOT_COORDINATOR, "the coordinator moved while writing"))
            return
        shard.busy = False
        if msg.error_code != E.NONE:
            self._log.warning("append to {}-{} failed: {}", TXN_TOPIC, msg.partition,
                              msg.error_code)
            wire = E.NOT_COORDINATOR if msg.error_code == E.NOT_LEADER_OR_FOLLOWER else (
                E.COORDINATOR_NOT_AVAILABLE)
            self._reload(shard, msg.ops, (wire, f"could not write (error {msg.error_code})"))
            return
        finish(msg.ops)
        self._carry_out(shard, msg.ops)
        shard.unpark()
        self._drain(shard)

    def _carry_out(self, shard: Shard, ops: Any) -> None:
        """The effects of durable operations: start writing their markers."""
        now = self.clock()
        for _done, result, _error in ops:
            for effect in getattr(result, "effects", ()):
                self._markers_complete(shard, shard.markers.add(effect, now))

    def _reload(self, shard: Shard, ops: Any, error: tuple[int, str]) -> None:
        """The in-memory state may be ahead of the log: answer ``ops`` with ``error`` and
        rebuild the shard from what is durable (queued operations wait for the load)."""
        finish(ops, error)
        shard.unpark(everything=True)
        self._generation += 1
        shard.reset(self._generation)
        self._load(shard)

    # ---------------------------------------------------------------------- producer ids

    def _allocate(self) -> int:
        return self.ids.allocate()

    def _ask_for_id(self) -> bool:
        """One InitProducerId (no transactional id) to the controller, forwarded to the
        active one; the answer comes back as ``_ProducerId``."""
        controller = self.ctx.controller
        if controller is None:
            return False
        from . import controller as C

        me = self.actor_ref

        def reply(response: object) -> None:
            try:
                me.tell(_ProducerId(response))
            except pykka.ActorDeadError:
                pass

        try:
            controller.tell(C.Admin(P.InitProducerIdRequest(timeout_ms=10_000), reply))
        except pykka.ActorDeadError:
            return False
        return True

    def _producer_id(self, response: object) -> None:
        if self.ids.on_answer(response):
            for shard in list(self.shards.values()):
                self._drain(shard)
        else:
            self._log.debug("no producer id from the controller: {!r}", response)

    # ----------------------------------------------------------------------------- markers

    def _send_markers(self, shard_partition: int, generation: int, leader: int,
                      request: P.WriteTxnMarkersRequest, token: MarkerToken) -> None:
        me = self.actor_ref

        def answered(response: object | None) -> None:
            try:
                me.tell(_MarkerReply(shard_partition, generation, token, response))
            except pykka.ActorDeadError:
                pass

        try:
            future = self.send_to_broker(leader, request, 10_000)
        except Exception:  # noqa: BLE001 - e.g. the endpoint is closing: retried later
            future = None
        if future is None:
            answered(None)
            return

        def done(f: Any) -> None:
            try:
                answered(f.result())
            except Exception:  # noqa: BLE001 - timed out / broker down: retried
                answered(None)

        future.add_done_callback(done)

    def _marker_reply(self, msg: _MarkerReply) -> None:
        shard = self.shards.get(msg.partition)
        if shard is None or shard.generation != msg.generation:
            return
        complete, fenced = shard.markers.on_response(msg.token, msg.response, self.clock())
        for effect in fenced:
            self._log.warning("markers of {!r} dropped: a newer coordinator owns it",
                              effect.transactional_id)
        self._markers_complete(shard, complete)

    def _markers_complete(self, shard: Shard, effects: list[T.WriteTxnMarkers]) -> None:
        for effect in effects:
            def fn(c: T.TransactionCoordinator, effect=effect) -> Any:
                return c.markers_written(effect, self.clock())

            shard.queue.append((fn, self._log_refused, None))
        if effects:
            self._drain(shard)

    def _log_refused(self, result: Any, error: Any) -> None:
        if error is not None:
            self._log.warning("background transaction operation failed: {}", error)
        elif isinstance(getattr(result, "response", None), T.TxnOutcome) and \
                result.response.error != "NONE":
            self._log.info("markers_written refused: {}", result.response.message)

    # ---------------------------------------------------------------------- leadership

    def _new_sender(self, partition: int) -> MarkerSender:
        def send(leader: int, request: P.WriteTxnMarkersRequest, token: MarkerToken) -> None:
            shard = self.shards.get(partition)  # a dropped shard's sender sends nothing
            if shard is not None:
                self._send_markers(partition, shard.generation, leader, request, token)

        return MarkerSender(send, self.image)

    def _image_changed(self, image: MetadataImage) -> None:
        self.image = image
        topic = image.topics.get(TXN_TOPIC)
        self.num_partitions = len(topic.partitions) if topic else 0
        led = {p: info.leader_epoch for p, info in (topic.partitions.items() if topic else ())
               if info.leader == self.ctx.broker_id}
        for p in list(self.shards):
            if p not in led or self.shards[p].leader_epoch != led[p]:
                shard = self.shards.pop(p)
                self._log.info("no longer transaction coordinator for {}-{}", TXN_TOPIC, p)
                shard.markers.drop_all()
                for _fn, done, _tid in shard.queue:
                    done(None, (E.NOT_COORDINATOR, "the coordinator moved"))
                shard.unpark(everything=True)
        now = self.clock()
        for p, epoch in led.items():
            if p not in self.shards:
                self._generation += 1
                shard = self.shards[p] = Shard(p, epoch, self._generation, self._new_sender(p))
                self._log.info("transaction coordinator for {}-{} (epoch {}): loading",
                               TXN_TOPIC, p, epoch)
                self._load(shard)
        for shard in self.shards.values():
            self._markers_complete(shard, shard.markers.on_image(image, now))
        if self.shards:
            self.ids.refill()

    def _load(self, shard: Shard) -> None:
        """The next step of loading ``shard`` (txn_shard.py); retried on ticks."""
        shard.load(self.ctx.replicas.get((TXN_TOPIC, shard.partition)), self._tell_me,
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
            self._log.info("loading {}-{}: error {} (retried)", TXN_TOPIC, shard.partition, code)
            return
        if outcome == MORE:
            self._load(shard)
            return
        shard.core, effects = T.TransactionCoordinator.load(
            shard.load_records, shard.leader_epoch, **self.core_config)
        shard.load_records = []
        self._log.info("transaction coordinator for {}-{} loaded: {} ids, {} to finish "
                       "(up to offset {})", TXN_TOPIC, shard.partition,
                       len(shard.core.transactions), len(effects), shard.load_offset)
        now = self.clock()
        for effect in effects:  # Prepare* transactions: their markers again
            self._markers_complete(shard, shard.markers.add(effect, now))
        self.ids.refill()
        self._drain(shard)

    # ---------------------------------------------------------------------------- timers

    def _tick(self, now: int) -> None:
        abort = now >= self._next_abort
        if abort:
            self._next_abort = now + self.abort_interval_ms
        expire = now >= self._next_expire
        if expire:
            self._next_expire = now + self.expire_interval_ms
        for shard in list(self.shards.values()):
            if shard.busy and now - shard.busy_since > _STUCK_MS:
                self._log.error("append to {}-{} unanswered for {} ms: reloading", TXN_TOPIC,
                                shard.partition, now - shard.busy_since)
                self._reload(shard, (), (E.COORDINATOR_NOT_AVAILABLE, "reloading"))
            if shard.core is None:
                if shard.loading and now - shard.loading_since > _STUCK_MS:
                    shard.loading = False  # the answer was lost: ask again
                self._load(shard)
                continue
            self._markers_complete(shard, shard.markers.poll(now))
            shard.unpark(now)
            if abort:
                shard.queue.append((lambda c, t=now: c.abort_timed_out(t, self._allocate),
                                    self._log_aborted, None))
            if expire:
                shard.queue.append((lambda c, t=now: c.expire_transactional_ids(t),
                                    self._log_refused, None))
            self._drain(shard)
        if any(s.queue for s in self.shards.values()):
            self.ids.refill(force=True)  # an operation may wait for an id

    def _log_aborted(self, result: Any, error: Any) -> None:
        if error is not None:
            self._log.warning("aborting timed-out transactions failed: {}", error)
        elif result.response:
            self._log.info("aborted timed-out transactions of {}", list(result.response))

