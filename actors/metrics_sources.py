"""Where the second half of a broker's metrics come from (docs/metrics.md, issue #20).

Each source is a value an actor already keeps, published so that a scrape can read it
without sending the actor a message (a scrape must never queue behind, or delay, broker
work). The rule for every one: the owning thread writes plain attributes or replaces
immutable values; the HTTP thread reads them racily (a scrape may be one update behind).

- ``RaftStats``: the Controller actor writes it after carrying out the Raft node's effects
  (Kafka's raft-metrics: commit latency, epoch, leader, high watermark, log end offset) and,
  on the leader, each voter's lag (``kafka-metadata-quorum describe --replication``).
- ISR shrinks and expands: counted by the node when it publishes a metadata image to its
  replicas, from the partitions that changed anyway (``count_isr_changes``, pure).
- Purgatory sizes: acks=all produce requests waiting for their answer (a counter the
  session bumps), fetches parked in a long poll (``parked_fetches``, at scrape time).
- Consumer group lag: the committed offsets of the groups this broker coordinates
  (``committed_offsets``, from the coordinator's immutable shard states) against the high
  watermarks of the replicas this broker hosts (the node's high watermark table), and of the
  other partitions as their leaders tell at scrape time (``metrics_lag.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

# Raft commit latency buckets, seconds (a metadata entry commits in ms on a quiet quorum)
RAFT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RaftStats:
    """The controller quorum as one voter sees it. Written only by the Controller actor's
    thread (``observe``, ``proposed``); read by scrapes. Offsets are Kafka's: the log end
    offset is the next offset (= the Raft last index), the high watermark the commit index."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # the histogram: sum, count and buckets move together
        self.role = "unattached"
        self.epoch = -1
        self.leader = -1
        self.log_end_offset = 0
        self.high_watermark = 0
        self.applied_offset = 0
        self.voter_lag: Mapping[int, int] = {}  # leader only: voter -> entries behind
        self._proposed: tuple[int, float] | None = None
        self.commit_sum = 0.0
        self.commit_count = 0
        self.commit_buckets = [0] * (len(RAFT_BUCKETS) + 1)

    def proposed(self, index: int) -> None:
        """The active controller proposed the entry at ``index`` (one at a time)."""
        self._proposed = (index, self._clock())

    def observe(self, node: Any, applied_index: int) -> None:
        """After the node's effects were carried out: copy its view; observe the commit
        latency of the proposal once it is applied."""
        if node is None:
            return
        st = node.state
        self.role = st.role
        self.epoch = st.term
        self.leader = st.leader_id if st.leader_id is not None else -1
        last = node.log.last_index
        self.log_end_offset = last
        self.high_watermark = node.commit_index
        self.applied_offset = applied_index
        progress = getattr(st, "progress", None)
        self.voter_lag = (
            {v: max(0, last - p.match_index) for v, p in progress.items()} if progress else {}
        )
        pending = self._proposed
        if pending is not None and applied_index >= pending[0]:
            self._proposed = None
            self._observe(self._clock() - pending[1])

    def _observe(self, seconds: float) -> None:
        with self._lock:
            self.commit_sum += seconds
            self.commit_count += 1
            for i, bound in enumerate(RAFT_BUCKETS):
                if seconds <= bound:
                    self.commit_buckets[i] += 1
                    break
            else:
                self.commit_buckets[-1] += 1

    def histogram(self) -> tuple[list[int], float]:
        with self._lock:
            return list(self.commit_buckets), self.commit_sum


def count_isr_changes(
    old: Any, new: Any, changed: Iterable[tuple[str, int, Any]], broker_id: int
) -> tuple[int, int]:
    """(shrinks, expands) among ``changed`` (the local partition changes of one image
    update): a partition this broker led before and still leads at the same leader epoch
    whose ISR lost members (a shrink) or gained some (an expand), as Kafka's leader counts
    IsrShrinksPerSec / IsrExpandsPerSec. A new leader's ISR is not a change of this kind.

    >>> from types import SimpleNamespace as N
    >>> def image(isr):
    ...     return N(topics={"t": N(partitions={0: N(leader=1, leader_epoch=3, isr=isr)})})
    >>> changes = [("t", 0, None)]
    >>> count_isr_changes(image((1, 2, 3)), image((1, 3)), changes, 1)
    (1, 0)
    >>> count_isr_changes(image((1, 3)), image((1, 2, 3)), changes, 1)
    (0, 1)
    >>> count_isr_changes(image((1, 3)), image((1, 2, 3)), changes, 2)
    (0, 0)
    """
    shrinks = expands = 0
    for name, p, _info in changed:
        before = old.topics.get(name)
        after = new.topics.get(name)
        if before is None or after is None:
            continue
        was, now = before.partitions.get(p), after.partitions.get(p)
        if was is None or now is None:
            continue
        if was.leader != broker_id or now.leader != broker_id:
            continue
        if was.leader_epoch != now.leader_epoch:
            continue
        old_isr, new_isr = set(was.isr), set(now.isr)
        if old_isr - new_isr:
            shrinks += 1
        if new_isr - old_isr:
            expands += 1
    return shrinks, expands


def parked_fetches(routers: Iterable[Any], fetch_sessions: Any = None) -> int:
    """Fetches waiting in a long poll now (Kafka's Fetch purgatory): consumer and sessionless
    follower fetches parked in their sessions, plus follower fetch-session polls parked."""
    total = 0
    for router in routers:
        for _ref, state in router.session_states():
            total += len(state.parked)
    if fetch_sessions is not None:
        total += fetch_sessions.parked_polls()
    return total


def committed_offsets(shards: Mapping[int, Any]) -> Iterator[tuple[str, str, int, int]]:
    """(group, topic, partition, committed offset) of every group of the loaded shards.
    Safe from any thread: a shard's ``state`` is immutable and replaced whole."""
    for shard in list(shards.values()):
        if not shard.loaded:
            continue
        for group_id, group in shard.state.groups.items():
            for tp, committed in group.offsets.items():
                yield group_id, tp[0], tp[1], committed.offset


def group_lag(
    offsets: Iterable[tuple[str, str, int, int]], high_watermarks: Mapping[tuple[str, int], int]
) -> Iterator[tuple[str, str, int, int]]:
    """(group, topic, partition, lag) where this broker knows the partition's high
    watermark (it hosts a replica); lag = high watermark - committed offset, never below 0.

    >>> list(group_lag([("g", "t", 0, 4), ("g", "t", 1, 0)], {("t", 0): 10}))
    [('g', 't', 0, 6)]
    """
    for group_id, topic, partition, offset in offsets:
        hw = high_watermarks.get((topic, partition))
        if hw is not None:
            yield group_id, topic, partition, max(0, hw - offset)


class MetricSources:
    """The sources above, as the node wires them (``wire``); each None until wired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.raft = RaftStats()
        self.isr_shrinks = 0
        self.isr_expands = 0
        self.delayed_produce = 0  # acks=all produce requests not answered yet
        self.parked_fetches: Callable[[], int] | None = None
        self.high_watermarks: Mapping[tuple[str, int], int] | None = None
        self.group_shards: Mapping[int, Any] | None = None  # the group coordinator's
        self.remote_high_watermarks: Any = None  # metrics_lag.RemoteHighWatermarks

    def isr_changed(self, old: Any, new: Any, changed: list, broker_id: int) -> None:
        """Node, on publishing an image: count the ISR shrinks and expands it brings."""
        if not changed:
            return
        shrinks, expands = count_isr_changes(old, new, changed, broker_id)
        if shrinks or expands:
            with self._lock:
                self.isr_shrinks += shrinks
                self.isr_expands += expands

    def delaying(self, respond: Callable[[object], None]) -> Callable[[object], None]:
        """Wrap an acks=all produce's ``respond``: in the Produce purgatory until answered."""
        with self._lock:
            self.delayed_produce += 1
        done = False

        def answered(response: object) -> None:
            nonlocal done
            if not done:
                done = True
                with self._lock:
                    self.delayed_produce -= 1
            respond(response)

        return answered


def wire(node: Any) -> None:
    """Node, once its routers and coordinators exist: publish what scrapes read."""
    metrics = node.ctx.metrics
    if metrics is None:
        return
    sources = metrics.sources
    sources.high_watermarks = node._hw_table  # noqa: SLF001 - the node's own table
    routers = (node.router, node.internal_router)
    sources.parked_fetches = lambda: parked_fetches(routers, node.ctx.fetch_sessions)
    from .metrics_lag import RemoteHighWatermarks

    sources.remote_high_watermarks = RemoteHighWatermarks(
        node.peers.request, node._address_of  # noqa: SLF001 - the node's own resolver
    )
