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
``broker.heartbeat.interval.ms`` from its BrokerLifecycle actor (actors/broker_lifecycle.py),
which this actor keeps informed (``on_progress``); the decisions on those heartbeats are
coordinator/control/brokers.py's, the other decisions coordinator/control/'s. ``publish(old, new)``
runs on this actor's thread after every image change; it must not block on other actors.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

import cbor2
import pykka
from loguru import logger
from rillet.coordinator import features as ft
from rillet.coordinator import metadata as md
from rillet.coordinator import raft
from rillet.coordinator.control import ControllerResult
from rillet.coordinator.control import brokers as cb
from rillet.coordinator.control import partitions as cp
from rillet.transport import protocol as P

from rillet.frozen import frozen

from . import features as feature_wire
from .configs import BrokerConfig, ConfigError, raft_heartbeat_ms
from .controller_wire import decide, not_controller, refuse
from .metadata_log import PartitionRaftLog
from .runtime import DispatchedActor
from .ticker import now_ms

E = P.ErrorCode
# ZeroMQ identity prefix of broker-to-broker connections: a label for logs and tools only.
# It decides nothing: a request is "from a broker" when it arrives on the inter-broker listener.
BROKER_IDENTITY_PREFIX = b"rillet-broker:"
# AlterPartition requests proposed as one Raft entry (a change record is ~100 bytes: far
# below the entry size cap); the work queue key starts with "admin:" so that losing the
# leadership answers (or forwards) the queued ones
ALTER_BATCH_KEY = "admin:alter-partitions"
ALTER_BATCH_MAX = 1000
# With ``wake_at`` (a broker's Ticker), the controller is woken when its next timed work is
# due (a Raft heartbeat or election deadline, a broker session's expiry, the offline-partition
# check, a metadata fetch), not by a fixed 20 ms tick: an idle broker's 50 wake-ups a second
# cost ~0.7% of a core (issue #12). Never sooner than TICK_MIN_MS apart (the old period), never
# later than TICK_MAX_MS (a backstop).
TICK_MIN_MS = 20
TICK_MAX_MS = 250


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


@frozen
class Admin:
    """An admin request and where its response goes. ``forwardable``: may be forwarded to
    the active controller (False for requests that came from another broker)."""

    request: object
    reply: Callable[[object], None]
    forwardable: bool = True


@frozen
class RaftIn:
    data: bytes


@frozen
class Heartbeat:
    request: P.BrokerHeartbeatRequest
    reply: Callable[[object], None]


@frozen
class MetadataFetch:
    request: P.MetadataFetchRequest
    reply: Callable[[object], None]


@frozen
class Tick:
    pass


@frozen
class _Published:
    """The publisher has applied every image up to these committed entries: answer them."""

    committed: tuple[tuple[int, int], ...]  # (index, term)


@frozen
class _Fetched:
    response: object  # MetadataFetchResponse, or an exception
    address: str


@frozen
class ControllerHint:
    """A non-voter heard who the active controller is (from a heartbeat answer)."""

    controller_id: int


@frozen
class ControllerStatus:
    broker_id: int
    voter: bool
    role: str
    term: int
    controller_id: int
    applied_index: int


@frozen
class GetStatus:
    pass


# --------------------------------------------------------------------------------- the actor


class Controller(DispatchedActor):
    lane = "controller"  # Raft and heartbeat timers: never behind client sessions

    def __init__(
        self,
        *,
        broker_id: int,
        metadata_dir: Path,
        publish: Callable[[md.MetadataImage, md.MetadataImage], None],
        broker_configs: Mapping[str, str],
        endpoint,  # ClientEndpoint for broker-to-broker requests
        on_controller: Callable[[int], None] = lambda _id: None,
        on_caught_up: Callable[[md.MetadataImage], None] = lambda _image: None,
        on_progress: Callable[[int, int, md.MetadataImage], None] = lambda *_: None,
        internal_address: str = "127.0.0.1:9092",  # this voter, if the voters are not given
        clock: Callable[[], int] = now_ms,  # wall-clock ms; tests may pass a fake one
        raft_stats=None,  # actors/metrics_sources.RaftStats (metrics on), written here only
        on_fatal: Callable[[str], None] = feature_wire.halt,  # an unreadable metadata record
        # publish on another thread (actors/metadata_publisher.py): ``after_publish(fn)``
        # runs ``fn`` once every image given to ``publish`` so far is applied; None: the
        # ``publish`` call itself applies it
        after_publish: Callable[[Callable[[], None]], None] | None = None,
        # ``wake_at(delay_s)`` sends this actor a Tick after delay_s and returns a handle
        # with ``cancel()`` (Ticker.call_later); None: someone else ticks it periodically
        wake_at: Callable[[float], object] | None = None,
    ) -> None:
        super().__init__()
        self.after_publish = after_publish
        self.wake_at = wake_at
        self._wake: tuple[int, object] | None = None  # (due ms, its timer) when armed
        self.on_fatal = on_fatal
        # the metadata.version levels this broker reads (actors/features.py)
        self.metadata_versions = feature_wire.local_versions(broker_id)
        self.raft_stats = raft_stats
        self.broker_id = broker_id
        self.clock = clock
        self.metadata_dir = Path(metadata_dir)
        self.publish = publish
        self.broker_configs = BrokerConfig.of(broker_configs)
        self.endpoint = endpoint
        self.on_controller = on_controller
        self.on_caught_up = on_caught_up
        self.on_progress = on_progress  # (controller id, applied index, image): the lifecycle
        self._reported: tuple[int, int, md.MetadataImage] | None = None
        self._startup_index: int | None = None  # caught up once applied this far
        self._observer_caught_up = False
        voters = parse_voters(self.broker_configs["controller.quorum.voters"])
        self.voters = voters or {broker_id: internal_address}
        self.is_voter = broker_id in self.voters
        election = self.broker_configs.int("controller.quorum.election.timeout.ms")
        self.raft_config = raft.RaftConfig(
            election_timeout_ms=election,
            heartbeat_interval_ms=raft_heartbeat_ms(election),
            fetch_timeout_ms=self.broker_configs.int("controller.quorum.fetch.timeout.ms"),
            snapshot_threshold=self.broker_configs.int("metadata.snapshot.threshold.entries"),
        )
        self.session_ms = self.broker_configs.int("broker.session.timeout.ms")
        self.image = md.MetadataImage()
        self.applied_index = 0
        self.controller_id = -1
        self.log: PartitionRaftLog | None = None
        self.node: raft.RaftNode | None = None
        self._leader_ready_index: int | None = None  # set while this node leads
        self._pending: tuple[int, int, Callable[[bool], None]] | None = None
        self._work: deque[tuple[str, Callable[[], None]]] = deque()
        self._alters: deque[Admin] = deque()  # AlterPartition requests for the next entry
        self._queued: set[str] = set()
        self.sessions = cb.BrokerHeartbeats(self.session_ms)
        self._fetch_inflight = False
        self._next_fetch = 0
        self._fetch_voter = 0
        self._dropped = 0
        self._log = logger.bind(broker=broker_id, actor="controller")
        rebalance = self.broker_configs.flag("auto.leader.rebalance.enable")
        interval = self.broker_configs.int("leader.imbalance.check.interval.seconds")
        self._auto_rebalance_ms = interval * 1000 if rebalance else 0
        self._next_rebalance = 0
        self._next_rebalance_armed = False
        self._next_offline_check = 0
        # the image the offline check last found nothing to do in: the check is a pure
        # function of the image (and static configs), so it runs again only on a new image
        # (issue #12: a pass over every partition each second while idle)
        self._offline_clean: md.MetadataImage | None = None

    # -------------------------------------------------------------------------- lifecycle

    def on_start(self) -> None:
        if not self.is_voter:
            self._log.info("not a controller voter; following the metadata log of {}", self.voters)
            return
        self.log = PartitionRaftLog(self.metadata_dir, self.clock)
        now = self.clock()
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
        self._arm_wake()

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
                case _Published(committed=committed):
                    for index, term in committed:
                        self._complete(index, term)
                    self._drain()
                case ControllerHint(controller_id=cid):
                    if not self.is_voter and cid >= 0 and cid != self.controller_id:
                        self._set_controller(cid)
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
        self._report_progress()
        self._arm_wake()
        return None

    def next_due_ms(self, now: int) -> int:
        """When ``_tick`` next has work: the Raft node's next deadline, and while active the
        earliest broker session expiry, the offline-partition check and the leader
        rebalance; an observer's next metadata fetch. Within [now + TICK_MIN_MS,
        now + TICK_MAX_MS]."""
        due = now + TICK_MAX_MS
        if self.node is not None:
            due = min(due, self.node.next_tick_ms)
        if self.active:
            due = min(due, self.sessions.next_expiry_ms(self.image, now))
            if self.image is not self._offline_clean:
                due = min(due, self._next_offline_check)
            if self._auto_rebalance_ms > 0:
                due = min(due, self._next_rebalance)
        if not self.is_voter and not self._fetch_inflight:
            due = min(due, self._next_fetch)
        return max(due, now + TICK_MIN_MS)

    def _arm_wake(self) -> None:
        """Have the ticker wake this actor at ``next_due_ms`` (sooner than the wake already
        armed: that one is cancelled; a wake that has fired is re-armed)."""
        if self.wake_at is None:
            return
        now = self.clock()
        due = self.next_due_ms(now)
        if self._wake is not None:
            armed, timer = self._wake
            if now < armed <= due:
                return  # an earlier (or the same) wake is still to come
            if now < armed:
                timer.cancel()
        self._wake = (due, self.wake_at((due - now) / 1000))

    def _report_progress(self) -> None:
        """Tell the broker's lifecycle (its heartbeats) what changed: the controller, the
        applied index or the image."""
        now = (self.controller_id, self.applied_index, self.image)
        last = self._reported
        if last is None or last[0] != now[0] or last[1] != now[1] or last[2] is not now[2]:
            self._reported = now
            self.on_progress(*now)

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
                    self.image = self._snapshot(snap.data)
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
        if self.raft_stats is not None:
            self.raft_stats.observe(self.node, self.applied_index)
        if committed and self.after_publish is not None and self._pending is not None:
            # answered once the publisher has applied the image (a new topic's partition
            # actors exist here); Raft goes on meanwhile, the next proposal waits
            ref, done = self.actor_ref, tuple(committed)

            def published() -> None:
                try:
                    ref.tell(_Published(done))
                except pykka.ActorDeadError:
                    pass  # stopped meanwhile: nobody waits for the answer

            self.after_publish(published)
            return
        for index, term in committed:
            self._complete(index, term)

    def _snapshot(self, data: bytes) -> md.MetadataImage:
        try:
            return feature_wire.snapshot_readable(data, self.metadata_versions[1])
        except ft.UnreadableRecord as e:
            self.on_fatal(f"the metadata snapshot is unreadable: {e}")
            raise

    def _apply_payload(self, payload: bytes, index: int) -> None:
        try:
            records = feature_wire.decode_readable(payload, self.metadata_versions[1])
        except ft.UnreadableRecord as e:
            self.on_fatal(f"metadata log entry {index} is unreadable: {e}")
            raise
        except (ValueError, KeyError, TypeError) as e:
            self._log.error("metadata entry {} is malformed, skipped: {}", index, e)
            return
        try:
            self.image = md.replay(records, self.image)
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
            effects = self.node.handle(message, self.clock())
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
            self.sessions.became_active(self.image, self.clock())
            self._log.info("became the active controller (term {})", node.term)
            self._enqueue("features-bootstrap", self._bootstrap_features)
        elif not node.is_leader and self._leader_ready_index is not None:
            self._leader_ready_index = None
            self._log.info("no longer the active controller (term {})", node.term)
            self._abandon_work()
        if leader != self.controller_id:
            self._set_controller(leader)
        self._drain()

    def _set_controller(self, controller_id: int) -> None:
        self.controller_id = controller_id
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
            index, effects = self.node.propose(md.encode_records(records), self.clock())
        except raft.NotLeaderError:
            done(False)
            return
        self._pending = (index, self.node.term, done)
        if self.raft_stats is not None:
            self.raft_stats.proposed(index)
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
        now = self.clock()
        if self.node is not None and now >= self.node.next_tick_ms:
            self._execute(self.node.tick(now))
            self._after_raft()
        if self.active:
            self._check_sessions(now)
            if now >= self._next_offline_check and self.image is not self._offline_clean:
                # damaged partitions (_elect_offline), at most once a second
                self._next_offline_check = now + 1000
                self._enqueue("elect-offline", self._elect_offline)
            if self._auto_rebalance_ms > 0 and now >= self._next_rebalance:
                self._next_rebalance = now + self._auto_rebalance_ms
                if self._next_rebalance_armed:
                    self._enqueue("rebalance", self._auto_rebalance)
                self._next_rebalance_armed = True
        if not self.is_voter and now >= self._next_fetch and not self._fetch_inflight:
            self._send_fetch()

    def _check_sessions(self, now: int) -> None:
        for b in self.sessions.expired(self.image, now):
            self._enqueue(f"fence:{b}", lambda b=b: self._fence(b))

    def _fence(self, broker_id: int) -> None:
        self._commit(
            self.sessions.fence(
                self.image, broker_id, now_ms=self.clock(), unclean_default=self._unclean_default
            )
        )

    @property
    def _unclean_default(self) -> bool:
        return self.broker_configs.flag("unclean.leader.election.enable")

    def _commit(self, result: ControllerResult, done: Callable[[bool], None] | None = None):
        """Log a decision's notes and propose its records (``done(ok)`` once applied)."""
        for note in result.notes:
            self._log.log(note.level.upper(), "{}", note.text)
        if result.records:
            self._propose(result.records, done or (lambda ok: None))
        elif done is not None:
            done(True)

    # ------------------------------------------------------------------------- heartbeats

    def _address_of(self, broker_id: int) -> str | None:
        return self.image.inter_broker_address(broker_id, self.voters)

    def _on_heartbeat(self, req: P.BrokerHeartbeatRequest) -> P.BrokerHeartbeatResponse:
        if not self.active:
            return P.BrokerHeartbeatResponse(
                error_code=E.NOT_CONTROLLER, controller_id=self.controller_id
            )
        beat = self.sessions.heartbeat(
            self.image, req, now_ms=self.clock(), applied_index=self.applied_index
        )
        b = req.broker_id
        unclean = self._unclean_default
        if beat.action == cb.REGISTER:
            self._enqueue(
                f"register:{b}",
                lambda: self._commit(
                    self.sessions.register(self.image, req, unclean_default=unclean)
                ),
            )
        elif beat.action == cb.UNFENCE:
            self._enqueue(
                f"unfence:{b}",
                lambda: self._commit(self.sessions.unfence(self.image, b, unclean_default=unclean)),
            )
        elif beat.action == cb.SHUT_DOWN:
            self._enqueue(
                f"shutdown:{b}",
                lambda: self._commit(self.sessions.controlled_shutdown(self.image, b)),
            )
        return P.BrokerHeartbeatResponse(
            error_code=P.code_of(beat.error),
            controller_id=self.broker_id,
            is_fenced=beat.fenced,
            should_shut_down=beat.should_shut_down,
            error_message=beat.message,
        )

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
            self._next_fetch = self.clock() + 200
            return
        old = self.image
        if r.snapshot is not None and r.snapshot_index > self.applied_index:
            self.image = self._snapshot(r.snapshot)
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
        self._next_fetch = self.clock() + (0 if r.entries else 100)

    # ---------------------------------------------------------------------------- admin

    def _on_admin(self, message: Admin) -> None:
        if isinstance(message.request, P.AlterPartitionRequest) and (
            self._leader_ready_index is not None
        ):
            # leaders' ISR changes are proposed together (one Raft entry for many)
            self._alters.append(message)
            self._enqueue(ALTER_BATCH_KEY, self._run_alters)
            return
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

    def _run_alters(self) -> None:
        """The queued AlterPartition requests as one Raft entry (Kafka's brokers batch them
        in one AlterPartition request; here each partition sends its own, and one entry per
        request made settling 10,000 partitions take minutes: issue #12). At most
        ``ALTER_BATCH_MAX`` per entry, one request per partition (a second waits for the
        next entry, decided against the image the first made)."""
        if not self.active:
            alters, self._alters = self._alters, deque()
            for message in alters:
                self._forward_or_refuse(message)
            return
        batch: list[Admin] = []
        later: deque[Admin] = deque()
        seen: set[tuple[str, int]] = set()
        while self._alters and len(batch) < ALTER_BATCH_MAX:
            message = self._alters.popleft()
            key = (message.request.topic, message.request.partition)
            (later if key in seen else batch).append(message)
            seen.add(key)
        later.extend(self._alters)
        self._alters = later
        records: list[object] = []
        answers: list[tuple[Admin, object]] = []
        for message in batch:
            result = self._decided(message, "AlterPartition", lambda req: decide(
                req, self.image, self.broker_configs, self._unclean_default))
            if result is None:
                continue
            for note in result.notes:
                self._log.log(note.level.upper(), "{}", note.text)
            records.extend(result.records)
            answers.append((message, result.response))

        def done(ok: bool) -> None:
            for message, response in answers:
                message.reply(response if ok else not_controller(message.request))

        if records:
            self._propose(records, done)
        else:
            done(True)
        if self._alters:  # the rest in the next entry (the work queue runs it after this)
            self._enqueue(ALTER_BATCH_KEY, self._run_alters)

    def _decided(self, message: Admin, what: str,
                 decide_one: Callable[[object], ControllerResult]) -> ControllerResult | None:
        """``decide_one(message.request)`` checked against the finalized metadata.version
        (coordinator/features.py), or None once ``message`` is answered with the error: a
        feature refusal, or for any other exception (a poison request) an error reply and
        the actor lives on."""
        req = message.request
        try:
            result = decide_one(req)
            ft.check_records(self.image.metadata_version, result.records)
        except ft.FeatureError as e:
            message.reply(refuse(req, P.code_of(e.kind), e.message))
            return None
        except Exception as e:  # noqa: BLE001 - poison request: error reply, actor lives on
            self._log.exception("{} failed", what)
            message.reply(P.ErrorResponse(error_code=E.UNKNOWN_SERVER_ERROR, error_message=str(e)))
            return None
        return result

    def _run_admin(self, message: Admin) -> None:
        if not self.active:
            self._forward_or_refuse(message)
            return
        def decide_admin(req: object) -> ControllerResult:
            if isinstance(req, P.UpdateFeaturesRequest):
                return feature_wire.decide_update(req, self.image, self.metadata_versions)
            if isinstance(req, P.DescribeFeaturesRequest):
                response = feature_wire.describe(self.image, self.metadata_versions)
                return ControllerResult([], response)
            return decide(req, self.image, self.broker_configs, self._unclean_default)

        result = self._decided(message, "admin request", decide_admin)
        if result is None:
            return
        response = result.response

        def done(ok: bool) -> None:
            message.reply(response if ok else not_controller(message.request))

        self._commit(result, done)

    def _bootstrap_features(self) -> None:
        requested = self.broker_configs.int("bootstrap.metadata.version")
        self._commit(feature_wire.bootstrap(self.image, requested, self.metadata_versions))

    def _elect_offline(self) -> None:
        image = self.image
        if image is self._offline_clean:
            return
        result = cp.elect_offline(image, unclean_default=self._unclean_default)
        if not result.records:  # else checked again (the proposal may not be applied)
            self._offline_clean = image
        self._commit(result)

    def _auto_rebalance(self) -> None:
        self._commit(cp.auto_rebalance(self.image))
