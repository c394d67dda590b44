"""The transaction coordinator's marker sender: carries out ``WriteTxnMarkers`` effects
(coordinator/transactions/coordinator.py) by sending ``WriteTxnMarkersRequest`` to the leader
of every partition of the transaction, over the inter-broker client, until each partition
has answered. See docs/transactions.md, "Coordinator actor".

Per partition, the leader's answer decides (:func:`classify`):

* NONE: written. UNKNOWN_TOPIC_OR_PARTITION: the partition was deleted, nothing to write.
  INVALID_PRODUCER_EPOCH: the partition already saw a newer epoch of the producer (a later
  marker, or this one retried): nothing more can be written there. All three: done.
* TRANSACTION_COORDINATOR_FENCED: a newer coordinator (a newer leader epoch of the
  ``__transaction_state`` partition) owns the transaction: this one drops the whole effect
  and never calls ``markers_written`` (the new coordinator re-sends on load).
* anything else (NOT_LEADER_OR_FOLLOWER, a timeout, no answer, an error reply): retried with
  exponential backoff (``RETRY_BACKOFF_MS`` doubling to ``RETRY_BACKOFF_MAX_MS``), and at once
  when the metadata image names another leader than the one that failed.

Partitions are grouped by leader (the metadata image): one request per (effect, leader), one
request per partition in flight at a time. When every partition of an effect is done the
owner calls ``markers_written`` (and appends its records).

Not an actor: a :class:`MarkerSender` is owned by the coordinator actor and used on its
thread only. ``send(broker_id, request, token)`` must not block; when the answer comes (or
does not: None) the owner calls :meth:`MarkerSender.on_response` with the token, on its own
thread (the actor turns the answer into a message to itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rillet.coordinator.metadata import MetadataImage
from rillet.coordinator.transactions import TopicPartition, WriteTxnMarkers
from rillet.transport import protocol as P

from rillet.frozen import frozen

E = P.ErrorCode
DONE, RETRY, FENCED = "done", "retry", "fenced"
RETRY_BACKOFF_MS = 100
RETRY_BACKOFF_MAX_MS = 5_000


@frozen
class MarkerToken:
    """Names one request in flight: ``send`` gets it, the owner hands it back to
    :meth:`MarkerSender.on_response` with the answer."""

    effect: WriteTxnMarkers
    leader: int
    partitions: tuple[TopicPartition, ...]


Send = Callable[[int, P.WriteTxnMarkersRequest, MarkerToken], None]


def classify(code: int) -> str:
    """What a partition leader's answer means for one marker (see the module doc)."""
    if code in (E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION, E.INVALID_PRODUCER_EPOCH):
        return DONE
    if code == E.TRANSACTION_COORDINATOR_FENCED:
        return FENCED
    return RETRY


def group_by_leader(
    partitions: Iterable[TopicPartition], image: MetadataImage
) -> tuple[dict[int, list[TopicPartition]], list[TopicPartition], list[TopicPartition]]:
    """``(leader -> its partitions, deleted, leaderless)``: where each marker must go.
    A partition the image does not have is deleted (nothing to write); one whose leader is
    -1 or a fenced broker waits for an election."""
    by_leader: dict[int, list[TopicPartition]] = {}
    deleted: list[TopicPartition] = []
    leaderless: list[TopicPartition] = []
    for tp in sorted(partitions):
        info = image.partition(tp.topic, tp.partition)
        if info is None:
            deleted.append(tp)
            continue
        broker = image.brokers.get(info.leader)
        if info.leader < 0 or broker is None or broker.fenced:
            leaderless.append(tp)
            continue
        by_leader.setdefault(info.leader, []).append(tp)
    return by_leader, deleted, leaderless


def marker_request(
    effect: WriteTxnMarkers, partitions: Iterable[TopicPartition]
) -> P.WriteTxnMarkersRequest:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return P.WriteTxnMarkersRequest(
        markers=(
            P.WritableTxnMarker(
                producer_id=effect.producer_id,
                producer_epoch=effect.producer_epoch,
                transaction_result=effect.commit,
                topics=tuple(
                    P.TxnTopic(name=t, partitions=tuple(ps)) for t, ps in by_topic.items()
                ),
                coordinator_epoch=effect.coordinator_epoch,
                transaction_version=effect.transaction_version,
            ),
        )
    )


def answers(
    effect: WriteTxnMarkers, partitions: Iterable[TopicPartition], response: object | None
) -> dict[TopicPartition, int]:
    """The error code per partition in ``response`` (REQUEST_TIMED_OUT for no answer, or a
    partition the answer leaves out; an ``ErrorResponse``'s code for all)."""
    tps = list(partitions)
    if response is None:
        return {tp: E.REQUEST_TIMED_OUT for tp in tps}
    if not isinstance(response, P.WriteTxnMarkersResponse):
        code = getattr(response, "error_code", E.UNKNOWN_SERVER_ERROR) or E.UNKNOWN_SERVER_ERROR
        return {tp: code for tp in tps}
    got: dict[TopicPartition, int] = {}
    for marker in response.markers:
        if marker.producer_id != effect.producer_id:
            continue
        for t in marker.topics:
            for p in t.partitions:
                got[TopicPartition(t.name, p.partition)] = p.error_code
    return {tp: got.get(tp, E.REQUEST_TIMED_OUT) for tp in tps}


@dataclass(slots=True)
class _Try:
    """One partition's marker still to be written."""

    next_try_ms: int = 0
    backoff_ms: int = RETRY_BACKOFF_MS
    in_flight: bool = False
    failed_leader: int = -1  # the leader that last failed, -1: none was known (retried at
    # once when the image names another)


@dataclass(slots=True)
class _Pending:
    effect: WriteTxnMarkers
    remaining: dict[TopicPartition, _Try] = field(default_factory=dict)


class MarkerSender:
    """The pending marker writes of one coordinator (see the module doc). Thread: the owning
    actor's."""

    def __init__(self, send: Send, image: MetadataImage | None = None) -> None:
        self._send = send
        self.image = image or MetadataImage()
        self.pending: dict[WriteTxnMarkers, _Pending] = {}
        self.requests_sent = 0

    def add(self, effect: WriteTxnMarkers, now_ms: int) -> list[WriteTxnMarkers]:
        """Start writing ``effect``'s markers; returns the effects complete already (one
        whose partitions are all deleted)."""
        if effect in self.pending:
            return []
        self.pending[effect] = _Pending(effect, {tp: _Try() for tp in effect.partitions})
        return self.poll(now_ms)

    def on_image(self, image: MetadataImage, now_ms: int) -> list[WriteTxnMarkers]:
        """A new metadata image: partitions whose failed leader (or lack of one) is not what
        the image names any more are due now."""
        self.image = image
        for pending in self.pending.values():
            for tp, t in pending.remaining.items():
                info = image.partition(tp.topic, tp.partition)
                if not t.in_flight and (info is None or info.leader != t.failed_leader):
                    t.next_try_ms = min(t.next_try_ms, now_ms)
        return self.poll(now_ms)

    def poll(self, now_ms: int) -> list[WriteTxnMarkers]:
        """Send every due marker (grouped by leader); returns the effects now complete."""
        complete = []
        for effect, pending in list(self.pending.items()):
            due = [
                tp
                for tp, t in pending.remaining.items()
                if not t.in_flight and t.next_try_ms <= now_ms
            ]
            if not due:
                continue
            by_leader, deleted, leaderless = group_by_leader(due, self.image)
            for tp in deleted:
                del pending.remaining[tp]
            for tp in leaderless:
                self._backoff(pending.remaining[tp], -1, now_ms)
            for leader, tps in by_leader.items():
                for tp in tps:
                    pending.remaining[tp].in_flight = True
                self.requests_sent += 1
                self._send(leader, marker_request(effect, tps), MarkerToken(effect, leader, tuple(tps)))
            if not pending.remaining:
                del self.pending[effect]
                complete.append(effect)
        return complete

    def on_response(
        self, token: MarkerToken, response: object | None, now_ms: int
    ) -> tuple[list[WriteTxnMarkers], list[WriteTxnMarkers]]:
        """A leader answered (``response`` None: no answer). Returns ``(complete,
        fenced)``: effects whose every partition is done, and effects dropped because a newer
        coordinator owns them."""
        effect, leader = token.effect, token.leader
        pending = self.pending.get(effect)
        if pending is None:
            return [], []  # dropped meanwhile
        for tp, code in answers(effect, token.partitions, response).items():
            t = pending.remaining.get(tp)
            if t is None:
                continue
            t.in_flight = False
            verdict = classify(code)
            if verdict == FENCED:
                del self.pending[effect]
                return self.poll(now_ms), [effect]
            if verdict == DONE:
                del pending.remaining[tp]
            else:
                self._backoff(t, leader, now_ms)
        complete = self.poll(now_ms)
        if not pending.remaining and effect in self.pending:
            del self.pending[effect]
            complete.append(effect)
        return complete, []

    def next_due_ms(self) -> int | None:
        """When :meth:`poll` next has a marker to send (one in flight is answered by a
        message: ``on_response``), None if none waits."""
        times = [t.next_try_ms for pending in self.pending.values()
                 for t in pending.remaining.values() if not t.in_flight]
        return min(times) if times else None

    def drop_all(self) -> None:
        self.pending.clear()

    @staticmethod
    def _backoff(t: _Try, leader: int, now_ms: int) -> None:
        t.failed_leader = leader
        t.next_try_ms = now_ms + t.backoff_ms
        t.backoff_ms = min(t.backoff_ms * 2, RETRY_BACKOFF_MAX_MS)

