"""GroupCoordinatorActor: hosts the pure group-coordinator core (coordinator/groups/) for the
``__consumer_offsets`` partitions this broker leads. See docs/consumer-groups.md.

One actor per broker, one *shard* per led offsets partition. Messages (``tell`` only):

* ``GroupRequest``  a decoded group API request and its ``respond`` callback (from a session)
* ``ImageChanged``  a new metadata image: gain/lose shards, feed topic partition counts to
                    ``on_metadata``, drop offsets of deleted topics
* ``GroupTick``     session/rebalance timeouts, held heartbeats due (and, now and then,
                    offset expiry); given the ticker's ``schedule`` the actor arms one
                    timer for when a tick next has work (actors/wakeup.py, ``_next_due``)
* ``TxnMarkerWritten`` (actors/txn_messages.py) a COMMIT/ABORT marker is replicated on a led
                    offsets partition: the producer's pending transactional offsets become
                    committed or are dropped (KIP-447, coordinator/groups/txn_offsets.py)

A mutation computes ``Result(state, records, response)`` from the shard's current state,
appends the records (CBOR-encoded ``to_kv`` pairs, one batch) through the partition's
``PartitionReplica``, and only when the append is acknowledged adopts the new state and
replies. One append per shard is in flight; later mutations of that shard wait in its queue
(reads answer at once from the adopted state). Nothing here waits on another actor: replies
of replicas come back as messages. A shard gained is loaded by writing a barrier (acks=all,
``group_txn.BARRIER_KEY``: the new leader's high watermark then covers every record the old
leader acknowledged), then reading its partition from offset 0 to the high watermark and replaying its batches and markers
(``replay_log``; a TxnOffsetCommit's records are a transactional batch of the producer, written
alone with ``Append(verified=True)``); until then its groups get
COORDINATOR_LOAD_IN_PROGRESS, and groups of shards this broker does not lead NOT_COORDINATOR.

Heartbeats are long polls (``max_wait_ms``; the rules are the core's, coordinator/groups/
longpoll.py): an answer that tells the member nothing new is held in the shard's ``parked``
(one per member) until its deadline (answered on a tick) or until an adopted change of its
group means the member may have something to hear; the heartbeat is then handled again
through the shard's queue like a fresh one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import cbor2
import pykka
from loguru import logger
from rillet.coordinator import groups as G
from rillet.coordinator.groups import longpoll
from rillet.coordinator.groups.errors import GroupError, IllegalTransition
from rillet.coordinator.metadata import MetadataImage, gone_or_recreated, user_topic_ids
from rillet.transport import protocol as P

from rillet.frozen import frozen

from . import group_classic as CL
from . import group_txn as T
from . import group_wire as W
from . import partition as R
from . import share_group as S
from .group_locate import (  # noqa: F401 - re-exported: where the group tools are found
    OFFSETS_TOPIC,
    find_coordinator,
    group_config,
    java_string_hashcode,
    partition_for,
)
from .runtime import DispatchedActor
from .shard_load import finish as _finish
from .ticker import now_ms
from .txn_messages import TxnMarkerWritten
from .wakeup import Schedule, WokenWhenDue, earliest

E = P.ErrorCode
_LOAD_CHUNK = 1 << 20
_EXPIRE_EVERY_MS = 60_000
_STUCK_APPEND_MS = 30_000
TICK_MS = 200  # the shortest time between ticks: loads and queued core ticks retried at this pace
_BATCH_MAX_OPS = 500  # operations written together in one append
_BATCH_MAX_BYTES = 256 << 10  # stop adding operations past this much record data


# ---------------------------------------------------------------------------------- messages


@frozen
class GroupRequest:
    request: object
    respond: Callable[[object], None]


@frozen
class ImageChanged:
    image: MetadataImage


@frozen
class GroupTick:
    now_ms: int


@frozen
class _ReadDone:
    partition: int
    generation: int
    response: P.FetchPartitionResponse


@frozen
class _BarrierDone:
    partition: int
    generation: int
    response: P.ProducePartitionResponse


@frozen
class _AppendDone:
    partition: int
    generation: int
    response: P.ProducePartitionResponse | None
    state: G.CoordinatorState
    """The state after every operation of the batch (adopted once it is durable)."""
    records: tuple
    ops: tuple
    """(done, result or None, error or None) per operation, in queue order."""
    producer: G.TxnProducer | None = None
    """Set: the batch was a TxnOffsetCommit's, transactional for this producer."""


class _CoordinatorError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class _Parked:
    """A held heartbeat: the member's request, where to answer, the answer so far."""

    request: G.ConsumerGroupHeartbeatRequest
    respond: Callable[[object], None]
    response: G.ConsumerGroupHeartbeatResponse
    deadline: int
    seq: int


@dataclass(slots=True)
class _Shard:
    partition: int
    leader_epoch: int
    generation: int
    loaded: bool = False
    state: G.CoordinatorState = field(default_factory=G.CoordinatorState)
    load_offset: int = 0
    load_entries: list = field(default_factory=list)
    early_markers: list = field(default_factory=list)
    """Markers announced while loading: applied after the load unless it read them."""
    reading: bool = False
    reading_since: int = 0
    barrier_written: bool = False
    busy: bool = False
    busy_since: int = 0
    queue: deque = field(default_factory=deque)
    parked: dict[str, dict[str, _Parked]] = field(default_factory=dict)
    """group id -> member id -> its held heartbeat."""
    latest: dict[tuple[str, str], int] = field(default_factory=dict)
    """(group id, member id) -> seq of its newest heartbeat not yet answered."""
    classic: CL.ClassicHost | None = None
    """The shard's classic groups (actors/group_classic.py), set once it is loaded."""
    due_of: object = None
    """The ``state`` whose deadlines ``state_due`` holds (it is immutable: the scan of its
    members is done once per adopted state, not once per message)."""
    state_due: int | None = None
    group_dues: dict = field(default_factory=dict)
    """id of a group's timer mapping -> (that mapping, its earliest deadline): the core
    replaces only the mappings of the groups an operation changed (``_timers_due``)."""


# ------------------------------------------------------------------------------------- actor


class GroupCoordinatorActor(WokenWhenDue, DispatchedActor):
    tick_message = GroupTick

    def __init__(self, ctx: Any, clock: Callable[[], int] = now_ms,
                 schedule: Schedule | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.clock = clock  # wall-clock ms; tests pass a fake one
        self._wake = self._wakeup(schedule, clock, TICK_MS)
        self.core = G.GroupCoordinator(group_config(ctx.broker_configs))
        self.classic_config = CL.classic_config(ctx.broker_configs)
        self.shards: dict[int, _Shard] = {}
        if getattr(ctx, "metrics", None) is not None:  # group lag (actors/metrics_sources.py)
            ctx.metrics.sources.group_shards = self.shards
        self.num_partitions = 0
        self.topics: dict[str, int] = {}
        self._topic_ids: dict[str, str] = {}  # the topics' ids: a name created again is new
        self.image = MetadataImage()  # the latest: share groups' configs (actors/share_group.py)
        self._generation = 0
        self._hb_seq = 0
        self._next_expire = 0
        self._log = logger.bind(broker=ctx.broker_id, actor="group-coordinator")

    # ------------------------------------------------------------------------- dispatch

    def _next_due(self, now: int) -> int | None:
        """When ``_tick`` next has work: an append or a load read unanswered for too long, a
        load to retry, a held heartbeat's deadline, the core's session and rebalance
        deadlines (consumer, share and classic groups; a classic group to forget), and while
        a shard is loaded the offset expiry every ``_EXPIRE_EVERY_MS``."""
        due = None
        for shard in self.shards.values():
            if shard.busy:
                due = earliest(due, shard.busy_since + _STUCK_APPEND_MS + 1)
            for members in shard.parked.values():
                due = earliest(due, min(held.deadline for held in members.values()))
            if not shard.loaded:
                due = earliest(due, shard.reading_since + _STUCK_APPEND_MS + 1
                               if shard.reading else now)
                continue
            due = earliest(due, self._next_expire)
            if shard.due_of is not shard.state:
                shard.due_of = shard.state
                shard.state_due = earliest(_timers_due(shard),
                                           shard.state.share.next_deadline_ms())
            due = earliest(due, shard.state_due, CL.next_due(shard, now))
        return due

    def _dispatch(self, message: Any) -> None:
        try:
            match message:
                case GroupRequest():
                    self._request(message.request, message.respond)
                case ImageChanged():
                    self._image_changed(message.image)
                case GroupTick():
                    self._tick(message.now_ms)
                case _ReadDone():
                    self._read_done(message)
                case _BarrierDone():
                    self._barrier_done(message)
                case _AppendDone():
                    self._append_done(message)
                case TxnMarkerWritten():
                    self._marker_written(message)
                case _:
                    self._log.warning("ignoring unknown message {!r}", type(message).__name__)
        except Exception:  # noqa: BLE001 - never let one message stop the coordinator
            self._log.exception("group coordinator failed on {}", type(message).__name__)
            if isinstance(message, GroupRequest):
                message.respond(error_response(message.request, E.UNKNOWN_SERVER_ERROR, "bug"))

    def _shard_for(self, group_id: str) -> _Shard:
        if self.num_partitions <= 0:
            raise _CoordinatorError(E.COORDINATOR_NOT_AVAILABLE, "no __consumer_offsets yet")
        shard = self.shards.get(partition_for(group_id, self.num_partitions))
        if shard is None:
            raise _CoordinatorError(E.NOT_COORDINATOR, f"not the coordinator of {group_id!r}")
        if not shard.loaded:
            raise _CoordinatorError(E.COORDINATOR_LOAD_IN_PROGRESS, "loading the group state")
        return shard

    def _request(self, req: Any, respond: Callable[[object], None]) -> None:
        match req:
            case P.ListGroupsRequest():
                self._list_groups(req, respond)
            case P.ConsumerGroupDescribeRequest() | P.ShareGroupDescribeRequest():
                self._describe(req, respond)
            case P.DeleteGroupsRequest():
                self._delete_groups(req, respond)
            case CL.ClassicList():
                respond([row for s in self.shards.values() if s.loaded for row in CL.listed(s)])
            case CL.ClassicDescribe():
                respond([self._classic_view(gid) for gid in req.group_ids])
            case _:
                try:
                    shard = self._shard_for(req.group_id)
                except _CoordinatorError as e:
                    respond(error_response(req, e.code, e.message))
                    return
                if isinstance(req, CL.REQUESTS):
                    CL.handle(self, shard, req, respond)
                else:
                    self._single(shard, req, respond)

    def _classic_view(self, gid: str) -> dict | CL.Failure:
        try:
            return CL.describe(self._shard_for(gid), gid)
        except _CoordinatorError as e:
            return CL.Failure(e.code, e.message)

    def _single(self, shard: _Shard, req: Any, respond: Callable[[object], None]) -> None:
        now = self.clock()
        if not isinstance(req, P.ShareGroupHeartbeatRequest | P.ConsumerGroupHeartbeatRequest) \
                and S.is_share_group(shard.state, req.group_id):
            respond(error_response(req, E.INCONSISTENT_GROUP_PROTOCOL,
                                   f"{req.group_id!r} is a share group: it has no offsets"))
            return
        if isinstance(req, P.OffsetFetchRequest):
            try:
                resp = self.core.fetch_offsets(shard.state, W.fetch_request(req))
            except GroupError as e:
                respond(error_response(req, e.code, str(e)))
                return
            respond(W.fetch_response(req, resp))
            return
        if isinstance(req, P.ShareGroupHeartbeatRequest):
            config = S.config_of(self.ctx, self.image)(req.group_id)
            self._mutate(shard, *S.heartbeat_op(req, self.topics, self.clock, config, respond))
            return
        if isinstance(req, P.ConsumerGroupHeartbeatRequest):
            if CL.blocks_consumer_heartbeat(shard.classic, req.group_id):
                respond(P.ConsumerGroupHeartbeatResponse(
                    error_code=E.GROUP_ID_NOT_FOUND,
                    error_message=f"{req.group_id!r} is a classic group"))
                return
            core_req = W.heartbeat_request(req)
            key = (core_req.group_id, core_req.member_id)
            members = shard.parked.get(key[0])
            held = members.pop(key[1], None) if members else None
            if held is not None:  # the member asks again: its older poll ends now
                if not members:
                    del shard.parked[key[0]]
                held.respond(W.heartbeat_response(held.response))
            self._hb_seq += 1
            shard.latest[key] = self._hb_seq
            shard.queue.append(self._heartbeat_op(shard, core_req, respond, self._hb_seq, None))
            self._drain(shard)
            return
        if isinstance(req, P.OffsetCommitRequest):
            commit = W.commit_request(req)

            def fn(state: G.CoordinatorState) -> G.Result:
                # a classic member's commit: its generation is checked here
                return self.core.commit_offsets(state, CL.commit_request(shard.classic, commit),
                                                now)

            to_wire = W.commit_response
        elif isinstance(req, P.TxnOffsetCommitRequest):
            txn_commit = W.txn_commit_request(req)

            def fn(state: G.CoordinatorState) -> G.Result:
                # a classic member's (Kafka clients): its generation is checked here
                checked = CL.txn_commit_request(shard.classic, txn_commit)
                return self.core.txn_commit_offsets(state, checked, now)

            fn.alone = True  # type: ignore[attr-defined]  # its batch is transactional
            to_wire = W.txn_commit_response
        elif isinstance(req, P.OffsetDeleteRequest):
            tps = [G.TopicPartition(t.topic, p) for t in req.topics for p in t.partitions]

            def fn(state: G.CoordinatorState) -> G.Result:
                # a classic group's members subscribe in their own metadata
                return CL.delete_offsets(self.core, shard.classic, state, req.group_id, tps)

            to_wire = W.delete_offsets_response
        else:
            respond(error_response(req, E.INVALID_REQUEST, f"{req.API} not handled"))
            return

        def done(result: G.Result | None, error: tuple[int, str] | None) -> None:
            if error is not None:
                respond(error_response(req, *error))
            else:
                respond(to_wire(result.response))

        self._mutate(shard, fn, done)

    # ------------------------------------------------------------------- heartbeat polls

    def _heartbeat_op(self, shard: _Shard, req: G.ConsumerGroupHeartbeatRequest,
                      respond: Callable[[object], None], seq: int,
                      deadline: int | None) -> tuple[Callable, Callable]:
        """A queue entry handling ``req``; ``deadline`` is set when it is a held heartbeat
        handled again (it keeps the deadline it was first given)."""
        key = (req.group_id, req.member_id)

        def fn(state: G.CoordinatorState) -> G.Result:
            return self.core.heartbeat(state, req, self.topics, self.clock())

        def done(result: G.Result | None, error: tuple[int, str] | None) -> None:
            current = shard.latest.get(key) == seq and self.shards.get(shard.partition) is shard
            if error is None and current:
                now = self.clock()
                until = longpoll.park_deadline(self.core.config, req, result.response, now)
                if until is not None:
                    until = min(until, deadline) if deadline is not None else until
                    if until > now:
                        shard.parked.setdefault(key[0], {})[key[1]] = _Parked(
                            req, respond, result.response, until, seq)
                        return
            if current:
                del shard.latest[key]
            if error is not None:
                respond(P.ConsumerGroupHeartbeatResponse(error_code=int(error[0]),
                                                         error_message=error[1]))
            else:
                respond(W.heartbeat_response(result.response))

        return fn, done

    def _wake_parked(self, shard: _Shard, groups: frozenset[str],
                     state: G.CoordinatorState | None = None) -> None:
        """After a change of ``groups`` (adopted, or ``state`` of a batch being built): queue
        again the held heartbeats whose member may now hear something (the caller drains)."""
        state = shard.state if state is None else state
        for gid in groups:
            members = shard.parked.get(gid)
            if not members:
                continue
            for mid in [m for m in members if longpoll.needs_answer(state, gid, m)]:
                held = members.pop(mid)
                shard.queue.append(self._heartbeat_op(shard, held.request, held.respond,
                                                      held.seq, held.deadline))
            if not members:
                del shard.parked[gid]

    def _answer_parked(self, shard: _Shard, now: int | None,
                       error: tuple[int, str] | None = None) -> None:
        """Answer the held heartbeats due at ``now`` (all of them when ``now`` is None) with
        their last answer, or with ``error``."""
        due = [(gid, mid) for gid, members in shard.parked.items()
               for mid, held in members.items() if now is None or held.deadline <= now]
        for gid, mid in due:
            members = shard.parked[gid]
            held = members.pop(mid)
            if not members:
                del shard.parked[gid]
            shard.latest.pop((gid, mid), None)
            if error is not None:
                held.respond(P.ConsumerGroupHeartbeatResponse(error_code=int(error[0]),
                                                              error_message=error[1]))
            else:
                held.respond(W.heartbeat_response(held.response))

    # ------------------------------------------------------------------------- mutations

    def _mutate(self, shard: _Shard, fn: Callable, done: Callable) -> None:
        shard.queue.append((fn, done))
        self._drain(shard)

    def _drain(self, shard: _Shard) -> None:
        """Run the queued operations of ``shard`` as one write: each sees the state the ones
        before it left, their records go out in one batch (one acks=all append, as Kafka's
        coordinator runtime batches writes), and only once it is durable is the last state
        adopted and every operation answered. Without records nothing waits."""
        while shard.loaded and not shard.busy and shard.queue:
            state = shard.state
            ops: list[tuple[Callable, G.Result | None, tuple[int, str] | None]] = []
            pairs: list[tuple[bytes, bytes | None]] = []
            records: list = []
            size = 0
            woken = 0
            while len(ops) < _BATCH_MAX_OPS and size < _BATCH_MAX_BYTES:
                if not shard.queue:
                    # held heartbeats this batch gives news to join it: their answers go
                    # out with it, one write sooner
                    touched = longpoll.touched_groups(records[woken:])
                    woken = len(records)
                    self._wake_parked(shard, touched, state)
                    if not shard.queue:
                        break
                if ops and getattr(shard.queue[0][0], "alone", False):
                    break  # written (or adopted) on its own, after this batch
                fn, done = shard.queue.popleft()
                try:
                    result = fn(state)
                except IllegalTransition as e:
                    self._log.error("group core refused its own transition: {}", e)
                    ops.append((done, None, (E.UNKNOWN_SERVER_ERROR, str(e))))
                    continue
                except GroupError as e:
                    ops.append((done, None, (e.code, str(e))))
                    continue
                for record in result.records:
                    key, value = G.to_kv(record)
                    pair = (cbor2.dumps(key), None if value is None else cbor2.dumps(value))
                    size += len(pair[0]) + len(pair[1] or b"")
                    pairs.append(pair)
                records.extend(result.records)
                state = result.state
                ops.append((done, result, None))
                if getattr(fn, "alone", False):
                    break
            producer = ops[-1][1].producer if ops and ops[-1][1] is not None else None
            if not pairs:
                shard.state = state
                _finish(ops)
                continue
            ref = self.ctx.replicas.get((OFFSETS_TOPIC, shard.partition))
            if ref is None:
                _finish(ops, (E.NOT_COORDINATOR, "offsets partition not hosted here"))
                continue
            batch = T.build_batch(pairs, self.clock(), producer)
            shard.busy, shard.busy_since = True, self.clock()
            appended = _AppendDone(shard.partition, shard.generation, None, state,
                                   tuple(records), tuple(ops), producer)

            def on_appended(r: P.ProducePartitionResponse, appended=appended,
                            me=self.actor_ref) -> None:
                try:
                    me.tell(replace(appended, response=r))
                except pykka.ActorDeadError:
                    pass

            try:
                # acks=all: a commit survives the loss of this broker (replicated offsets)
                # a TxnOffsetCommit's batch: the group coordinator checked the transaction
                # (the producer added the partition with AddOffsetsToTxn first)
                ref.tell(R.Append(batch, on_appended, acks=-1, timeout_ms=10_000,
                                  verified=producer is not None))
            except pykka.ActorDeadError:
                shard.busy = False
                _finish(ops, (E.NOT_COORDINATOR, "offsets partition not hosted here"))

    def _append_done(self, msg: _AppendDone) -> None:
        shard = self.shards.get(msg.partition)
        if shard is None or shard.generation != msg.generation:
            _finish(msg.ops, (E.NOT_COORDINATOR, "coordinator moved while writing"))
            return
        shard.busy = False
        code = msg.response.error_code
        if code == E.NONE:
            shard.state = msg.state
            _finish(msg.ops)
            self._wake_parked(shard, longpoll.touched_groups(msg.records))
        elif msg.producer is not None:
            self._log.info("transactional offsets of producer {} refused by {}-{}: {}",
                           msg.producer.producer_id, OFFSETS_TOPIC, msg.partition, code)
            if T.resets_sequence(code):
                sequences = dict(shard.state.producer_sequences)
                sequences.pop(msg.producer.producer_id, None)
                shard.state = replace(shard.state, producer_sequences=sequences)
            _finish(msg.ops, T.txn_append_error(code))
        else:
            self._log.warning("append to {}-{} failed: {}", OFFSETS_TOPIC, msg.partition, code)
            wire = E.NOT_COORDINATOR if code == E.NOT_LEADER_OR_FOLLOWER else (
                E.COORDINATOR_NOT_AVAILABLE)
            _finish(msg.ops, (wire, f"could not write the group state (error {code})"))
        self._drain(shard)

    # ------------------------------------------------------------------------ multi-group

    def _list_groups(self, req: P.ListGroupsRequest, respond: Callable) -> None:
        wanted = frozenset(G.GroupState(s) for s in req.states_filter if s in _STATES) or None
        if req.states_filter and wanted is None:
            respond(P.ListGroupsResponse())
            return
        groups = []
        for shard in self.shards.values():
            if shard.loaded:
                for g in self.core.list_groups(shard.state, wanted):
                    groups.append(P.ListedGroup(group_id=g.group_id, group_state=str(g.state)))
                groups = CL.native_listed(shard.classic, groups, req.states_filter)
                groups += S.listed(shard.state.share, frozenset(req.states_filter))
        respond(P.ListGroupsResponse(groups=tuple(sorted(groups, key=lambda g: g.group_id))))

    def _describe(self, req: P.ConsumerGroupDescribeRequest | P.ShareGroupDescribeRequest,
                  respond: Callable) -> None:
        share = isinstance(req, P.ShareGroupDescribeRequest)
        out = []
        for gid in req.group_ids:
            try:
                shard = self._shard_for(gid)
            except _CoordinatorError as e:
                out.append(P.DescribedGroup(group_id=gid, error_code=e.code,
                                            error_message=e.message))
                continue
            if share and gid in shard.state.groups:
                out.append(S.inconsistent(gid, "consumer"))
            elif share:
                out.append(S.describe(shard.state.share, gid))
            elif S.is_share_group(shard.state, gid):
                out.append(S.inconsistent(gid, "share"))
            elif (classic := CL.native_described(shard.classic, gid)) is not None:
                out.append(classic)
            else:
                out.append(W.described(self.core.describe_group(shard.state, gid)))
        if share:
            respond(P.ShareGroupDescribeResponse(groups=tuple(out)))
        else:
            respond(P.ConsumerGroupDescribeResponse(groups=tuple(out)))

    def _delete_groups(self, req: P.DeleteGroupsRequest, respond: Callable) -> None:
        names = list(dict.fromkeys(req.groups_names))
        results: dict[str, P.DeletableGroupResult] = {}

        def put(gid: str, code: int = 0, message: str | None = None) -> None:
            results[gid] = P.DeletableGroupResult(group_id=gid, error_code=code,
                                                  error_message=message)
            if len(results) == len(names):
                respond(P.DeleteGroupsResponse(results=tuple(results[n] for n in names)))

        if not names:
            respond(P.DeleteGroupsResponse())
        for gid in names:
            try:
                shard = self._shard_for(gid)
            except _CoordinatorError as e:
                put(gid, e.code, e.message)
                continue

            def done(_result, error, gid=gid) -> None:
                put(gid, *(error or (0, None)))

            if S.is_share_group(shard.state, gid):
                self._mutate(shard, S.delete_fn(gid), done)
            elif CL.is_classic(shard.classic, gid):
                self._mutate(shard, CL.delete_fn(self.core, shard, gid), done)
            else:
                self._mutate(shard, lambda s, gid=gid: self.core.delete_group(s, gid), done)

    # ---------------------------------------------------------------------- leadership

    def _image_changed(self, image: MetadataImage) -> None:
        self.image = image
        topic = image.topics.get(OFFSETS_TOPIC)
        self.num_partitions = len(topic.partitions) if topic else 0
        led: dict[int, int] = {}
        if topic is not None:
            for p, info in topic.partitions.items():
                if info.leader == self.ctx.broker_id:
                    led[p] = info.leader_epoch
        for p in list(self.shards):
            if p not in led or self.shards[p].leader_epoch != led[p]:
                shard = self.shards.pop(p)
                self._log.info("no longer coordinator for {}-{}", OFFSETS_TOPIC, p)
                for _fn, done in shard.queue:
                    done(None, (E.NOT_COORDINATOR, "coordinator moved"))
                self._answer_parked(shard, None, (E.NOT_COORDINATOR, "coordinator moved"))
                CL.drop(shard.classic, E.NOT_COORDINATOR, "coordinator moved")
        for p, epoch in led.items():
            if p not in self.shards:
                self._generation += 1
                self.shards[p] = _Shard(partition=p, leader_epoch=epoch,
                                        generation=self._generation)
                self._load(self.shards[p])
        topics = {name: len(t.partitions) for name, t in image.topics.items()
                  if not name.startswith("__")}
        ids = user_topic_ids(image)
        if topics != self.topics or ids != self._topic_ids:
            # gone, or created again under its name between two images this actor saw (the
            # same name and partition count): the old topic's offsets go either way
            deleted = sorted(gone_or_recreated(self._topic_ids, ids))
            self.topics, self._topic_ids = topics, ids
            for shard in self.shards.values():
                if deleted:
                    self._mutate(shard, lambda s, d=tuple(deleted): self.core.delete_topic_offsets(
                        s, d), _ignore)
                self._mutate(shard, lambda s: self.core.on_metadata(s, self.topics, self.clock()),
                             _ignore)
                self._mutate(shard, S.metadata_fn(self.topics), _ignore)

    def _load(self, shard: _Shard) -> None:
        ref = self.ctx.replicas.get((OFFSETS_TOPIC, shard.partition))
        if ref is None or shard.reading:
            return  # retried on the next tick (the replica actor may not exist yet)
        shard.reading, shard.reading_since = True, self.clock()
        me, partition, generation = self.actor_ref, shard.partition, shard.generation

        def on_read(r: P.FetchPartitionResponse) -> None:
            try:
                me.tell(_ReadDone(partition, generation, r))
            except pykka.ActorDeadError:
                pass

        def on_barrier(r: P.ProducePartitionResponse) -> None:
            try:
                me.tell(_BarrierDone(partition, generation, r))
            except pykka.ActorDeadError:
                pass

        try:
            if not shard.barrier_written:
                ref.tell(R.Append(T.barrier_batch(self.clock()), on_barrier, acks=-1,
                                  timeout_ms=10_000))
            else:
                ref.tell(R.Read(shard.load_offset, _LOAD_CHUNK, reply=on_read, on_data=None))
        except pykka.ActorDeadError:
            shard.reading = False  # retried on the next tick

    def _barrier_done(self, msg: _BarrierDone) -> None:
        shard = self.shards.get(msg.partition)
        if shard is None or shard.generation != msg.generation:
            return
        shard.reading = False
        if msg.response.error_code != E.NONE:
            self._log.info("load barrier on {}-{}: error {} (retried)", OFFSETS_TOPIC,
                           msg.partition, msg.response.error_code)
            return  # retried on the next tick
        shard.barrier_written = True
        self._load(shard)

    def _read_done(self, msg: _ReadDone) -> None:
        shard = self.shards.get(msg.partition)
        if shard is None or shard.generation != msg.generation:
            return
        shard.reading = False
        r = msg.response
        if r.error_code != E.NONE:
            self._log.warning("loading {}-{}: error {}", OFFSETS_TOPIC, msg.partition, r.error_code)
            return  # retried on the next tick
        entries, next_offset = T.decode_entries(r.records, shard.load_offset, self._log.warning)
        shard.load_entries.extend(entries)
        progressed = next_offset > shard.load_offset
        shard.load_offset = next_offset
        if progressed and shard.load_offset < r.high_watermark:
            self._load(shard)
            return
        shard.state = self.core.on_loaded(G.replay_log(shard.load_entries), self.clock())
        shard.state = S.loaded(shard.state, self.clock(), S.config_of(self.ctx, self.image))
        shard.load_entries = []
        shard.classic = CL.loaded(shard, self.classic_config, self.clock())
        shard.loaded = True
        self._log.info("coordinator for {}-{} loaded: {} groups, {} open transactions (up to "
                       "offset {})", OFFSETS_TOPIC, shard.partition, len(shard.state.groups),
                       len(shard.state.pending), shard.load_offset)
        for marker in shard.early_markers:
            self._marker_written(marker)
        shard.early_markers = []
        self._mutate(shard, lambda s: self.core.on_metadata(s, self.topics, self.clock()), _ignore)
        self._mutate(shard, S.metadata_fn(self.topics), _ignore)

    # ---------------------------------------------------------------------- transactions

    def _marker_written(self, msg: TxnMarkerWritten) -> None:
        """A producer's transaction ended on a led offsets partition: complete its pending
        offsets, in log order with this shard's own writes (after the one in flight)."""
        shard = self.shards.get(msg.partition)
        if shard is None:
            return  # not led here: whoever leads it reads the marker when it loads
        if not shard.loaded:
            shard.early_markers.append(msg)
            return
        if msg.offset < shard.load_offset:
            return  # the load read it
        pid, committed = msg.producer_id, msg.committed

        def fn(state: G.CoordinatorState) -> G.Result:
            return self.core.txn_completed(state, pid, committed)

        fn.alone = True  # type: ignore[attr-defined]  # adopted at once, never with a write
        self._log.debug("producer {}: transaction {} on {}-{}", pid,
                        "committed" if committed else "aborted", OFFSETS_TOPIC, msg.partition)
        self._mutate(shard, fn, _ignore)

    # ---------------------------------------------------------------------------- timers

    def _tick(self, now: int) -> None:
        expire = now >= self._next_expire
        if expire:
            self._next_expire = now + _EXPIRE_EVERY_MS
        for p, shard in list(self.shards.items()):
            if shard.busy and now - shard.busy_since > _STUCK_APPEND_MS:
                # the replica never answered: start over from what the log holds
                self._log.error("append to {}-{} unanswered for {} ms: reloading", OFFSETS_TOPIC,
                                p, now - shard.busy_since)
                for _fn, done in shard.queue:
                    done(None, (E.COORDINATOR_NOT_AVAILABLE, "reloading the group state"))
                self._answer_parked(shard, None, (E.COORDINATOR_NOT_AVAILABLE,
                                                  "reloading the group state"))
                CL.drop(shard.classic, E.COORDINATOR_NOT_AVAILABLE, "reloading the group state")
                self._generation += 1
                shard = self.shards[p] = _Shard(partition=p, leader_epoch=shard.leader_epoch,
                                                generation=self._generation)
            self._answer_parked(shard, now)
            if not shard.loaded:
                if shard.reading and now - shard.reading_since > _STUCK_APPEND_MS:
                    shard.reading = False  # the read was lost: ask again
                self._load(shard)
                continue
            CL.tick(self, shard, now)
            deadline = shard.state.next_deadline_ms()
            if deadline is not None and deadline <= now and not any(
                getattr(fn, "is_tick", False) for fn, _ in shard.queue
            ):
                def fn(s: G.CoordinatorState) -> G.Result:
                    return self.core.tick(s, self.clock())

                fn.is_tick = True  # type: ignore[attr-defined]
                self._mutate(shard, fn, self._log_expired)
            if S.tick_due(shard.state, shard.queue, now):
                self._mutate(shard, S.tick_fn(self.clock), self._log_expired)
            if expire:
                self._mutate(shard, lambda s: self.core.expire_offsets(s, self.clock()), _ignore)

    def _log_expired(self, result: G.Result | None, error: Any) -> None:
        if result is not None:
            for e in result.response:
                self._log.info("group {}: member {} removed ({})", e.group_id, e.member_id,
                               getattr(e, "reason", "share session timeout"))


def _timers_due(shard: _Shard) -> int | None:
    """``shard.state.next_deadline_ms()`` (consumer groups' session and rebalance timers),
    scanning only the groups whose timers changed since the last call: a heartbeat costs
    O(groups), not O(members of every group of the shard)."""
    state, old, new = shard.state, shard.group_dues, {}
    due = None
    for timers in (state.session_deadlines, state.rebalance_deadlines):
        for per_group in timers.values():
            hit = old.get(id(per_group))
            if hit is not None and hit[0] is per_group:
                t = hit[1]
            else:
                t = min(per_group.values()) if per_group else None
            new[id(per_group)] = (per_group, t)
            due = earliest(due, t)
    shard.group_dues = new
    return due


def _ignore(_result: Any, error: Any) -> None:
    if error is not None:
        logger.debug("background group operation failed: {}", error)


_STATES = frozenset(str(s) for s in G.GroupState)


def error_response(req: Any, code: int, message: str) -> object:
    """The typed error reply of ``req`` (a classic request's is a ``CL.Failure``)."""
    if isinstance(req, CL.ALL):
        return CL.Failure(int(code), message)
    return W.error_response(req, code, message)
