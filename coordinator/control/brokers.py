"""Broker sessions on the active controller: registration, heartbeats, fencing.

Kafka's ``BrokerHeartbeatManager`` and ``ClusterControlManager`` in one class. A broker's
first heartbeat (or one with a new address or a new incarnation: a new process) registers it,
fenced; it is unfenced once it has applied the metadata log up to where the log stood at that
heartbeat; a broker that sends no heartbeat for ``broker.session.timeout.ms`` is fenced (its
leaderships move, it leaves the ISRs). A new incarnation retires the previous one at once: a
late heartbeat of the old process is refused with STALE_BROKER_EPOCH.

Incarnations that start with a start sequence (``<digits>-<random>``, as actors/node.py
makes them; digits alone also count) are ordered: a heartbeat of an incarnation older than
the registered one is refused and retired the same way. Without the order, a late heartbeat
of a process that died before it registered (a double restart: B dies unregistered, C
registers, then B's heartbeat arrives) would register B and retire C, the live process, for
good (found by the replication simulator).

The state here is soft: it is rebuilt when a controller becomes active (every registered
broker gets a full session from then).
"""

from __future__ import annotations

from typing import Protocol

from rillet.coordinator import election as el
from rillet.coordinator import features as ft
from rillet.coordinator import metadata as md

from rillet.frozen import frozen

from .result import ControllerResult, Note, unclean_notes

REGISTER = "register"
UNFENCE = "unfence"
SHUT_DOWN = "shut_down"  # controlled shutdown: move its leaderships, take it out of the ISRs


class BrokerBeat(Protocol):
    """The fields of a BrokerHeartbeat request that decide anything."""

    broker_id: int
    host: str
    port: int
    rack: str | None
    metadata_offset: int
    incarnation: str
    clean_shutdown: bool
    internal_host: str
    internal_port: int
    want_shut_down: bool
    kafka_host: str
    kafka_port: int
    metadata_version_min: int
    metadata_version_max: int


def _versions(beat: BrokerBeat) -> tuple[int, int]:
    """The metadata.version levels a heartbeat says its broker reads (0: not said: 1)."""
    lo = getattr(beat, "metadata_version_min", 0)  # absent: a beat from before feature levels
    hi = getattr(beat, "metadata_version_max", 0)
    return (lo or ft.MIN_LEVEL, hi or ft.MIN_LEVEL)


@frozen
class Beat:
    """The answer to a heartbeat, and what the controller must do next (``action``:
    REGISTER, UNFENCE or SHUT_DOWN, run as its own proposal; None). ``should_shut_down``:
    a broker in controlled shutdown leads nothing and is in no ISR any more: it may exit."""

    error: str = "NONE"
    message: str | None = None
    fenced: bool = False
    action: str | None = None
    should_shut_down: bool = False


def _start_sequence(incarnation: str) -> int | None:
    head = incarnation.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def older(incarnation: str, than: str) -> bool:
    """Is ``incarnation`` a process started before ``than``? (False when either carries no
    start sequence: then nothing is known.)"""
    a, b = _start_sequence(incarnation), _start_sequence(than)
    return a is not None and b is not None and a < b


class BrokerHeartbeats:
    def __init__(self, session_timeout_ms: int) -> None:
        self.session_timeout_ms = session_timeout_ms
        self.last_seen: dict[int, int] = {}
        self.unfence_at: dict[int, int] = {}  # fenced broker -> metadata index to reach
        self.retired: dict[int, set[str]] = {}  # incarnations replaced by a newer one

    def became_active(self, image: md.MetadataImage, now_ms: int) -> None:
        """A new active controller gives every registered broker a full session."""
        self.last_seen = {b: now_ms for b in image.brokers}

    def heartbeat(
        self, image: md.MetadataImage, beat: BrokerBeat, *, now_ms: int, applied_index: int
    ) -> Beat:
        b = beat.broker_id
        info = image.brokers.get(b)
        if info is not None and older(beat.incarnation, info.incarnation):
            self.retired.setdefault(b, set()).add(beat.incarnation)
        if beat.incarnation in self.retired.get(b, ()):
            return Beat(error="STALE_BROKER_EPOCH")
        try:  # a broker that cannot read the finalized metadata.version is not registered
            ft.check_broker(image.metadata_version, b, _versions(beat))
        except ft.FeatureError as e:
            return Beat(error=e.kind, message=e.message, fenced=True)
        self.last_seen[b] = now_ms
        moved = (
            info is None
            or info.incarnation != beat.incarnation
            or (info.host, info.port, info.rack, info.internal_host, info.internal_port,
                info.kafka_host, info.kafka_port)
            != (beat.host, beat.port, beat.rack, beat.internal_host, beat.internal_port,
                beat.kafka_host, beat.kafka_port)
        )
        if beat.want_shut_down:
            # Kafka's controlled shutdown (KIP-631): the controller fences the broker now, as
            # its session expiry would (leaders move to other ISR members, it leaves the
            # ISRs); once that is committed, it may exit. It is not unfenced again: its next
            # process registers anew.
            self.unfence_at.pop(b, None)
            if info is None or moved or info.fenced:
                return Beat(fenced=True, should_shut_down=True)
            return Beat(fenced=False, action=SHUT_DOWN)
        if moved:
            return Beat(fenced=True, action=REGISTER)
        if info.fenced:
            # unfenced once it has caught up with the metadata log as of its first beat
            target = self.unfence_at.setdefault(b, applied_index)
            return Beat(fenced=True, action=UNFENCE if beat.metadata_offset >= target else None)
        return Beat()

    def expired(self, image: md.MetadataImage, now_ms: int) -> list[int]:
        """Live brokers whose session has run out."""
        out = []
        for b in image.live_brokers():
            seen = self.last_seen.setdefault(b, now_ms)
            if now_ms - seen > self.session_timeout_ms:
                out.append(b)
        return out

    def next_expiry_ms(self, image: md.MetadataImage, now_ms: int) -> int:
        """The first time ``expired`` can name a live broker (``now_ms`` if one is already
        expired; a broker not seen yet gets a full session from ``now_ms``)."""
        seen = min(
            (self.last_seen.get(b, now_ms) for b in image.live_brokers()), default=now_ms
        )
        return max(now_ms, seen + self.session_timeout_ms + 1)

    def fence(
        self, image: md.MetadataImage, broker_id: int, *, now_ms: int, unclean_default: bool
    ) -> ControllerResult[None]:
        """Records fencing a broker whose session ran out (none if it came back meanwhile)."""
        seen = self.last_seen.get(broker_id, 0)
        if now_ms - seen <= self.session_timeout_ms:
            return ControllerResult([], None)
        self.unfence_at.pop(broker_id, None)
        records, decisions = md.fence_with_decisions(image, broker_id, unclean_default)
        if not records:
            return ControllerResult([], None)
        note = Note(
            "warning",
            f"fencing broker {broker_id}: no heartbeat for {now_ms - seen} ms; "
            f"{len(records) - 1} partition change(s)",
        )
        return ControllerResult(records, None, (*unclean_notes(decisions), note))

    def controlled_shutdown(
        self, image: md.MetadataImage, broker_id: int
    ) -> ControllerResult[None]:
        """Records fencing a broker that asked to shut down. Never an unclean election: a
        partition whose only in-sync replica this broker is goes offline until it is back."""
        records, _ = md.fence_with_decisions(image, broker_id, unclean_default=False)
        if not records:
            return ControllerResult([], None)
        note = Note(
            "info",
            f"controlled shutdown of broker {broker_id}: {len(records) - 1} partition "
            "change(s) move its leaderships and take it out of the ISRs",
        )
        return ControllerResult(records, None, (note,))

    def register(
        self, image: md.MetadataImage, beat: BrokerBeat, *, unclean_default: bool
    ) -> ControllerResult[None]:
        """Records (re)registering a broker, fenced; a previous incarnation is fenced in the
        same batch and retired (``metadata.register_broker``)."""
        b = beat.broker_id
        old = image.brokers.get(b)
        if beat.incarnation in self.retired.get(b, ()) or (
            old is not None and older(beat.incarnation, old.incarnation)
        ):
            return ControllerResult([], None)
        try:  # the level may have risen since its heartbeat was answered
            ft.check_broker(image.metadata_version, b, _versions(beat))
        except ft.FeatureError as e:
            return ControllerResult([], None, (Note("warning", e.message),))
        records = md.register_broker(
            image,
            b,
            beat.host,
            beat.port,
            beat.rack,
            incarnation=beat.incarnation,
            clean_shutdown=beat.clean_shutdown,
            unclean_default=unclean_default,
            internal_host=beat.internal_host,
            internal_port=beat.internal_port,
            kafka_host=beat.kafka_host,
            kafka_port=beat.kafka_port,
            metadata_versions=_versions(beat),
        )
        records = [r for r in records if not isinstance(r, md.UnfenceBroker)]
        if not records:
            return ControllerResult([], None)
        self.unfence_at.pop(b, None)
        notes = []
        if old is not None and old.incarnation != beat.incarnation:
            self.retired.setdefault(b, set()).add(old.incarnation)
            moves = sum(isinstance(r, el.PartitionChangeRecord) for r in records)
            notes.append(
                Note(
                    "warning",
                    f"broker {b} restarted ({'clean' if beat.clean_shutdown else 'UNCLEAN'} "
                    f"shutdown): its previous process is fenced at once, {moves} partition "
                    "change(s); it rejoins each ISR when caught up",
                )
            )
        notes.append(
            Note(
                "info",
                f"broker {b} registered at {beat.host}:{beat.port}, inter-broker "
                f"{beat.internal_host}:{beat.internal_port} (fenced until caught up)",
            )
        )
        return ControllerResult(records, None, tuple(notes))

    def unfence(
        self, image: md.MetadataImage, broker_id: int, *, unclean_default: bool
    ) -> ControllerResult[None]:
        """Records unfencing a registered broker: offline partitions it can lead get it back."""
        self.unfence_at.pop(broker_id, None)
        records, decisions = md.unfence_with_decisions(image, broker_id, unclean_default)
        if not records:
            return ControllerResult([], None)
        note = Note(
            "info",
            f"unfencing broker {broker_id}; {len(records) - 1} partition(s) get a leader back",
        )
        return ControllerResult(records, None, (*unclean_notes(decisions), note))
