"""The BrokerLifecycle actor: this broker's registration and heartbeats to the controller.

Kafka's ``BrokerLifecycleManager``: every ``broker.heartbeat.interval.ms`` the broker sends a
``BrokerHeartbeat`` to the active controller's inter-broker listener (its first one
registers the broker, with its incarnation and how its previous process ended); while the
answer says "fenced" it beats faster (every 100 ms) so it is unfenced as soon as it has
caught up. When this broker *is* the active controller the beat goes to the local Controller
actor as a message. Before any controller is known, a broker that is not a voter beats the
voters in turn (the one that leads answers; the others say NOT_CONTROLLER).

It learns what it reports from the Controller actor (``Progress``: the active controller's
id, the metadata index this broker has applied, the image that holds the other brokers'
inter-broker addresses), and it wakes only when a beat is due (the broker's timer service).
"""

from __future__ import annotations

from collections.abc import Callable

import pykka
from loguru import logger
from rillet.coordinator import metadata as md
from rillet.transport import protocol as P

from rillet.frozen import frozen

from .features import local_versions
from .runtime import DispatchedActor

E = P.ErrorCode
FENCED_BEAT_MS = 100  # how often a fenced broker beats (it waits to be unfenced)
RETRY_MS = 50  # this broker leads the quorum but is not yet the active controller


@frozen
class Progress:
    """From the Controller actor: who the active controller is and how far this broker has
    applied the metadata log."""

    controller_id: int
    applied_index: int
    image: md.MetadataImage


@frozen
class Beat:
    generation: int


@frozen
class ControlledShutdown:
    """From the node on SIGTERM: heartbeat with ``want_shut_down`` (now, then every
    FENCED_BEAT_MS) until the controller answers ``should_shut_down``; then ``done()``."""

    done: Callable[[], None]


@frozen
class _Answer:
    response: object  # BrokerHeartbeatResponse, ErrorResponse, or an exception


@frozen
class Identity:
    """What this broker registers: its listeners and its process."""

    broker_id: int
    host: str
    port: int
    internal_host: str
    internal_port: int
    incarnation: str
    clean_shutdown: bool
    kafka_host: str = ""  # the KAFKA listener's advertised address ("": none)
    kafka_port: int = 0


class BrokerLifecycle(DispatchedActor):
    lane = "controller"  # Raft and heartbeat timers: never behind client sessions

    def __init__(
        self,
        identity: Identity,
        *,
        voters: dict[int, str],
        heartbeat_ms: int,
        endpoint,  # ClientEndpoint for broker-to-broker requests
        controller,  # the local Controller actor (ActorRef)
        schedule: Callable[[float, Callable[[], None]], object],
        on_controller_hint: Callable[[int], None] = lambda _id: None,
    ) -> None:
        super().__init__()
        self.me = identity
        self.voters = voters
        self.is_voter = identity.broker_id in voters
        self.heartbeat_ms = heartbeat_ms
        self.endpoint = endpoint
        self.controller = controller
        self.schedule = schedule
        self.on_controller_hint = on_controller_hint
        self.controller_id = -1
        self.applied_index = 0
        self.image = md.MetadataImage()
        self._generation = 0
        self._inflight = False
        self._next_voter = 0
        self.beats = 0  # heartbeats sent (tests and status)
        self._shut_down: Callable[[], None] | None = None  # set by ControlledShutdown
        self.metadata_versions = local_versions(identity.broker_id)  # actors/features.py
        self._refusal: str | None = None  # the controller's last refusal, logged once
        self._log = logger.bind(broker=identity.broker_id, actor="lifecycle")

    def on_start(self) -> None:
        self._arm(0)

    def on_receive(self, message: object) -> object:
        try:
            match message:
                case Beat(generation=g):
                    if g == self._generation and not self._inflight:
                        self._beat()
                case _Answer(response=r):
                    self._on_answer(r)
                case ControlledShutdown(done=done):
                    self._shut_down = done
                    if not self._inflight:
                        self._arm(0)
                case Progress(controller_id=cid, applied_index=index, image=image):
                    self.applied_index, self.image = index, image
                    if cid != self.controller_id:
                        self.controller_id = cid
                        if not self._inflight:
                            self._arm(0)  # tell the new controller we are here, now
                case _:
                    self._log.warning("ignoring unknown message {!r}", type(message).__name__)
        except Exception:  # noqa: BLE001 - one bad input must not stop the heartbeats
            self._log.exception("lifecycle failed on {}", type(message).__name__)
            self._inflight = False  # a beat that failed to leave is not awaited
            self._arm(self.heartbeat_ms)
        return None

    def _arm(self, delay_ms: int) -> None:
        """The next beat in ``delay_ms``; any beat armed before is void."""
        self._generation += 1
        generation, me = self._generation, self.actor_ref

        def due() -> None:
            try:
                me.tell(Beat(generation))
            except pykka.ActorDeadError:
                pass

        self.schedule(max(0, delay_ms) / 1000, due)

    def _request(self) -> P.BrokerHeartbeatRequest:
        m = self.me
        return P.BrokerHeartbeatRequest(
            broker_id=m.broker_id,
            host=m.host,
            port=m.port,
            metadata_offset=self.applied_index,
            incarnation=m.incarnation,
            clean_shutdown=m.clean_shutdown,
            internal_host=m.internal_host,
            internal_port=m.internal_port,
            want_shut_down=self._shut_down is not None,
            kafka_host=m.kafka_host,
            kafka_port=m.kafka_port,
            metadata_version_min=self.metadata_versions[0],
            metadata_version_max=self.metadata_versions[1],
        )

    def _address_of(self, broker_id: int) -> str | None:
        return self.image.inter_broker_address(broker_id, self.voters)

    def _beat(self) -> None:
        target = self.controller_id
        if target < 0:
            if self.is_voter:  # the quorum elects; a voter learns the result from Raft
                self._arm(self.heartbeat_ms)
                return
            voters = sorted(self.voters)
            target = voters[self._next_voter % len(voters)]
            self._next_voter += 1
        me = self.actor_ref

        def answered(result: object) -> None:
            try:
                me.tell(_Answer(result))
            except pykka.ActorDeadError:
                pass

        self._inflight = True
        self.beats += 1
        if target == self.me.broker_id:
            from .controller import Heartbeat  # the local controller, as a message

            self.controller.tell(Heartbeat(self._request(), answered))
            return
        address = self._address_of(target)
        if address is None:
            self._inflight = False
            self._arm(self.heartbeat_ms)
            return
        future = self.endpoint.request(address, self._request(), max(500, self.heartbeat_ms))

        def done(f) -> None:
            try:
                result = f.result()
            except Exception as e:  # noqa: BLE001 - any failure: retry at the next beat
                result = e
            answered(result)

        future.add_done_callback(done)

    def _on_answer(self, r: object) -> None:
        self._inflight = False
        delay = self.heartbeat_ms
        if self._shut_down is not None:
            delay = min(delay, FENCED_BEAT_MS)
            if isinstance(r, P.BrokerHeartbeatResponse) and r.should_shut_down:
                done, self._shut_down = self._shut_down, None
                self._log.info("controlled shutdown: leaderships moved, leaving")
                done()
                return  # no more heartbeats: the broker exits
        if isinstance(r, P.BrokerHeartbeatResponse):
            if r.error_message != self._refusal:  # e.g. it cannot read the metadata.version
                self._refusal = r.error_message
                if r.error_message:
                    self._log.error("the controller refuses this broker: {}", r.error_message)
            if r.is_fenced and r.error_code != E.UNSUPPORTED_VERSION:  # refused: no hurry
                delay = min(delay, FENCED_BEAT_MS)
            if r.error_code == E.NOT_CONTROLLER and self.controller_id == self.me.broker_id:
                delay = RETRY_MS  # this broker leads the quorum and is about to be active
            if not self.is_voter and r.controller_id >= 0 and r.controller_id != self.controller_id:
                self.on_controller_hint(r.controller_id)
        self._arm(delay)
