"""ClientSession: one actor per connected client (ZeroMQ peer identity) of one listener.

A broker has two listeners (docs/cluster.md): the client listener and the inter-broker one.
Inter-broker APIs (``P.is_inter_broker``: Raft, BrokerHeartbeat, MetadataFetch,
AlterPartition, and Fetch/ListOffsets/OffsetForLeaderEpoch with a replica id) are served
only on the inter-broker listener; on the client listener they get an ``ErrorResponse``
CLUSTER_AUTHORIZATION_FAILED and are counted (``BrokerContext.refused_inter_broker``). An
admin request that arrives on the inter-broker listener was forwarded by a broker and is
never forwarded again. Which listener a request came in on is the only thing that decides
"from a broker": nothing a client chooses (such as its ZeroMQ identity) does.

It decodes the client's requests in arrival order, answers what the metadata image alone can
answer (ApiVersions, Metadata, DescribeConfigs), hands admin requests to the Controller and
fans Produce/Fetch/ListOffsets out to PartitionReplica actors with ``tell``; collectors
(gather.py) send the response when the partitions have answered. It never waits for another
actor. A request it cannot decode gets an ``ErrorResponse``; nothing a client sends stops it.

Each request arrives with the endpoint's ``Lease`` on its bytes (``queued.max.request.bytes``):
it is released once the response is handed to the endpoint, or, for ``acks=0`` produce
(no response), once every partition has appended or refused the batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka
from loguru import logger
from rillet.coordinator.election import PartitionState
from rillet.coordinator.election import offline_reason as _offline_reason
from rillet.coordinator.metadata import MetadataImage
from rillet.coordinator.share import config as share_config
from rillet.transport import codec
from rillet.transport import protocol as P
from rillet.transport.errors import ProtocolError

from rillet.frozen import frozen

from . import (
    authorize,
    delete_records,
    dynamic_configs,
    log_dirs,
    mutation_quota,
    quota_wire,
    quotas,
    runtime,
)
from . import controller as C
from . import group_coordinator as GC
from . import partition as R
from . import share_partition as SP
from . import share_state as SST
from . import txn_coordinator as TC
from .configs import effective_topic_configs, topic_defaults
from .fetch_session import Counters, FetchSessions
from .fetch_session import serve as serve_session_fetch
from .gather import EpochGather, FetchGather, ListOffsetsGather, ProduceGather
from .runtime import DispatchedActor, tell_inline
from .ticker import Ticker, now_ms
from .txn_write_markers import write_txn_markers

E = P.ErrorCode
MAX_FETCH_WAIT_MS = 300_000  # a parked fetch never outlives this, even if asked to


@dataclass(slots=True)
class BrokerContext:
    """What sessions share: read-mostly, safe to read from any thread."""

    broker_id: int
    host: str
    port: int
    cluster_id: str
    broker_configs: Mapping[str, str]
    send: Callable[[bytes, list], None]  # the endpoint's thread-safe send(peer, frames)
    ticker: Ticker
    controller: pykka.ActorRef | None = None
    image: MetadataImage = field(default_factory=MetadataImage)  # swapped, never mutated
    replicas: dict[tuple[str, int], pykka.ActorRef] = field(default_factory=dict)
    poison_count: int = 0
    controller_id: int = -1  # the active controller as this broker knows it (-1: none)
    group_coordinator: pykka.ActorRef | None = None  # actors/group_coordinator.py
    txn_coordinator: pykka.ActorRef | None = None  # actors/txn_coordinator.py
    share_partitions: pykka.ActorRef | None = None  # actors/share_partition.py
    share_state: pykka.ActorRef | None = None  # actors/share_state.py
    share_state_client: Any = None  # actors/share_state_client.ShareStateClient (the node's)
    incarnation: str = ""  # this broker process (actors/node.py)
    refused_inter_broker: int = 0  # inter-broker requests refused on the client listener
    describe_stats: Callable[[], P.BrokerStatsResponse] | None = None  # the node's, if any
    clock: Callable[[], int] = now_ms  # wall-clock ms, for every session (tests: a fake)
    _count_lock: threading.Lock = field(default_factory=threading.Lock)
    counters: Counters = field(default_factory=Counters)  # the BrokerCounters API
    fetch_sessions: FetchSessions | None = None  # followers' fetch sessions (fetch_session.py)
    metrics: Any = None  # actors/metrics.BrokerMetrics; None: metrics off (metrics.port -1)
    log_dir: str = ""  # the broker's data directory (DescribeLogDirs, actors/log_dirs.py)
    live_configs: Any = None  # actors/dynamic_configs.LiveBrokerConfigs: dynamic broker configs
    quotas: Any = None  # actors/quotas.BrokerQuotas, made by the first client session
    mutation_quotas: Any = None  # actors/mutation_quota.MutationQuotas, made on first use
    gc_watch: Any = None  # actors/gc_watch.GcWatch: the node's collector pauses, if watched

    def __post_init__(self) -> None:
        if self.fetch_sessions is None:
            self.fetch_sessions = FetchSessions(
                self.counters, lambda delay, fn: self.ticker.call_later(delay, fn)
            )

    def counter_values(self) -> dict[str, int]:
        """Every counter of this broker, by name (BrokerCounters)."""
        values = self.counters.snapshot()
        values["poison_messages"] = self.poison_count
        values["refused_inter_broker"] = self.refused_inter_broker
        if self.gc_watch is not None:
            values.update(self.gc_watch.values())
        values.update(runtime.turn_counts())  # pool turns and inline turns (docs/runtime.md)
        return values

    def count_refused(self) -> int:
        """Count one refused inter-broker request (any session thread); the new total."""
        with self._count_lock:
            self.refused_inter_broker += 1
            return self.refused_inter_broker


@frozen
class Listener:
    """One of a broker's front doors: its name, whether it is the inter-broker listener,
    and the thread-safe ``send(peer, frames)`` of its ServerEndpoint."""

    name: str
    internal: bool
    send: Callable[[bytes, list], None]


@frozen
class Inbound:
    """One request from the router: its frames and the endpoint's lease on their bytes."""

    frames: list
    lease: Any = None  # transport.endpoint.Lease; None: not counted


def _no_release() -> None:
    pass


class SessionState:
    """What the router and a session share about one connection (any thread).

    ``last_seen``: monotonic seconds of the last request (the router writes it);
    ``in_flight``: requests received and not finished with (their leases unreleased), so a
    session with a parked fetch or an acks=all produce in flight is not idle;
    ``parked``: fetch long polls still waiting, ended at once when the session stops."""

    __slots__ = ("last_seen", "in_flight", "parked", "_lock")

    def __init__(self) -> None:
        self.last_seen = 0.0
        self.in_flight = 0
        self.parked: set[FetchGather] = set()
        self._lock = threading.Lock()

    def track(self, release: Callable[[], None]) -> Callable[[], None]:
        """Count one request in flight; the returned callable ends it (idempotent) and then
        calls ``release``."""
        with self._lock:
            self.in_flight += 1
        done = False

        def finished() -> None:
            nonlocal done
            with self._lock:
                if done:
                    return
                done = True
                self.in_flight -= 1
            release()

        return finished


API_VERSIONS = tuple(
    P.ApiVersion(api=name, min_version=cls.VERSION, max_version=cls.VERSION)
    for name, cls in sorted(P.REQUESTS.items())
)


class ClientSession(DispatchedActor):
    """Handles the frames of one peer. Message: the list of frames of one request."""

    host_ok = True  # an idle session's request runs on the endpoint's I/O thread (router.py)

    def __init__(
        self,
        ctx: BrokerContext,
        peer: bytes,
        listener: Listener | None = None,
        state: SessionState | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.peer = peer
        self.listener = listener or Listener("client", False, ctx.send)
        self.state = state or SessionState()
        # ACLs (actors/authorize.py): client-listener requests, with the authorizer on
        self.authorizing = (
            not self.listener.internal and authorize.authorizer_of(ctx.broker_configs).enabled
        )
        self.who: tuple[str | None, str | None] = (None, None)  # (ZAP User-Id, peer address)
        # client quotas (actors/quotas.py): a throttled connection's next requests wait here
        self.throttle, self.held = (None, None) if self.listener.internal else (
            quotas.session_parts(ctx, lambda: self.actor_ref.tell(quotas.RESUME)))

    @property
    def _log(self):
        # bound on use: a logger per idle session would cost memory for nothing
        return logger.bind(
            broker=self.ctx.broker_id, peer=self.peer.hex(), listener=self.listener.name
        )

    def on_stop(self) -> None:
        """Released (peer disconnected, idle, broker stopping): end the parked long polls
        now, so their leases and timers go with the session (the answer goes nowhere)."""
        for gather in list(self.state.parked):
            gather.expire()
        for held in self.held.drop() if self.held is not None else ():
            if isinstance(held, Inbound) and held.lease is not None:
                held.lease.release()

    def on_receive(self, message: Any) -> None:
        if self.held is not None:  # quotas: the connection is held (actors/quotas.py)
            if message is quotas.RESUME:
                self.held.resume(self._charged)
                return
            if self.held.hold(message):
                return
            self._charged(message)
            return
        self._receive(message)

    def _charged(self, message: Any) -> None:
        """A client request, its session time charged to request_percentage."""
        self.throttle.begin()
        self._receive(message)
        self.throttle.end(self.who[0] or authorize.ANONYMOUS)

    def _receive(self, message: Any) -> None:
        if isinstance(message, Inbound):
            frames, lease = message.frames, message.lease
        else:
            frames, lease = message, None
        release = self.state.track(lease.release if lease is not None else _no_release)
        if lease is not None:
            self.who = (getattr(lease, "user_id", None), getattr(lease, "peer_address", None))
        try:
            cid, request = codec.decode_request(frames)
        except ProtocolError as e:
            self.ctx.poison_count += 1
            self._log.warning("bad request: {}", e)
            self._send(codec.encode_error(e.code, e.message, e.correlation_id))
            release()
            return
        if not self.listener.internal and P.is_inter_broker(request):
            self._refuse(cid, request)
            release()
            return
        metrics = self.ctx.metrics
        if metrics is not None and not self.listener.internal:
            release = metrics.timed(request.API, release)  # docs/metrics.md
        try:
            self._dispatch(cid, request, release)
        except Exception as e:  # noqa: BLE001 - poison message: answer, keep the session
            self.ctx.poison_count += 1
            self._log.exception("request {} failed", request.API)
            self._send(codec.encode_error(E.UNKNOWN_SERVER_ERROR, str(e), cid))
            release()  # idempotent: harmless if a response went out already

    def _count_denied(self) -> None:
        self.ctx.counters.add("authorization_denied")

    def _refuse(self, cid: int, request: object) -> None:
        count = self.ctx.count_refused()
        # every refusal counts; the log says so for the first and then every 100th
        if count == 1 or count % 100 == 0:
            self._log.warning(
                "refused {} on the client listener: an inter-broker API ({} refused so far)",
                request.API,
                count,
            )
        message = (
            f"{request.API} is an inter-broker request, served only on the inter-broker "
            f"listener ({count} refused on this client listener)"
        )
        self._send(codec.encode_error(E.CLUSTER_AUTHORIZATION_FAILED, message, cid))

    def _send(self, frames: list) -> None:
        self.listener.send(self.peer, frames)

    def _responder(self, cid: int, release: Callable[[], None]) -> Callable[[object], None]:
        peer, send = self.peer, self.listener.send
        metrics = None if self.listener.internal else self.ctx.metrics

        observe = getattr(release, "observe", None)  # actors/metrics.py: before the answer

        def respond(response: object) -> None:
            if metrics is not None:
                metrics.responded(response)
                if observe is not None:
                    observe()
            send(peer, codec.encode_response(response, cid))
            release()

        return respond

    def _dispatch(self, cid: int, req: object, release: Callable[[], None] = _no_release) -> None:
        respond = self._responder(cid, release)
        if self.authorizing:  # before any work (docs/security.md, "Authorization")
            who = authorize.who(self.ctx, *self.who)
            req, respond = authorize.gate(who, req, respond, self._count_denied)
            if req is None:
                release()  # answered (or an acks=0 produce, dropped)
                return
        if self.throttle is not None:  # quotas: the throttle rides on the answer
            respond = self.throttle.gate(req, self.who[0] or authorize.ANONYMOUS, respond)
        if isinstance(
            req,
            P.ProduceRequest
            | P.FetchRequest
            | P.ListOffsetsRequest
            | P.OffsetForLeaderEpochRequest,
        ):
            keys = [(t.name, p.partition) for t in req.topics for p in t.partitions]
            if len(set(keys)) != len(keys):
                # Kafka rejects these too: which answer would belong to which entry?
                respond(
                    P.ErrorResponse(
                        error_code=E.INVALID_REQUEST,
                        error_message=f"{req.API} names a topic-partition more than once",
                    )
                )
                return
        match req:
            case P.ProduceRequest():
                self._produce(req, respond, release)
            case P.FetchRequest():
                self._fetch(req, respond)
            case P.BrokerStatsRequest():
                stats = self.ctx.describe_stats
                respond(stats() if stats else P.BrokerStatsResponse(broker_id=self.ctx.broker_id))
            case P.ListOffsetsRequest():
                self._list_offsets(req, respond)
            case P.ApiVersionsRequest():
                respond(
                    P.ApiVersionsResponse(
                        api_versions=API_VERSIONS,
                        broker_id=self.ctx.broker_id,
                        cluster_id=self.ctx.cluster_id,
                    )
                )
            case P.MetadataRequest():
                respond(self._metadata(req))
            case P.DescribeConfigsRequest():
                respond(self._describe_configs(req))
            case P.FindCoordinatorRequest(key_type=P.COORDINATOR_TRANSACTION):
                respond(TC.find_coordinator(self.ctx, req))
            case P.FindCoordinatorRequest(key_type=P.COORDINATOR_SHARE):
                respond(SST.find_coordinator(self.ctx, req))
            case P.FindCoordinatorRequest():
                respond(GC.find_coordinator(self.ctx, req))
            case P.BrokerCountersRequest():
                counters = sorted(self.ctx.counter_values().items())
                respond(
                    P.BrokerCountersResponse(
                        broker_id=self.ctx.broker_id,
                        counters=tuple(P.BrokerCounter(name=n, value=v) for n, v in counters),
                    )
                )
            case P.TxnOffsetCommitRequest():  # to the group's coordinator, as OffsetCommit
                if self.ctx.group_coordinator is None:
                    respond(GC.error_response(req, E.COORDINATOR_NOT_AVAILABLE, "starting"))
                else:
                    self.ctx.group_coordinator.tell(GC.GroupRequest(req, respond))
            case _ if isinstance(req, (P.GROUP_REQUESTS, P.SHARE_GROUP_REQUESTS)):
                if self.ctx.group_coordinator is None:
                    respond(GC.error_response(req, E.COORDINATOR_NOT_AVAILABLE, "starting"))
                else:
                    self.ctx.group_coordinator.tell(GC.GroupRequest(req, respond))
            case (
                P.CreateTopicsRequest()
                | P.DeleteTopicsRequest()
                | P.CreatePartitionsRequest()
                | P.AlterConfigsRequest()
            ):
                forwardable = not self.listener.internal  # forwarded once, never again
                if self.throttle is not None and not isinstance(req, P.AlterConfigsRequest):
                    req, respond = mutation_quota.native_gate(  # controller_mutation_rate
                        self.ctx, self.who[0] or authorize.ANONYMOUS, self.throttle.client_id,
                        req, respond)
                    if req is None:
                        return
                self.ctx.controller.tell(C.Admin(req, respond, forwardable=forwardable))
            case P.OffsetForLeaderEpochRequest():
                self._offset_for_leader_epoch(req, respond)
            case P.DeleteRecordsRequest():  # to each partition's leader (delete_records.py)
                delete_records.serve(req, respond, self._replica)
            case P.DescribeLogDirsRequest():  # this broker's replicas (log_dirs.py)
                log_dirs.serve_describe_log_dirs(req, respond, self.ctx, self.ctx.log_dir)
            case P.ListPartitionReassignmentsRequest():  # from the image (log_dirs.py)
                respond(log_dirs.list_reassignments(self.ctx.image, req.topics))
            case P.AlterClientQuotasRequest():  # to the controller (actors/quota_wire.py)
                forwardable = not self.listener.internal
                self.ctx.controller.tell(C.Admin(req, respond, forwardable=forwardable))
            case P.DescribeClientQuotasRequest():
                respond(quota_wire.describe(self.ctx.image, req))
            case P.UpdateFeaturesRequest() | P.DescribeFeaturesRequest():  # actors/features.py
                forwardable = not self.listener.internal
                self.ctx.controller.tell(C.Admin(req, respond, forwardable=forwardable))
            case P.CreateAclsRequest() | P.DeleteAclsRequest() | P.DescribeAclsRequest():
                internal = self.listener.internal
                authorize.serve_acl_request(
                    self.ctx, req, respond, internal,
                    lambda r: self.ctx.controller.tell(C.Admin(r, respond, forwardable=not internal)),
                )
            case (
                P.AddPartitionsToTxnRequest()
                | P.AddOffsetsToTxnRequest()
                | P.EndTxnRequest()
                | P.InitProducerIdRequest(transactional_id=str())
                | P.ListTransactionsRequest()
                | P.DescribeTransactionsRequest()
            ):  # transactions: the transactional id's coordinator (actors/txn_coordinator.py)
                if self.ctx.txn_coordinator is None:
                    respond(TC.error_response(req, E.COORDINATOR_NOT_AVAILABLE, "starting"))
                else:
                    self.ctx.txn_coordinator.tell(TC.TxnRequest(req, respond))
            case (
                P.AlterPartitionRequest()
                | P.ReplicaDamageRequest()
                | P.ElectLeadersRequest()
                | P.AlterPartitionReassignmentsRequest()
                | P.InitProducerIdRequest()
            ):
                forwardable = not self.listener.internal  # forwarded once, never again
                self.ctx.controller.tell(C.Admin(req, respond, forwardable=forwardable))
            case P.RaftRequest():
                self.ctx.controller.tell(C.RaftIn(req.message))
                respond(P.RaftResponse())
            case P.BrokerHeartbeatRequest():
                self.ctx.controller.tell(C.Heartbeat(req, respond))
            case P.MetadataFetchRequest():
                self.ctx.controller.tell(C.MetadataFetch(req, respond))
            case (
                P.ShareFetchRequest()
                | P.ShareAcknowledgeRequest()
                | P.DescribeShareGroupOffsetsRequest()
                | P.AlterShareGroupOffsetsRequest()
                | P.DeleteShareGroupOffsetsRequest()
            ):  # share groups: the partition leader's share-partitions (share_partition.py)
                if self.ctx.share_partitions is None:
                    respond(P.ErrorResponse(error_code=E.COORDINATOR_NOT_AVAILABLE,
                                            error_message="starting"))
                else:
                    self.ctx.share_partitions.tell(SP.ShareRequest(req, respond))
            case P.WriteTxnMarkersRequest():  # inter-broker only (refused above otherwise)
                write_txn_markers(req, respond, self._replica)
            case P.ReadShareGroupStateRequest() | P.WriteShareGroupStateRequest():
                # inter-broker only: the share-state coordinator (actors/share_state.py)
                if self.ctx.share_state is None:
                    respond(SST.error_response(req, E.COORDINATOR_NOT_AVAILABLE, "starting"))
                else:
                    self.ctx.share_state.tell(SST.ShareStateRequest(req, respond))
            case _:
                respond(
                    P.ErrorResponse(
                        error_code=E.INVALID_REQUEST, error_message=f"{req.API} not handled"
                    )
                )

    # ---------------------------------------------------------------------------- routing

    def _replica(self, topic: str, partition: int) -> tuple[int, pykka.ActorRef | None]:
        """(error code, actor) for a partition this broker must lead."""
        info = self.ctx.image.partition(topic, partition)
        if info is None:
            return E.UNKNOWN_TOPIC_OR_PARTITION, None
        if info.leader != self.ctx.broker_id:
            return E.NOT_LEADER_OR_FOLLOWER, None
        ref = self.ctx.replicas.get((topic, partition))
        if ref is None:
            return E.NOT_LEADER_OR_FOLLOWER, None
        return E.NONE, ref

    def _produce(
        self,
        req: P.ProduceRequest,
        respond: Callable[[object], None],
        release: Callable[[], None] = _no_release,
    ) -> None:
        if req.acks not in (-1, 0, 1):
            code = E.INVALID_REQUIRED_ACKS
            respond(
                P.ProduceResponse(
                    topics=tuple(
                        P.ProduceTopicResponse(
                            name=t.name,
                            partitions=tuple(
                                P.ProducePartitionResponse(partition=p.partition, error_code=code)
                                for p in t.partitions
                            ),
                        )
                        for t in req.topics
                    )
                )
            )
            return
        keys = [(t.name, p.partition) for t in req.topics for p in t.partitions]
        metrics = None if self.listener.internal else self.ctx.metrics
        if req.acks == 0:  # no response: the lease ends when every partition is done
            gather = ProduceGather(keys, lambda _response: release())
        elif req.acks == -1 and metrics is not None:  # the Produce purgatory (metrics)
            gather = ProduceGather(keys, metrics.sources.delaying(respond))
        else:
            gather = ProduceGather(keys, respond)
        for t in req.topics:
            for p in t.partitions:
                key = (t.name, p.partition)
                code, ref = self._replica(*key)
                if t.name in (GC.OFFSETS_TOPIC, TC.TXN_TOPIC, SST.SHARE_STATE_TOPIC):
                    # written by coordinators only
                    code, ref = E.INVALID_TOPIC_EXCEPTION, None
                if ref is None:
                    gather.put(
                        key, P.ProducePartitionResponse(partition=p.partition, error_code=code)
                    )
                    continue
                put = lambda r, key=key: gather.put(key, r)  # noqa: E731
                if metrics is not None:  # counted once appended (Kafka's BytesInPerSec)
                    put = metrics.appending(t.name, p.records, put)
                tell_inline(  # appended in this turn when the replica is idle
                    ref,
                    R.Append(
                        p.records,
                        put,
                        req.acks,
                        req.timeout_ms,
                        transactional_id=req.transactional_id,
                    ),
                )
        if not keys:
            if req.acks == 0:
                release()
            else:
                respond(P.ProduceResponse())

    def _fetch(self, req: P.FetchRequest, respond: Callable[[object], None]) -> None:
        if req.session_epoch != P.FINAL_EPOCH:  # a follower's fetch session (KIP-227)
            serve_session_fetch(
                self.ctx.fetch_sessions,
                req,
                respond,
                self._replica,
                now_ms=self.ctx.clock(),
                max_wait_ms=min(max(req.max_wait_ms, 0), MAX_FETCH_WAIT_MS),
            )
            return
        if req.isolation_level not in (P.READ_UNCOMMITTED, P.READ_COMMITTED):
            respond(
                P.ErrorResponse(
                    error_code=E.INVALID_REQUEST,
                    error_message=f"unknown isolation_level {req.isolation_level}",
                )
            )
            return
        keys = [(t.name, p.partition) for t in req.topics for p in t.partitions]
        if req.replica_id >= 0:  # a follower without a session: every partition, every poll
            self.ctx.counters.add("replica_fetch_polls")
            self.ctx.counters.add("replica_fetch_partition_reads", len(keys))
        if not keys:
            respond(P.FetchResponse())
            return
        parked = self.state.parked

        def send(response: P.FetchResponse) -> None:
            parked.discard(gather)
            respond(response)

        gather = FetchGather(
            keys,
            min_bytes=req.min_bytes,
            max_bytes=req.max_bytes,
            max_wait_ms=min(req.max_wait_ms, MAX_FETCH_WAIT_MS),
            send=send,
            call_later=self.ctx.ticker.call_later,
        )
        if gather.waiting:
            parked.add(gather)  # until answered; on_stop ends it early
        deadline = self.ctx.clock() + min(max(req.max_wait_ms, 0), MAX_FETCH_WAIT_MS)
        for t in req.topics:
            for p in t.partitions:
                key = (t.name, p.partition)
                code, ref = self._replica(*key)
                if ref is None:
                    gather.immediate(
                        key, P.FetchPartitionResponse(partition=p.partition, error_code=code)
                    )
                    continue
                max_bytes = max(1, min(p.partition_max_bytes, req.max_bytes))
                force = req.replica_id >= 0  # a follower also wants HW news
                tell_inline(  # read in this turn when the replica is idle (a tail read)
                    ref,
                    R.Read(
                        p.fetch_offset,
                        max_bytes,
                        reply=lambda r, key=key: gather.immediate(key, r),
                        on_data=(lambda r, key=key, f=force: gather.on_data(key, r, f))
                        if gather.waiting
                        else None,
                        deadline_ms=deadline,
                        replica_id=req.replica_id,
                        current_leader_epoch=p.current_leader_epoch,
                        replica_incarnation=req.replica_incarnation,
                        last_fetched_epoch=p.last_fetched_epoch,
                        isolation_level=req.isolation_level,
                    )
                )

    def _offset_for_leader_epoch(
        self, req: P.OffsetForLeaderEpochRequest, respond: Callable[[object], None]
    ) -> None:
        keys = [(t.name, p.partition) for t in req.topics for p in t.partitions]
        if not keys:
            respond(P.OffsetForLeaderEpochResponse())
            return
        gather = EpochGather(keys, respond)
        self._fan_out(
            req.topics,
            gather,
            lambda p, code: P.EpochEndOffset(partition=p.partition, error_code=code),
            lambda p, answer: R.EpochEndOffset(p.current_leader_epoch, p.leader_epoch, answer),
        )

    def _fan_out(self, topics, gather, refused, message) -> None:
        """One message per named partition to its replica actor, each answer to ``gather``
        (``message(partition, answer)``); a partition not hosted here is answered at once
        with ``refused(partition, code)``."""
        for t in topics:
            for p in t.partitions:
                key = (t.name, p.partition)
                code, ref = self._replica(*key)
                if ref is None:
                    gather.put(key, refused(p, code))
                    continue
                ref.tell(message(p, lambda r, key=key: gather.put(key, r)))

    def _list_offsets(self, req: P.ListOffsetsRequest, respond: Callable[[object], None]) -> None:
        keys = [(t.name, p.partition) for t in req.topics for p in t.partitions]
        if not keys:
            respond(P.ListOffsetsResponse())
            return
        gather = ListOffsetsGather(keys, respond)
        self._fan_out(
            req.topics,
            gather,
            lambda p, code: P.ListOffsetsPartitionResponse(partition=p.partition, error_code=code),
            lambda p, answer: R.ListOffset(p.timestamp, answer, req.isolation_level),
        )

    # --------------------------------------------------------------------- image answers

    def _metadata(self, req: P.MetadataRequest) -> P.MetadataResponse:
        image = self.ctx.image
        me, incarnation = self.ctx.broker_id, self.ctx.incarnation
        # this broker is listed once the image registers THIS process (not a replayed one)
        brokers = tuple(
            P.BrokerMetadata(broker_id=b.broker_id, host=b.host, port=b.port, rack=b.rack)
            for b in sorted(image.brokers.values(), key=lambda b: b.broker_id)
            if not b.fenced and (b.broker_id != me or b.incarnation == incarnation)
        )
        names = sorted(image.topics) if req.topics is None else list(dict.fromkeys(req.topics))
        topics = []
        for name in names:
            topic = image.topics.get(name)
            if topic is None:
                topics.append(P.TopicMetadata(name=name, error_code=E.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            live = {b.broker_id for b in image.brokers.values() if not b.fenced}
            parts = tuple(
                P.PartitionMetadata(
                    partition=p.partition,
                    error_code=E.NONE if p.leader in live else E.LEADER_NOT_AVAILABLE,
                    leader=p.leader,
                    leader_epoch=p.leader_epoch,
                    replicas=p.replicas,
                    isr=p.isr,
                    offline_replicas=tuple(r for r in p.replicas if r not in live),
                    damaged_replicas=p.damaged,
                    offline_reason=(
                        None
                        if p.leader >= 0
                        else _offline_reason(PartitionState.from_info(p), live) or None
                    ),
                )
                for p in sorted(topic.partitions.values(), key=lambda p: p.partition)
            )
            topics.append(
                P.TopicMetadata(
                    name=name,
                    topic_id=topic.topic_id,
                    is_internal=name.startswith("__"),
                    partitions=parts,
                )
            )
        return P.MetadataResponse(
            brokers=brokers,
            cluster_id=self.ctx.cluster_id,
            controller_id=self.ctx.controller_id,
            topics=tuple(topics),
        )

    def _describe_configs(self, req: P.DescribeConfigsRequest) -> P.DescribeConfigsResponse:
        image = self.ctx.image
        results = []
        for r in req.resources:
            if r.resource_type == P.ConfigResourceType.TOPIC:
                topic = image.topics.get(r.resource_name)
                if topic is None:
                    results.append(
                        P.DescribeConfigsResult(
                            resource_type=r.resource_type,
                            resource_name=r.resource_name,
                            error_code=E.UNKNOWN_TOPIC_OR_PARTITION,
                            error_message=f"topic {r.resource_name!r} does not exist",
                        )
                    )
                    continue
                defaults = topic_defaults(self.ctx.broker_configs)
                values = effective_topic_configs(topic.configs, self.ctx.broker_configs)
                entries = [
                    P.ConfigEntry(
                        name=k,
                        value=v,
                        is_default=k not in topic.configs and v == defaults[k],
                        source=P.ConfigSource.DYNAMIC_TOPIC_CONFIG
                        if k in topic.configs
                        else dynamic_configs.topic_default_source(self.ctx, k),
                    )
                    for k, v in sorted(values.items())
                ]
            elif r.resource_type == P.ConfigResourceType.GROUP:
                entries = _group_config_entries(image, r.resource_name, self.ctx.broker_configs)
            elif r.resource_type == P.ConfigResourceType.BROKER:  # actors/dynamic_configs.py
                entries, error = dynamic_configs.native_broker_entries(self.ctx, r.resource_name)
                if error is not None:
                    results.append(P.DescribeConfigsResult(
                        resource_type=r.resource_type, resource_name=r.resource_name,
                        error_code=E.INVALID_REQUEST, error_message=error))
                    continue
            else:
                results.append(
                    P.DescribeConfigsResult(
                        resource_type=r.resource_type,
                        resource_name=r.resource_name,
                        error_code=E.INVALID_REQUEST,
                        error_message=f"unknown resource type {r.resource_type}",
                    )
                )
                continue
            if r.config_names is not None:
                wanted = set(r.config_names)
                entries = [e for e in entries if e.name in wanted]
            results.append(
                P.DescribeConfigsResult(
                    resource_type=r.resource_type,
                    resource_name=r.resource_name,
                    configs=tuple(entries),
                )
            )
        return P.DescribeConfigsResponse(results=tuple(results))


def _group_config_entries(image, group_id: str, broker_configs) -> list[P.ConfigEntry]:
    """A share group's configs (a group need not exist, as in Kafka: then all defaults)."""
    overrides = image.group_configs.get(group_id, {})
    values = share_config.effective_group_configs(overrides, broker_configs)
    return [
        P.ConfigEntry(
            name=k,
            value=v,
            is_default=k not in overrides,
            source=P.ConfigSource.GROUP_CONFIG if k in overrides else P.ConfigSource.DEFAULT_CONFIG,
        )
        for k, v in sorted(values.items())
    ]
