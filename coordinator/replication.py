"""Replication state of one partition: the leader's side and the follower's truncation. Pure.

Kafka's ``Partition``/``Replica`` logic without I/O: the partition actor owns one
:class:`LeaderReplica` while it leads, feeds it events (its own appends, follower fetches,
metadata changes, ticks) with ``now_ms``, and carries out the returned decisions.

Leader (one object per leader epoch; a new epoch is a new object):

* Follower progress (Kafka's Replica state). On each follower fetch at ``fetch_offset``:
  ``log_end_offset = fetch_offset``; the follower is *caught up* at this fetch if
  ``fetch_offset >= leader LEO now``, so ``last_caught_up_time_ms = now``; else if
  ``fetch_offset >= the leader LEO at its previous fetch`` it was caught up at the previous
  fetch time. On becoming leader every follower's LEO is unknown (-1) and ISR members count
  as caught up now.
* ``high_watermark`` = min LEO over the *maximal* ISR (the committed ISR plus members of a
  pending expansion; a pending shrink is not counted until the controller commits it), never
  decreasing. Followers' unknown LEOs hold it where it is.
* ISR changes are proposed, never applied locally: :class:`AlterIsr` goes to the controller,
  and only the ``PartitionChangeRecord`` the leader later sees in the metadata changes ``isr``. One
  proposal in flight at a time (re-sent after ``alter_partition_retry_ms`` without an answer).
  Shrink: an ISR follower with ``LEO != leader LEO`` and no catch-up for
  ``replica.lag.time.max.ms``. Expand: a replica not in the ISR whose LEO reached the high
  watermark and the start offset of the current leader epoch.
* acks=all: :meth:`LeaderReplica.check_append` refuses with NOT_ENOUGH_REPLICAS when the ISR
  is smaller than ``min.insync.replicas`` (call it before writing anything). The produce then
  waits in :class:`ProducePurgatory` for ``high_watermark > last_offset``; it completes with
  NONE, or NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR is then below min.insync (Kafka's
  check), REQUEST_TIMED_OUT at its deadline, NOT_LEADER_OR_FOLLOWER when leadership moves.

Follower: :func:`follower_truncation` turns the leader's OffsetForLeaderEpoch answer into
the truncation offset (KIP-101 with KIP-279's epoch walk-back), and the leader answers with
:func:`leader_epoch_end_offset`.

Error codes are Kafka's names as strings (the coordinator imports nothing outside stdlib);
``transport.protocol.ErrorCode[name]`` maps them to wire numbers.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from rillet.frozen import frozen

NONE = "NONE"
NOT_ENOUGH_REPLICAS = "NOT_ENOUGH_REPLICAS"
NOT_ENOUGH_REPLICAS_AFTER_APPEND = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
REQUEST_TIMED_OUT = "REQUEST_TIMED_OUT"
NOT_LEADER_OR_FOLLOWER = "NOT_LEADER_OR_FOLLOWER"
FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"
UNKNOWN_LEADER_EPOCH = "UNKNOWN_LEADER_EPOCH"
OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
# AlterPartition answers the leader handles specially (see on_alter_partition_response)
INVALID_UPDATE_VERSION = "INVALID_UPDATE_VERSION"
INELIGIBLE_REPLICA = "INELIGIBLE_REPLICA"
OPERATION_NOT_ATTEMPTED = "OPERATION_NOT_ATTEMPTED"
UNKNOWN_TOPIC_OR_PARTITION = "UNKNOWN_TOPIC_OR_PARTITION"

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


@frozen
class ReplicationConfig:
    """Kafka's names and defaults. ``min_insync_replicas`` is the topic's."""

    replica_lag_time_max_ms: int = 30_000  # replica.lag.time.max.ms
    min_insync_replicas: int = 1  # min.insync.replicas
    alter_partition_retry_ms: int = 5_000  # re-send an unanswered AlterPartition


DEFAULT_REPLICATION_CONFIG = ReplicationConfig()


class EpochLookup(Protocol):
    """What the follower needs of its ``logstore.epochs.LeaderEpochCache``."""

    @property
    def latest_epoch(self) -> int: ...

    def end_offset_for(
        self, requested_epoch: int, log_end_offset: int | None = None
    ) -> tuple[int, int]: ...


def check_leader_epoch(request_epoch: int, current_epoch: int) -> str:
    """Kafka's fencing of requests that carry the sender's idea of the leader epoch."""
    if request_epoch < current_epoch:
        return FENCED_LEADER_EPOCH
    if request_epoch > current_epoch:
        return UNKNOWN_LEADER_EPOCH
    return NONE


# ---------------------------------------------------------------------------- decisions


@frozen
class AlterIsr:
    """An ISR change to send to the controller (AlterPartition). Takes effect only when the
    controller commits it and the leader sees the new partition state in the metadata."""

    leader: int
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[int, ...]
    # per new_isr member, the incarnation (process) the leader saw fetching ("" = unknown);
    # the controller refuses to add a member that has restarted since (KIP-903)
    incarnations: tuple[str, ...] = field(default=(), compare=False)


@frozen
class Completion:
    """A waiting acks=all produce is answered: ``error`` NONE means success."""

    key: Hashable
    last_offset: int
    error: str


@frozen
class Progress:
    """What the actor does after an event: checkpoint/publish ``high_watermark`` if
    ``high_watermark_changed``, send ``propose`` to the controller, answer ``completions``."""

    high_watermark: int
    high_watermark_changed: bool = False
    propose: AlterIsr | None = None
    completions: tuple[Completion, ...] = ()
    resigned: bool = False  # this object no longer leads: drop it


@frozen
class FetchDecision:
    """The leader's answer to a follower fetch. If ``error`` is not NONE, or
    ``diverging_epoch`` is set, return no records. Else read from ``fetch_offset`` and send
    ``high_watermark``."""

    error: str
    progress: Progress
    diverging_epoch: tuple[int, int] | None = None  # (epoch, end_offset): truncate first


# ---------------------------------------------------------------------------- purgatory


@dataclass(frozen=True, slots=True, order=True)
class PendingProduce:
    last_offset: int
    deadline_ms: int
    key: Hashable = field(compare=False)


class ProducePurgatory:
    """acks=all produces waiting for the high watermark, as data: a heap by offset and one by
    deadline. ``complete_up_to`` / ``expire`` / ``fail_all`` return the answers to send."""

    def __init__(self) -> None:
        self._by_offset: list[tuple[int, int, PendingProduce]] = []
        self._by_deadline: list[tuple[int, int, PendingProduce]] = []
        self._done: set[int] = set()
        self._seq = 0
        self._live = 0  # waiting, not answered: asked after every message the replica handles

    def __len__(self) -> int:
        return self._live

    def add(self, key: Hashable, last_offset: int, deadline_ms: int) -> None:
        self._seq += 1
        p = PendingProduce(last_offset, deadline_ms, key)
        heapq.heappush(self._by_offset, (last_offset, self._seq, p))
        heapq.heappush(self._by_deadline, (deadline_ms, self._seq, p))
        self._live += 1

    def complete_up_to(self, high_watermark: int, error: str = NONE) -> list[Completion]:
        out = []
        while self._by_offset and self._by_offset[0][0] < high_watermark:
            _, seq, p = heapq.heappop(self._by_offset)
            if seq not in self._done:
                self._done.add(seq)
                out.append(Completion(p.key, p.last_offset, error))
        self._live -= len(out)
        self._gc()  # (expire may not run for a while: the replica wakes at the deadlines)
        return out

    def next_deadline(self) -> int | None:
        """The earliest deadline of a produce still waiting (ms), or None: when ``expire``
        next has work (the replica's timer wakes then, not on every tick)."""
        heap, done = self._by_deadline, self._done
        while heap and heap[0][1] in done:
            heapq.heappop(heap)  # answered: its deadline needs no wake-up
        return heap[0][0] if heap else None

    def expire(self, now_ms: int) -> list[Completion]:
        out = []
        while self._by_deadline and self._by_deadline[0][0] <= now_ms:
            _, seq, p = heapq.heappop(self._by_deadline)
            if seq not in self._done:
                self._done.add(seq)
                out.append(Completion(p.key, p.last_offset, REQUEST_TIMED_OUT))
        self._live -= len(out)
        self._gc()
        return out

    def fail_all(self, error: str) -> list[Completion]:
        out = [
            Completion(p.key, p.last_offset, error)
            for _, seq, p in sorted(self._by_offset)
            if seq not in self._done
        ]
        self._by_offset.clear()
        self._by_deadline.clear()
        self._done.clear()
        self._live = 0
        return out

    def _gc(self) -> None:
        if len(self._done) > 64 and len(self._done) * 2 > len(self._by_offset):
            self._by_offset = [e for e in self._by_offset if e[1] not in self._done]
            self._by_deadline = [e for e in self._by_deadline if e[1] not in self._done]
            heapq.heapify(self._by_offset)
            heapq.heapify(self._by_deadline)
            self._done.clear()

    def waiting(self) -> list[PendingProduce]:
        return [p for _, seq, p in sorted(self._by_offset) if seq not in self._done]


# ------------------------------------------------------------------------------- leader


@dataclass(slots=True)
class FollowerProgress:
    """Kafka's per-remote-replica state on the leader."""

    broker_id: int
    log_end_offset: int = -1
    last_caught_up_time_ms: int = 0
    last_fetch_leader_log_end_offset: int = -1
    last_fetch_time_ms: int = -1
    incarnation: str = ""  # the follower process whose fetches these are

    def update(self, fetch_offset: int, leader_log_end_offset: int, now_ms: int) -> None:
        if fetch_offset >= leader_log_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, now_ms)
        elif fetch_offset >= self.last_fetch_leader_log_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, self.last_fetch_time_ms)
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_log_end_offset = leader_log_end_offset
        self.last_fetch_time_ms = now_ms

    def caught_up(self, leader_log_end_offset: int, now_ms: int, lag_max_ms: int) -> bool:
        return (
            self.log_end_offset == leader_log_end_offset
            or now_ms - self.last_caught_up_time_ms <= lag_max_ms
        )


class LeaderReplica:
    """The leader's replication state for one leader epoch. Owned by the partition actor's
    thread; not thread-safe. Offsets are log offsets; times are ms."""

    def __init__(
        self,
        broker_id: int,
        *,
        replicas: Iterable[int],
        isr: Iterable[int],
        leader_epoch: int,
        partition_epoch: int = 0,
        log_end_offset: int,
        high_watermark: int,
        leader_epoch_start_offset: int | None = None,
        now_ms: int,
        config: ReplicationConfig = DEFAULT_REPLICATION_CONFIG,
    ) -> None:
        self.broker_id = broker_id
        self.replicas = tuple(replicas)
        self.isr = tuple(isr)
        self.leader_epoch = leader_epoch
        self.partition_epoch = partition_epoch
        self.log_end_offset = log_end_offset
        # the log end offset before the latest append, and when that append happened: what a
        # watched follower's poll (``on_follower_fetch(watched=True)``) is measured against
        self._previous_log_end_offset = log_end_offset
        self._log_end_offset_since_ms = now_ms
        self.high_watermark = min(high_watermark, log_end_offset)
        # the offset this epoch's first batch gets (the actor assigns the epoch there in its
        # LeaderEpochCache when it becomes leader, KIP-279 follow-up)
        self.leader_epoch_start_offset = (
            log_end_offset if leader_epoch_start_offset is None else leader_epoch_start_offset
        )
        self.config = config
        self.followers = {
            b: FollowerProgress(b, last_caught_up_time_ms=now_ms if b in self.isr else 0)
            for b in self.replicas
            if b != broker_id
        }
        self.pending: AlterIsr | None = None
        self._pending_sent_ms = 0
        self._pending_resend = True
        self.purgatory = ProducePurgatory()
        self.resigned = False
        self._expand_backoff: dict[int, int] = {}  # broker -> no expansion before (ms)

    # ---------------------------------------------------------------------------- queries

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        """The ISR the high watermark must respect: committed plus pending additions."""
        if self.pending is None:
            return self.isr
        return self.isr + tuple(b for b in self.pending.new_isr if b not in self.isr)

    @property
    def in_sync_and_idle(self) -> bool:
        """Every replica is in the ISR with the leader's LEO and nothing is pending: an ISR
        check (``tick``) can change nothing until the next append, so it need not run."""
        # (asked after every message a leader handles: no sets or generators on the way)
        if self.pending is not None or len(self.purgatory):
            return False
        isr, replicas = self.isr, self.replicas
        if len(isr) != len(replicas) or (isr != replicas and set(isr) != set(replicas)):
            return False
        leo, followers, me = self.log_end_offset, self.followers, self.broker_id
        for b in replicas:
            if b != me:
                f = followers.get(b)
                if f is None or f.log_end_offset != leo:
                    return False
        return True

    def check_append(self, acks: int) -> str:
        """Call before writing a produce: NOT_ENOUGH_REPLICAS refuses an acks=all append
        when the ISR is below ``min.insync.replicas`` (nothing is written)."""
        if self.resigned:
            return NOT_LEADER_OR_FOLLOWER
        if acks == -1 and len(self.isr) < self.config.min_insync_replicas:
            return NOT_ENOUGH_REPLICAS
        return NONE

    # ----------------------------------------------------------------------------- events

    def on_append(self, log_end_offset: int, now_ms: int) -> Progress:
        """The leader appended: its new log end offset (with ISR == {leader} the high
        watermark follows it)."""
        if log_end_offset != self.log_end_offset:
            self._previous_log_end_offset = self.log_end_offset
            self._log_end_offset_since_ms = now_ms
        self.log_end_offset = log_end_offset
        return self._progress(now_ms)

    def wait_for_ack(self, key: Hashable, last_offset: int, deadline_ms: int) -> Completion | None:
        """Park an acks=all produce whose batch ends at ``last_offset``; an immediate
        ``Completion`` if the high watermark is already past it."""
        if self.resigned:
            return Completion(key, last_offset, NOT_LEADER_OR_FOLLOWER)
        if last_offset < self.high_watermark:
            return Completion(key, last_offset, self._ack_error())
        self.purgatory.add(key, last_offset, deadline_ms)
        return None

    def on_follower_fetch(
        self,
        follower_id: int,
        fetch_offset: int,
        now_ms: int,
        *,
        current_leader_epoch: int,
        log_start_offset: int = 0,
        last_fetched_epoch: int | None = None,
        epochs: EpochLookup | None = None,
        incarnation: str = "",
        watched: bool = False,
    ) -> FetchDecision:
        """A follower fetch at ``fetch_offset`` (the follower's log end offset). With
        ``last_fetched_epoch`` and the leader's ``epochs`` the fetch is checked for
        divergence first (KIP-320): a follower whose last epoch ended earlier on the leader
        is told ``diverging_epoch`` and must truncate before its offset counts.

        ``watched``: not a fetch now but a fetch session's last poll at ``now_ms`` (which
        may be older than the latest append): the follower is caught up if it had the log
        end offset of that time. Measured against the end offset of now, an idle
        partition's followers polling every ``replica.fetch.wait.max.ms`` were out of sync
        at the first ISR check after an append that came before their fetch (their
        previous refresh, the one before the idle leader stopped checking, counted)."""
        error = check_leader_epoch(current_leader_epoch, self.leader_epoch)
        if self.resigned:
            error = NOT_LEADER_OR_FOLLOWER
        if error == NONE and follower_id not in self.followers:
            error = NOT_LEADER_OR_FOLLOWER
        if error != NONE:
            return FetchDecision(error, Progress(self.high_watermark))
        # divergence first, as Kafka does: a follower ahead of this log (a tail written in an
        # epoch this leader never had) is told where to truncate, not OFFSET_OUT_OF_RANGE
        if last_fetched_epoch is not None and last_fetched_epoch >= 0 and epochs is not None:
            epoch, end = epochs.end_offset_for(last_fetched_epoch, self.log_end_offset)
            if epoch == UNDEFINED_EPOCH or epoch < last_fetched_epoch or end < fetch_offset:
                return FetchDecision(NONE, Progress(self.high_watermark), (epoch, end))
        if not log_start_offset <= fetch_offset <= self.log_end_offset:
            return FetchDecision(OFFSET_OUT_OF_RANGE, Progress(self.high_watermark))
        follower = self.followers[follower_id]
        if incarnation != follower.incarnation:
            if follower.incarnation:
                # a new process of that broker: what the old one had fetched no longer counts
                follower.last_caught_up_time_ms = 0
                follower.last_fetch_leader_log_end_offset = -1
                follower.last_fetch_time_ms = -1
            # else the first fetch this leader sees from it: an ISR member keeps the catch-up
            # time it got at the election (it has replica.lag.time.max.ms from there, as in
            # Kafka), or a produce that beat its first fetch would shrink it out at once
            follower.incarnation = incarnation
        leader_end = self.log_end_offset
        if watched and now_ms < self._log_end_offset_since_ms:
            # polled before the latest append. One append back is all that is kept: after
            # two, the end offset before the latest is past the poll's, and the follower's
            # offset gets no more credit than before
            leader_end = self._previous_log_end_offset
        follower.update(fetch_offset, leader_end, now_ms)
        progress = self._progress(now_ms)
        if progress.propose is None and self.pending is None:
            propose = self._maybe_expand(follower_id, now_ms)
            if propose is not None:
                progress = Progress(
                    progress.high_watermark,
                    progress.high_watermark_changed,
                    propose,
                    progress.completions,
                )
        return FetchDecision(NONE, progress)

    def tick(self, now_ms: int) -> Progress:
        """Periodic (Kafka: every replica.lag.time.max.ms / 2): ISR shrink proposal,
        AlterPartition re-send, produce timeouts."""
        completions = tuple(self.purgatory.expire(now_ms))
        propose = None
        if self.pending is not None:
            if (
                self._pending_resend
                and now_ms - self._pending_sent_ms >= self.config.alter_partition_retry_ms
            ):
                propose = self._send(self.pending, now_ms)
        else:
            propose = self._maybe_shrink(now_ms)
        p = self._progress(now_ms)
        return Progress(
            p.high_watermark,
            p.high_watermark_changed,
            propose or p.propose,
            completions + p.completions,
        )

    def on_partition_change(
        self,
        *,
        leader: int,
        isr: Iterable[int],
        leader_epoch: int,
        partition_epoch: int,
        replicas: Iterable[int] | None = None,
        now_ms: int,
    ) -> Progress:
        """The metadata image has a new state for this partition. Another leader or another
        epoch resigns this object (waiting produces fail with NOT_LEADER_OR_FOLLOWER)."""
        if leader != self.broker_id or leader_epoch != self.leader_epoch:
            self.resigned = True
            completions = tuple(self.purgatory.fail_all(NOT_LEADER_OR_FOLLOWER))
            return Progress(self.high_watermark, completions=completions, resigned=True)
        if partition_epoch < self.partition_epoch:
            return Progress(self.high_watermark)  # older metadata than we have seen
        self.partition_epoch = partition_epoch
        self.isr = tuple(isr)
        if replicas is not None:
            self.replicas = tuple(replicas)
            for b in self.replicas:
                if b != self.broker_id and b not in self.followers:
                    self.followers[b] = FollowerProgress(b)
            for b in list(self.followers):
                if b not in self.replicas:
                    del self.followers[b]
        if self.pending is not None and partition_epoch > self.pending.partition_epoch:
            self.pending = None
        return self._progress(now_ms)

    def on_alter_partition_response(self, proposal: AlterIsr, error: str, now_ms: int) -> Progress:
        """The controller answered ``proposal``. NONE or a fencing answer: wait for the
        metadata (which resolves the pending state). INELIGIBLE_REPLICA /
        OPERATION_NOT_ATTEMPTED: not applied, back to the committed ISR. Anything else
        (timeouts): re-send later."""
        if self.pending is None or proposal != self.pending:
            return Progress(self.high_watermark)
        if error in (INELIGIBLE_REPLICA, OPERATION_NOT_ATTEMPTED):
            self.pending = None
            for b in proposal.new_isr:  # e.g. fenced: do not re-propose it on every fetch
                if b not in self.isr:
                    self._expand_backoff[b] = now_ms + self.config.alter_partition_retry_ms
        elif error in (
            NONE,
            FENCED_LEADER_EPOCH,
            INVALID_UPDATE_VERSION,
            UNKNOWN_TOPIC_OR_PARTITION,
        ):
            self._pending_resend = False
        else:
            self._pending_resend = True
        return self._progress(now_ms)

    # --------------------------------------------------------------------------- internals

    def _ack_error(self) -> str:
        if len(self.isr) < self.config.min_insync_replicas:
            return NOT_ENOUGH_REPLICAS_AFTER_APPEND
        return NONE

    def _progress(self, now_ms: int) -> Progress:
        if self.resigned:
            return Progress(self.high_watermark, resigned=True)
        new_hw = self.log_end_offset
        for b in self.maximal_isr:
            if b != self.broker_id:
                f = self.followers.get(b)
                new_hw = min(new_hw, f.log_end_offset if f is not None else -1)
        if new_hw <= self.high_watermark:
            return Progress(self.high_watermark)
        self.high_watermark = new_hw
        done = self.purgatory.complete_up_to(new_hw, self._ack_error())
        return Progress(new_hw, True, None, tuple(done))

    def _send(self, proposal: AlterIsr, now_ms: int) -> AlterIsr:
        self.pending = proposal
        self._pending_sent_ms = now_ms
        self._pending_resend = True
        return proposal

    def _proposal(self, new_isr: tuple[int, ...]) -> AlterIsr:
        incarnations = tuple(
            self.followers[b].incarnation if b in self.followers else "" for b in new_isr
        )
        return AlterIsr(
            self.broker_id, self.leader_epoch, self.partition_epoch, new_isr, incarnations
        )

    def _maybe_expand(self, follower_id: int, now_ms: int) -> AlterIsr | None:
        if follower_id in self.isr or follower_id not in self.replicas:
            return None
        if now_ms < self._expand_backoff.get(follower_id, 0):
            return None
        leo = self.followers[follower_id].log_end_offset
        if leo >= self.high_watermark and leo >= self.leader_epoch_start_offset:
            new_isr = tuple(b for b in self.replicas if b in self.isr or b == follower_id)
            return self._send(self._proposal(new_isr), now_ms)
        return None

    def _maybe_shrink(self, now_ms: int) -> AlterIsr | None:
        lag = self.config.replica_lag_time_max_ms
        out = {
            b
            for b in self.isr
            if b != self.broker_id
            and (
                b not in self.followers
                or not self.followers[b].caught_up(self.log_end_offset, now_ms, lag)
            )
        }
        if not out:
            return None
        return self._send(self._proposal(tuple(b for b in self.isr if b not in out)), now_ms)


# ----------------------------------------------------------------------------- follower


@frozen
class Truncation:
    """Truncate the log to ``truncate_to`` (no-op if >= LEO). If ``done``, fetch from
    ``fetch_offset``; else ask the leader again with the new latest epoch (KIP-279)."""

    truncate_to: int
    done: bool

    def fetch_offset(self, log_end_offset: int) -> int:
        return min(self.truncate_to, log_end_offset)


def leader_epoch_end_offset(
    epochs: EpochLookup,
    log_end_offset: int,
    *,
    leader_epoch: int,
    current_leader_epoch: int,
    requested_epoch: int,
) -> tuple[str, int, int]:
    """The leader's answer to OffsetForLeaderEpoch: (error, epoch, end_offset). The
    request's ``current_leader_epoch`` is fenced against ours first."""
    error = check_leader_epoch(current_leader_epoch, leader_epoch)
    if error != NONE:
        return error, UNDEFINED_EPOCH, UNDEFINED_OFFSET
    epoch, end = epochs.end_offset_for(requested_epoch, log_end_offset)
    return NONE, epoch, end


def follower_truncation(
    epochs: EpochLookup,
    log_end_offset: int,
    high_watermark: int,
    leader_epoch: int,
    leader_end_offset: int,
) -> Truncation:
    """KIP-101/279: where a follower truncates, from the leader's (epoch, end_offset) answer
    for the follower's latest epoch (Kafka's AbstractFetcherThread.getOffsetTruncationState).

    * Leader knows nothing of the epoch (end offset -1): truncate to the follower's high
      watermark (pre-KIP-101 fallback; Kafka does the same).
    * The follower knows ``leader_epoch``: truncate to min(the end of that epoch locally, the
      leader's end offset, LEO). Done.
    * The follower does not know ``leader_epoch`` (its largest epoch below it is smaller):
      truncate to the end of that smaller epoch and ask again (KIP-279's walk-back).
    * The follower has no epoch at or below it: truncate to the leader's end offset.
    """
    if leader_end_offset == UNDEFINED_OFFSET:
        return Truncation(min(high_watermark, log_end_offset), True)
    if leader_epoch == UNDEFINED_EPOCH:
        return Truncation(min(leader_end_offset, log_end_offset), True)
    f_epoch, f_end = epochs.end_offset_for(leader_epoch, log_end_offset)
    if f_end == UNDEFINED_OFFSET:
        return Truncation(min(leader_end_offset, log_end_offset), True)
    if f_epoch != leader_epoch:
        return Truncation(min(f_end, log_end_offset), False)
    return Truncation(min(f_end, leader_end_offset, log_end_offset), True)


def follower_high_watermark(leader_high_watermark: int, log_end_offset: int) -> int:
    """A follower's high watermark: the leader's, capped at what it has."""
    return min(leader_high_watermark, log_end_offset)
