"""The Controller actor: the broker's part in the controller quorum and its metadata image.

Every broker runs one. On a quorum voter (``controller.quorum.voters``) it hosts a
``RaftNode`` over the ``__cluster_metadata`` log (``PartitionRaftLog``) and carries out the
node's effects in order: persist term/vote, flush the log, send Raft messages (``Raft`` API
through the broker's ``ClientEndpoint`` to the voters' inter-broker listeners, the addresses
in ``controller.quorum.voters``), apply committed entries to the metadata image,
take snapshots. On a broker that is not a voter it keeps the image by fetching committed
entries from a voter (``MetadataFetch``).

Only the active controller (the Raft leader, once its own no-op entry is applied) makes
decisions: admin requests (create/delete topics, partitions, configs), broker registration
and unfencing on heartbeats, fencing of brokers that miss ``broker.session.timeout.ms``.
Decisions are made one at a time against the committed image (the pure functions of
``coordinator/metadata.py``), proposed as ONE Raft entry each, and answered once that entry
is committed and applied. Another broker that receives an admin request forwards it to the
active controller's inter-broker listener (KIP-590 style) unless it arrived on this broker's
inter-broker listener (then a broker forwarded it already); without an active
controller the answer is NOT_CONTROLLER (41), which clients retry.

Every broker, voter or not, heartbeats the active controller every
``broker.heartbeat.interval.ms``; its first heartbeat registers it. ``publish(old, new)``
runs on this actor's thread after every image change; it must not block on other actors.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cbor2
import pykka
from loguru import logger
from rillet.coordinator import election as el
from rillet.coordinator import metadata as md
from rillet.coordinator import raft
from rillet.transport import protocol as P

from .configs import ConfigError, validate_topic_configs
from .metadata_log import PartitionRaftLog
from .runtime import DispatchedActor
from .ticker import now_ms

E = P.ErrorCode
# ZeroMQ identity prefix of broker-to-broker connections: a label for logs and tools only.
# It decides nothing: a request is "from a broker" when it arrives on the inter-broker listener.
BROKER_IDENTITY_PREFIX = b"rillet-broker:"


def parse_voters(text: str) -> dict[int, str]:
    """``"1@127.0.0.1:9092,2@127.0.0.1:9093"`` -> ``{1: "127.0.0.1:9092", ...}``: each
    voter's inter-broker listener."""
    out: dict[int, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        node, sep, address = item.partition("@")
        if not sep or not node.strip().isdigit() or ":" not in address:
            raise ConfigError(
                f"controller.quorum.voters: {item!r} is not ID@HOST:PORT "
                "(e.g. 1@127.0.0.1:9092,2@127.0.0.1:9093)"
            )
        out[int(node)] = address.strip()
    return out


# ----------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Admin:
    """An admin request and where its response goes. ``forwardable``: may be forwarded to
    the active controller (False for requests that came from another broker)."""

    request: object
    reply: Callable[[object], None]
    forwardable: bool = True


@dataclass(frozen=True, slots=True)
class RaftIn:
    data: bytes


@dataclass(frozen=True, slots=True)
class Heartbeat:
    request: P.BrokerHeartbeatRequest
    reply: Callable[[object], None]


@dataclass(frozen=True, slots=True)
class MetadataFetch:
    request: P.MetadataFetchRequest
    reply: Callable[[object], None]


@dataclass(frozen=True, slots=True)
class Tick:
    pass


@dataclass(frozen=True, slots=True)
class _Fetched:
    response: object  # MetadataFetchResponse, or an exception
    address: str


@dataclass(frozen=True, slots=True)
class _HeartbeatAnswer:
    response: object


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    broker_id: int
    voter: bool
    role: str
    term: int
    controller_id: int
    applied_index: int


@dataclass(frozen=True, slots=True)
class GetStatus:
    pass


# --------------------------------------------------------------------------------- the actor


class Controller(DispatchedActor):
    def __init__(
        self,
        *,
        broker_id: int,
        host: str,
        port: int,
        metadata_dir: Path,
        publish: Callable[[md.MetadataImage, md.MetadataImage], None],
        broker_configs: Mapping[str, str],
        endpoint,  # ClientEndpoint for broker-to-broker requests
        on_controller: Callable[[int], None] = lambda _id: None,
        on_caught_up: Callable[[md.MetadataImage], None] = lambda _image: None,
        incarnation: str = "",
        clean_shutdown: bool = True,
        internal_host: str | None = None,  # the inter-broker listener (default: host:port)
        internal_port: int | None = None,
    ) -> None:
        super().__init__()
        self.broker_id = broker_id
        self.incarnation = incarnation  # this process; new at every start
        self.clean_shutdown = clean_shutdown  # how the previous process of this broker ended
        self.host, self.port = host, port
        self.internal_host = internal_host if internal_host is not None else host
        self.internal_port = internal_port if internal_port is not None else port
        self.metadata_dir = Path(metadata_dir)
        self.publish = publish
        self.broker_configs = dict(broker_configs)
        self.endpoint = endpoint
        self.on_controller = on_controller
        self.on_caught_up = on_caught_up
        self._startup_index: int | None = None  # caught up once applied this far
        self._observer_caught_up = False
        voters = parse_voters(self.broker_configs.get("controller.quorum.voters", ""))
        self.voters = voters or {broker_id: f"{self.internal_host}:{self.internal_port}"}
        self.is_voter = broker_id in self.voters
        election = int(self.broker_configs["controller.quorum.election.timeout.ms"])
        self.raft_config = raft.RaftConfig(
            election_timeout_ms=election,
            heartbeat_interval_ms=max(10, election // 5),
            snapshot_threshold=int(self.broker_configs["metadata.snapshot.threshold.entries"]),
        )
        self.heartbeat_ms = int(self.broker_configs["broker.heartbeat.interval.ms"])
        self.session_ms = int(self.broker_configs["broker.session.timeout.ms"])
        self.image = md.MetadataImage()
        self.applied_index = 0
        self.controller_id = -1
        self.log: PartitionRaftLog | None = None
        self.node: raft.RaftNode | None = None
        self._leader_ready_index: int | None = None  # set while this node leads
        self._pending: tuple[int, int, Callable[[bool], None]] | None = None
        self._work: deque[tuple[str, Callable[[], None]]] = deque()
        self._queued: set[str] = set()
        self._last_seen: dict[int, int] = {}
        self._unfence_at: dict[int, int] = {}  # fenced broker -> metadata index to reach
        # incarnations replaced by a newer one: a late heartbeat of one is refused
        self._retired: dict[int, set[str]] = {}
        self._next_heartbeat = 0
        self._heartbeat_inflight = False
        self._fetch_inflight = False
        self._next_fetch = 0
        self._fetch_voter = 0
        self._dropped = 0
        self._log = logger.bind(broker=broker_id, actor="controller")
        rebalance = self.broker_configs.get("auto.leader.rebalance.enable", "true") == "true"
        interval = int(self.broker_configs.get("leader.imbalance.check.interval.seconds", "300"))
        self._auto_rebalance_ms = interval * 1000 if rebalance else 0
        self._next_rebalance = 0
        self._next_rebalance_armed = False
        self._next_offline_check = 0

    # -------------------------------------------------------------------------- lifecycle

    def on_start(self) -> None:
        if not self.is_voter:
            self._log.info("not a controller voter; following the metadata log of {}", self.voters)
            return
        self.log = PartitionRaftLog(self.metadata_dir)
        now = now_ms()
        self.node = raft.RaftNode(
            self.broker_id,
            self.voters,
            self.log,
            rng=random.Random(),
            now_ms=now,
            hard_state=self.log.load_hard_state(),
            config=self.raft_config,
        )
        self._log.info(
            "controller voter {} of {}: {} metadata entries on disk (snapshot at {})",
            self.broker_id,
            sorted(self.voters),
            self.log.last_index,
            self.log.snapshot_index,
        )
        self._startup_index = self.log.last_index
        self._execute(self.node.start())
        if len(self.voters) == 1:  # alone: nobody to wait for, elect at once
            self._execute(self.node.tick(max(now, self.node.next_tick_ms)))
        self._after_raft()

    def on_stop(self) -> None:
        if self.log is not None:
            self.log.close()

    def on_failure(self, *_exc) -> None:
        if self.log is not None:
            self.log.close()

    # --------------------------------------------------------------------------- dispatch

    def on_receive(self, message: object) -> object:
        try:
            match message:
                case Tick():
                    self._tick()
                case RaftIn(data=data):
                    self._on_raft(data)
                case Admin():
                    self._on_admin(message)
                case Heartbeat(request=req, reply=reply):
                    reply(self._on_heartbeat(req))
                case MetadataFetch(request=req, reply=reply):
                    reply(self._on_fetch(req))
                case _Fetched():
                    self._on_fetched(message)
                case _HeartbeatAnswer(response=r):
                    self._heartbeat_inflight = False
                    if isinstance(r, P.BrokerHeartbeatResponse) and r.is_fenced:
                        self._next_heartbeat = min(
                            self._next_heartbeat, now_ms() + min(self.heartbeat_ms, 100)
                        )
                    if isinstance(r, P.BrokerHeartbeatResponse) and not self.is_voter:
                        if r.controller_id >= 0:
                            self._set_controller(r.controller_id)
                case GetStatus():
                    return ControllerStatus(
                        self.broker_id,
                        self.is_voter,
                        self.node.role if self.node else "observer",
                        self.node.term if self.node else -1,
                        self.controller_id,
                        self.applied_index,
                    )
                case _:
                    self._log.warning("ignoring unknown message {!r}", type(message).__name__)
        except Exception:  # noqa: BLE001 - one bad input must not kill the controller
            self._log.exception("controller failed on {}", type(message).__name__)
        return None

    # -------------------------------------------------------------------------------- raft

    def _execute(self, effects: list) -> None:
        changed = False
        old = self.image
        committed: list[tuple[int, int]] = []
        for effect in effects:
            match effect:
                case raft.PersistHardState(term=term, voted_for=voted):
                    self.log.save_hard_state(term, voted)
                case raft.FlushLog():
                    self.log.flush()
                case raft.RestoreSnapshot(snapshot=snap):
                    self.image = md.decode_snapshot(snap.data)
                    self.applied_index = snap.index
                    changed = True
                case raft.Send(message=m):
                    self._send_raft(m)
                case raft.ApplyCommitted(first_index=first, entries=entries):
                    for i, entry in enumerate(entries):
                        index = first + i
                        if not entry.control:
                            self._apply_payload(entry.payload, index)
                        self.applied_index = index
                        committed.append((index, entry.term))
                    changed = True
                case raft.TakeSnapshot(index=index):
                    data = md.encode_snapshot(self.image)
                    self._execute(self.node.snapshot_taken(index, data))
        if changed:
            self._publish(old)  # partition actors exist before anyone hears "created"
        for index, term in committed:
            self._complete(index, term)

    def _apply_payload(self, payload: bytes, index: int) -> None:
        try:
            self.image = md.replay(md.decode_records(payload), self.image)
        except (ValueError, KeyError, TypeError) as e:
            self._log.error("metadata entry {} is unreadable, skipped: {}", index, e)

    def _publish(self, old: md.MetadataImage) -> None:
        if old is not self.image:
            self.publish(old, self.image)
        if self._startup_index is not None and (
            self.applied_index >= self._startup_index or self.active
        ):
            self._startup_index = None
            self.on_caught_up(self.image)

    def _fetch_caught_up(self) -> None:
        if not self._observer_caught_up:
            self._observer_caught_up = True
            self.on_caught_up(self.image)

    def _send_raft(self, message) -> None:
        address = self.voters.get(message.dst)
        if address is None:
            return
        data = cbor2.dumps(raft.message_to_dict(message))
        self.endpoint.request(
            address, P.RaftRequest(message=data), self.raft_config.election_timeout_ms
        )

    def _on_raft(self, data: bytes) -> None:
        if self.node is None:
            return
        try:
            message = raft.message_from_dict(cbor2.loads(bytes(data)))
            effects = self.node.handle(message, now_ms())
        except (raft.InvalidMessageError, ValueError, TypeError, cbor2.CBORDecodeError) as e:
            self._dropped += 1
            self._log.debug("dropped a raft message: {}", e)
            return
        self._execute(effects)
        self._after_raft()

    def _after_raft(self) -> None:
        """Follow role changes: becoming or ceasing to be the active controller."""
        node = self.node
        leader = node.leader_id if node.leader_id is not None else -1
        if node.is_leader and self._leader_ready_index is None:
            self._leader_ready_index = node.log.last_index
            now = now_ms()
            self._last_seen = {b: now for b in self.image.brokers}
            self._log.info("became the active controller (term {})", node.term)
        elif not node.is_leader and self._leader_ready_index is not None:
            self._leader_ready_index = None
            self._log.info("no longer the active controller (term {})", node.term)
            self._abandon_work()
        if leader != self.controller_id:
            self._set_controller(leader)
        self._drain()

    def _set_controller(self, controller_id: int) -> None:
        self.controller_id = controller_id
        self._next_heartbeat = 0  # tell the new controller we are here, now
        self.on_controller(controller_id)

    @property
    def active(self) -> bool:
        """This node is the active controller and has applied every earlier-term entry."""
        return (
            self._leader_ready_index is not None and self.applied_index >= self._leader_ready_index
        )

    # ------------------------------------------------------------------------- proposals

    def _propose(self, records: list[object], done: Callable[[bool], None]) -> None:
        """Propose one entry; ``done(True)`` once it is applied, ``done(False)`` if lost."""
        try:
            index, effects = self.node.propose(md.encode_records(records), now_ms())
        except raft.NotLeaderError:
            done(False)
            return
        self._pending = (index, self.node.term, done)
        self._execute(effects)
        self._after_raft()

    def _complete(self, index: int, term: int) -> None:
        if self._pending is not None and self._pending[0] == index:
            _, pterm, done = self._pending
            self._pending = None
            done(pterm == term)

    def _enqueue(self, key: str, job: Callable[[], None]) -> None:
        if key in self._queued:
            return
        self._queued.add(key)
        self._work.append((key, job))
        self._drain()

    def _drain(self) -> None:
        while self._work and self._pending is None and self.active:
            key, job = self._work.popleft()
            self._queued.discard(key)
            job()

    def _abandon_work(self) -> None:
        if self._pending is not None:
            _, _, done = self._pending
            self._pending = None
            done(False)
        work, self._work = list(self._work), deque()
        self._queued.clear()
        for key, job in work:
            if key.startswith("admin:"):
                job()  # not active: answers NOT_CONTROLLER (or forwards)

    # ------------------------------------------------------------------------------ ticks

    def _tick(self) -> None:
        now = now_ms()
        if self.node is not None and now >= self.node.next_tick_ms:
            self._execute(self.node.tick(now))
            self._after_raft()
        if self.active:
            self._check_sessions(now)
            if now >= self._next_offline_check:  # damaged partitions (_elect_offline)
                self._next_offline_check = now + 1000
                self._enqueue("elect-offline", self._elect_offline)
            if self._auto_rebalance_ms > 0 and now >= self._next_rebalance:
                self._next_rebalance = now + self._auto_rebalance_ms
                if self._next_rebalance_armed:
                    self._enqueue("rebalance", self._auto_rebalance)
                self._next_rebalance_armed = True
        if now >= self._next_heartbeat and not self._heartbeat_inflight:
            self._send_heartbeat(now)
        if not self.is_voter and now >= self._next_fetch and not self._fetch_inflight:
            self._send_fetch()

    def _check_sessions(self, now: int) -> None:
        for b in self.image.live_brokers():
            seen = self._last_seen.setdefault(b, now)
            if now - seen > self.session_ms:
                self._enqueue(f"fence:{b}", lambda b=b: self._fence(b))

    def _fence(self, broker_id: int) -> None:
        seen = self._last_seen.get(broker_id, 0)
        if now_ms() - seen <= self.session_ms:
            return  # it came back while this waited
        records = md.fence_broker(self.image, broker_id, self._unclean_default)
        if records:
            self._warn_unclean(
                el.fence_broker(self.image, broker_id, unclean_default=self._unclean_default)
            )
        self._unfence_at.pop(broker_id, None)
        if records:
            self._log.warning(
                "fencing broker {}: no heartbeat for {} ms; {} partition change(s)",
                broker_id,
                now_ms() - seen,
                len(records) - 1,
            )
            self._propose(records, lambda ok: None)

    @property
    def _unclean_default(self) -> bool:
        return self.broker_configs.get("unclean.leader.election.enable", "false") == "true"

    def _warn_unclean(self, decisions: list) -> None:
        for d in decisions:
            r = d.record
            if d.unclean and r is not None:
                self._log.warning(
                    "UNCLEAN leader election for {}-{}: broker {} was not in sync; records "
                    "acknowledged by the old ISR may be lost (unclean.leader.election.enable)",
                    r.topic,
                    r.partition,
                    r.leader,
                )

    # ------------------------------------------------------------------------- heartbeats

    def _address_of(self, broker_id: int) -> str | None:
        """The inter-broker listener of ``broker_id`` (registered, else from the voters)."""
        info = self.image.brokers.get(broker_id)
        if info is not None and info.internal_address is not None:
            return info.internal_address
        return self.voters.get(broker_id)

    def _send_heartbeat(self, now: int) -> None:
        self._next_heartbeat = now + self.heartbeat_ms
        req = P.BrokerHeartbeatRequest(
            broker_id=self.broker_id,
            host=self.host,
            port=self.port,
            metadata_offset=self.applied_index,
            incarnation=self.incarnation,
            clean_shutdown=self.clean_shutdown,
            internal_host=self.internal_host,
            internal_port=self.internal_port,
        )
        if self.controller_id == self.broker_id:
            if self.active:
                if self._on_heartbeat(req).is_fenced:
                    self._next_heartbeat = now + min(self.heartbeat_ms, 100)
            else:
                self._next_heartbeat = now + 50  # retry soon, once this leader is ready
            return
        target = self.controller_id
        if target < 0:
            if self.is_voter:
                return
            target = sorted(self.voters)[self._fetch_voter % len(self.voters)]
        address = self._address_of(target)
        if address is None:
            return
        self._heartbeat_inflight = True
        future = self.endpoint.request(address, req, max(500, self.heartbeat_ms))
        me = self.actor_ref

        def done(f) -> None:
            try:
                result = f.result()
            except Exception as e:  # noqa: BLE001 - any failure: retry at the next beat
                result = e
            try:
                me.tell(_HeartbeatAnswer(result))
            except pykka.ActorDeadError:
                pass

        future.add_done_callback(done)

    def _on_heartbeat(self, req: P.BrokerHeartbeatRequest) -> P.BrokerHeartbeatResponse:
        if not self.active:
            return P.BrokerHeartbeatResponse(
                error_code=E.NOT_CONTROLLER, controller_id=self.controller_id
            )
        b = req.broker_id
        if req.incarnation in self._retired.get(b, ()):
            # a heartbeat of a process that a newer one of the same broker replaced
            return P.BrokerHeartbeatResponse(
                error_code=E.STALE_BROKER_EPOCH, controller_id=self.broker_id
            )
        self._last_seen[b] = now_ms()
        info = self.image.brokers.get(b)
        moved = (
            info is None
            or info.incarnation != req.incarnation
            or (info.host, info.port, info.rack, info.internal_host, info.internal_port)
            != (req.host, req.port, req.rack, req.internal_host, req.internal_port)
        )
        if moved:
            self._enqueue(f"register:{b}", lambda: self._register(req))
        elif info.fenced:
            # unfence once it has caught up with the metadata log as of its first beat
            target = self._unfence_at.setdefault(b, self.applied_index)
            if req.metadata_offset >= target:
                self._enqueue(f"unfence:{b}", lambda: self._unfence(b))
        return P.BrokerHeartbeatResponse(
            controller_id=self.broker_id, is_fenced=moved or info.fenced
        )

    def _register(self, req: P.BrokerHeartbeatRequest) -> None:
        b = req.broker_id
        if req.incarnation in self._retired.get(b, ()):
            return
        old = self.image.brokers.get(b)
        records = md.register_broker(
            self.image,
            b,
            req.host,
            req.port,
            req.rack,
            incarnation=req.incarnation,
            clean_shutdown=req.clean_shutdown,
            unclean_default=self._unclean_default,
            internal_host=req.internal_host,
            internal_port=req.internal_port,
        )
        records = [r for r in records if not isinstance(r, md.UnfenceBroker)]
        if not records:
            return
        self._unfence_at.pop(b, None)
        if old is not None and old.incarnation != req.incarnation:
            self._retired.setdefault(b, set()).add(old.incarnation)
            moves = sum(isinstance(r, el.PartitionChangeRecord) for r in records)
            self._log.warning(
                "broker {} restarted ({} shutdown): its previous process is fenced at once, "
                "{} partition change(s); it rejoins each ISR when caught up",
                b,
                "clean" if req.clean_shutdown else "UNCLEAN",
                moves,
            )
        self._log.info(
            "broker {} registered at {}:{}, inter-broker {}:{} (fenced until caught up)",
            b,
            req.host,
            req.port,
            req.internal_host,
            req.internal_port,
        )
        self._propose(records, lambda ok: None)

    def _unfence(self, broker_id: int) -> None:
        records = md.unfence_records(self.image, broker_id, self._unclean_default)
        if records:
            self._warn_unclean(
                el.unfence_broker(self.image, broker_id, unclean_default=self._unclean_default)
            )
        self._unfence_at.pop(broker_id, None)
        if records:
            self._log.info(
                "unfencing broker {}; {} partition(s) get a leader back",
                broker_id,
                len(records) - 1,
            )
            self._propose(records, lambda ok: None)

    # ------------------------------------------------------------------ metadata fetching

    def _on_fetch(self, req: P.MetadataFetchRequest) -> P.MetadataFetchResponse:
        if self.node is None:
            return P.MetadataFetchResponse(
                error_code=E.NOT_CONTROLLER, controller_id=self.controller_id
            )
        snap, first, entries = self.node.read_committed(
            req.start_index, max(1, min(req.max_entries, 1000))
        )
        return P.MetadataFetchResponse(
            controller_id=self.controller_id,
            snapshot=snap.data if snap else None,
            snapshot_index=snap.index if snap else 0,
            first_index=first,
            entries=tuple(b"" if e.control else e.payload for e in entries),
        )

    def _send_fetch(self) -> None:
        voters = sorted(self.voters)
        address = self.voters[voters[self._fetch_voter % len(voters)]]
        self._fetch_inflight = True
        future = self.endpoint.request(
            address, P.MetadataFetchRequest(start_index=self.applied_index + 1), 2000
        )
        me = self.actor_ref

        def done(f) -> None:
            try:
                result = f.result()
            except Exception as e:  # noqa: BLE001
                result = e
            try:
                me.tell(_Fetched(result, address))
            except pykka.ActorDeadError:
                pass

        future.add_done_callback(done)

    def _on_fetched(self, msg: _Fetched) -> None:
        self._fetch_inflight = False
        r = msg.response
        if not isinstance(r, P.MetadataFetchResponse) or r.error_code:
            self._fetch_voter += 1  # try another voter
            self._next_fetch = now_ms() + 200
            return
        old = self.image
        if r.snapshot is not None and r.snapshot_index > self.applied_index:
            self.image = md.decode_snapshot(r.snapshot)
            self.applied_index = r.snapshot_index
        if r.first_index == self.applied_index + 1:
            for i, payload in enumerate(r.entries):
                if payload:
                    self._apply_payload(payload, r.first_index + i)
                self.applied_index = r.first_index + i
        self._publish(old)
        if not r.entries:
            self._fetch_caught_up()
        if r.controller_id != self.controller_id:
            self._set_controller(r.controller_id)
        self._next_fetch = now_ms() + (0 if r.entries else 100)

    # ---------------------------------------------------------------------------- admin

    def _on_admin(self, message: Admin) -> None:
        key = f"admin:{uuid.uuid4().hex}"
        if self.active:
            self._enqueue(key, lambda: self._run_admin(message))
            return
        if self._leader_ready_index is not None:  # leader, still catching up: wait
            self._enqueue(key, lambda: self._run_admin(message))
            return
        self._forward_or_refuse(message)

    def _forward_or_refuse(self, message: Admin) -> None:
        target = self.controller_id
        address = self._address_of(target) if target >= 0 else None
        if (
            not message.forwardable
            or address is None
            or target == self.broker_id
            or self.endpoint.is_connected(address) is False  # it is down: tell the client now
        ):
            message.reply(not_controller(message.request))
            return
        # bounded: if the controller died meanwhile, the client should retry elsewhere soon
        timeout = min(
            getattr(message.request, "timeout_ms", 30000),
            10 * self.raft_config.election_timeout_ms,
        )
        future = self.endpoint.request(address, message.request, timeout)

        def done(f) -> None:
            try:
                message.reply(f.result())
            except Exception:  # noqa: BLE001 - the controller went away: client retries
                message.reply(not_controller(message.request))

        future.add_done_callback(done)

    def _run_admin(self, message: Admin) -> None:
        if not self.active:
            self._forward_or_refuse(message)
            return
        handler = self._HANDLERS.get(type(message.request))
        try:
            if handler is None:
                raise ValueError(f"controller cannot handle {type(message.request).__name__}")
            response, records = handler(self, message.request)
        except Exception as e:  # noqa: BLE001 - poison request: error reply, actor lives on
            self._log.exception("admin request failed")
            message.reply(P.ErrorResponse(error_code=E.UNKNOWN_SERVER_ERROR, error_message=str(e)))
            return
        if not records:
            message.reply(response)
            return

        def done(ok: bool) -> None:
            message.reply(response if ok else not_controller(message.request))

        self._propose(records, done)

    def _default_int(self, value: int, key: str) -> int:
        return value if value != -1 else int(self.broker_configs[key])

    def _create_topics(self, req: P.CreateTopicsRequest):
        results, records, image = [], [], self.image
        for t in req.topics:
            partitions = self._default_int(t.num_partitions, "num.partitions")
            rf = self._default_int(t.replication_factor, "default.replication.factor")
            try:
                validate_topic_configs(t.configs)
                recs = md.create_topic(image, t.name, partitions, rf, t.configs, uuid.uuid4().hex)
            except ConfigError as e:
                results.append(_topic_error(t.name, E.INVALID_CONFIG, str(e)))
                continue
            except md.MetadataError as e:
                results.append(_topic_error(t.name, E[e.kind], e.message))
                continue
            if not req.validate_only:
                image = md.replay(recs, image)
                records += recs
                self._log.info(
                    "creating topic {} with {} partition(s), replication factor {}",
                    t.name,
                    partitions,
                    rf,
                )
            results.append(
                P.CreatableTopicResult(
                    name=t.name,
                    topic_id=recs[0].topic_id,
                    num_partitions=partitions,
                    replication_factor=rf,
                )
            )
        return P.CreateTopicsResponse(topics=tuple(results)), records

    def _delete_topics(self, req: P.DeleteTopicsRequest):
        results, records, image = [], [], self.image
        for name in req.topic_names:
            try:
                recs = md.delete_topic(image, name)
                image = md.replay(recs, image)
                records += recs
                self._log.info("deleting topic {}", name)
                results.append(P.TopicResult(name=name))
            except md.MetadataError as e:
                results.append(
                    P.TopicResult(name=name, error_code=E[e.kind], error_message=e.message)
                )
        return P.DeleteTopicsResponse(results=tuple(results)), records

    def _create_partitions(self, req: P.CreatePartitionsRequest):
        results, records, image = [], [], self.image
        for t in req.topics:
            try:
                recs = md.create_partitions(image, t.name, t.count)
                if not req.validate_only:
                    image = md.replay(recs, image)
                    records += recs
                    self._log.info("topic {} grows to {} partitions", t.name, t.count)
                results.append(P.TopicResult(name=t.name))
            except md.MetadataError as e:
                results.append(
                    P.TopicResult(name=t.name, error_code=E[e.kind], error_message=e.message)
                )
        return P.CreatePartitionsResponse(results=tuple(results)), records

    def _alter_configs(self, req: P.AlterConfigsRequest):
        results, records, image = [], [], self.image
        for r in req.resources:
            code, message = E.NONE, None
            try:
                if r.resource_type != P.ConfigResourceType.TOPIC:
                    raise ConfigError(
                        "only topic configs can be altered; broker configs are set with "
                        "--config at startup"
                    )
                changes = []
                for c in r.configs:
                    if c.op == P.AlterConfigOp.SET and c.value is None:
                        raise ConfigError(f"{c.name}: SET needs a value")
                    if c.op not in (P.AlterConfigOp.SET, P.AlterConfigOp.DELETE):
                        raise ConfigError(f"{c.name}: unknown operation {c.op}")
                    changes.append((c.name, c.value if c.op == P.AlterConfigOp.SET else None))
                topic = image.topics.get(r.resource_name)
                merged = {**(topic.configs if topic else {}), **dict(changes)}
                validate_topic_configs(merged)
                recs = md.alter_configs(image, r.resource_name, changes)
                if not req.validate_only:
                    image = md.replay(recs, image)
                    records += recs
                    self._log.info("altering configs of {}: {}", r.resource_name, dict(changes))
            except ConfigError as e:
                code, message = E.INVALID_CONFIG, str(e)
            except md.MetadataError as e:
                code, message = E[e.kind], e.message
            results.append(
                P.AlterConfigsResult(
                    resource_type=r.resource_type,
                    resource_name=r.resource_name,
                    error_code=code,
                    error_message=message,
                )
            )
        return P.AlterConfigsResponse(results=tuple(results)), records

    # ------------------------------------------------------------------- replication

    def _code(self, name: str) -> int:
        try:
            return E[name]
        except KeyError:
            return E.UNKNOWN_SERVER_ERROR

    def _alter_partition(self, req: P.AlterPartitionRequest):
        """A leader's ISR change (election.alter_partition), then the next reassignment
        step if the change completes one."""
        info = self.image.partition(req.topic, req.partition)
        state = el.PartitionState.from_info(info) if info is not None else None
        live = self.image.live_brokers()
        d = el.alter_partition(
            req.topic,
            req.partition,
            state,
            broker_id=req.broker_id,
            leader_epoch=req.leader_epoch,
            partition_epoch=req.partition_epoch,
            new_isr=req.new_isr,
            live=live,
            new_isr_incarnations=req.new_isr_incarnations,
            registered={b: info.incarnation for b, info in self.image.brokers.items()},
            leader_incarnation=req.broker_incarnation,
        )
        response = P.AlterPartitionResponse(
            error_code=self._code(d.error), error_message=d.message or None
        )
        if d.record is None:
            return response, []
        self._log.info(
            "{}-{}: isr {} -> {} (leader {})",
            req.topic,
            req.partition,
            list(state.isr),
            list(d.record.isr),
            req.broker_id,
        )
        records = [d.record]
        step = el.reassignment_step(req.topic, req.partition, d.record.state, live)
        if step.record is not None:
            self._log.info(
                "{}-{}: reassignment step -> replicas {} leader {}",
                req.topic,
                req.partition,
                list(step.record.replicas),
                step.record.leader,
            )
            records.append(step.record)
            step2 = el.reassignment_step(req.topic, req.partition, step.record.state, live)
            if step2.record is not None:
                records.append(step2.record)
        return response, records

    # ---------------------------------------------------------------- damaged replicas

    def _replica_damage(self, req: P.ReplicaDamageRequest):
        """A replica found a corrupt batch (election.on_replica_damage): mark it damaged,
        out of the ISR and leadership; offline if it was the only ISR member."""
        info = self.image.partition(req.topic, req.partition)
        state = el.PartitionState.from_info(info) if info is not None else None
        topic = self.image.topics.get(req.topic)
        unclean = el.unclean_enabled(topic.configs if topic else {}, self._unclean_default)
        live = self.image.live_brokers()
        d = el.on_replica_damage(
            req.topic, req.partition, state, req.broker_id, live, unclean=unclean
        )
        response = P.ReplicaDamageResponse(
            error_code=self._code(d.error), error_message=d.message or None
        )
        if d.record is None:
            return response, []
        r = d.record
        self._log.warning(
            "{}-{}: replica on broker {} is damaged at offset {}: isr {} -> {}, leader {} -> {}{}",
            req.topic,
            req.partition,
            req.broker_id,
            req.offset,
            list(state.isr),
            list(r.isr),
            state.leader,
            r.leader,
            f" ({d.message})" if d.message else "",
        )
        self._warn_unclean([d])
        return response, [r]

    def _elect_offline(self) -> None:
        """Offline partitions that may now get a leader without a broker event, e.g. the
        only in-sync replica is damaged and unclean.leader.election.enable was turned on."""
        live = self.image.live_brokers()
        decisions = []
        for name, t in sorted(self.image.topics.items()):
            unclean = el.unclean_enabled(t.configs, self._unclean_default)
            for p, info in sorted(t.partitions.items()):
                if info.leader >= 0 or not info.damaged:
                    continue
                state = el.PartitionState.from_info(info)
                d = el.elect_offline(name, p, state, live, unclean=unclean)
                if d.record is not None:
                    decisions.append(d)
        if decisions:
            self._warn_unclean(decisions)
            self._propose([d.record for d in decisions], lambda ok: None)

    def _selected(self, topics) -> list[tuple[str, int]]:
        if topics is None:
            return [
                (name, p)
                for name, t in sorted(self.image.topics.items())
                for p in sorted(t.partitions)
            ]
        return [(t.topic, p) for t in topics for p in t.partitions]

    def _elect_leaders(self, req: P.ElectLeadersRequest):
        results, records = [], []
        live = self.image.live_brokers()
        for topic, p in self._selected(req.topics):
            info = self.image.partition(topic, p)
            if info is None:
                results.append(
                    P.ElectLeadersResult(
                        topic=topic, partition=p, error_code=E.UNKNOWN_TOPIC_OR_PARTITION
                    )
                )
                continue
            d = el.preferred_leader_election(topic, p, el.PartitionState.from_info(info), live)
            if d.record is not None:
                records.append(d.record)
                self._log.info("{}-{}: preferred leader {} elected", topic, p, d.record.leader)
            if req.topics is None and d.error == el.ELECTION_NOT_NEEDED:
                continue
            results.append(
                P.ElectLeadersResult(
                    topic=topic,
                    partition=p,
                    error_code=self._code(d.error),
                    error_message=d.message or None,
                )
            )
        return P.ElectLeadersResponse(results=tuple(results)), records

    def _reassign(self, req: P.AlterPartitionReassignmentsRequest):
        results, records, image = [], [], self.image
        live = image.live_brokers()
        for r in req.partitions:
            info = image.partition(r.topic, r.partition)
            if info is None:
                results.append(
                    P.ElectLeadersResult(
                        topic=r.topic,
                        partition=r.partition,
                        error_code=E.UNKNOWN_TOPIC_OR_PARTITION,
                    )
                )
                continue
            state = el.PartitionState.from_info(info)
            if r.replicas is None:
                d = el.cancel_reassignment(r.topic, r.partition, state, live)
            else:
                d = el.start_reassignment(r.topic, r.partition, state, r.replicas, image.brokers)
            if d.record is not None:
                self._log.info(
                    "{}-{}: reassignment {} -> {}",
                    r.topic,
                    r.partition,
                    list(state.replicas),
                    list(d.record.replicas),
                )
                records.append(d.record)
                image = md.apply(image, d.record)
                step = el.reassignment_step(r.topic, r.partition, d.record.state, live)
                if step.record is not None:
                    records.append(step.record)
                    image = md.apply(image, step.record)
            results.append(
                P.ElectLeadersResult(
                    topic=r.topic,
                    partition=r.partition,
                    error_code=self._code(d.error),
                    error_message=d.message or None,
                )
            )
        return P.AlterPartitionReassignmentsResponse(results=tuple(results)), records

    def _init_producer_id(self, req: P.InitProducerIdRequest):
        pid = self.image.next_producer_id
        return (
            P.InitProducerIdResponse(producer_id=pid, producer_epoch=0),
            [md.ProducerIds(next_producer_id=pid + 1)],
        )

    def _auto_rebalance(self) -> None:
        """auto.leader.rebalance.enable: preferred leaders back where they are in sync."""
        live = self.image.live_brokers()
        records = []
        for name, t in sorted(self.image.topics.items()):
            for p, info in sorted(t.partitions.items()):
                d = el.preferred_leader_election(name, p, el.PartitionState.from_info(info), live)
                if d.record is not None:
                    records.append(d.record)
        if records:
            self._log.info(
                "auto leader rebalance: {} partition(s) back to their preferred leader",
                len(records),
            )
            self._propose(records, lambda ok: None)

    _HANDLERS = {
        P.CreateTopicsRequest: _create_topics,
        P.DeleteTopicsRequest: _delete_topics,
        P.CreatePartitionsRequest: _create_partitions,
        P.AlterConfigsRequest: _alter_configs,
        P.AlterPartitionRequest: _alter_partition,
        P.ReplicaDamageRequest: _replica_damage,
        P.ElectLeadersRequest: _elect_leaders,
        P.AlterPartitionReassignmentsRequest: _reassign,
        P.InitProducerIdRequest: _init_producer_id,
    }


def _topic_error(name: str, code: int, message: str) -> P.CreatableTopicResult:
    return P.CreatableTopicResult(name=name, error_code=code, error_message=message)


def not_controller(req: object, message: str = "this broker is not the active controller"):
    """The typed response refusing ``req`` with NOT_CONTROLLER (41) for each of its items."""
    code = E.NOT_CONTROLLER
    match req:
        case P.CreateTopicsRequest():
            return P.CreateTopicsResponse(
                topics=tuple(_topic_error(t.name, code, message) for t in req.topics)
            )
        case P.DeleteTopicsRequest():
            return P.DeleteTopicsResponse(
                results=tuple(
                    P.TopicResult(name=n, error_code=code, error_message=message)
                    for n in req.topic_names
                )
            )
        case P.CreatePartitionsRequest():
            return P.CreatePartitionsResponse(
                results=tuple(
                    P.TopicResult(name=t.name, error_code=code, error_message=message)
                    for t in req.topics
                )
            )
        case P.AlterConfigsRequest():
            return P.AlterConfigsResponse(
                results=tuple(
                    P.AlterConfigsResult(
                        resource_type=r.resource_type,
                        resource_name=r.resource_name,
                        error_code=code,
                        error_message=message,
                    )
                    for r in req.resources
                )
            )
    return P.ErrorResponse(error_code=code, error_message=message)
