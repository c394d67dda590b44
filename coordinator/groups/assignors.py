"""Server-side partition assignors (group.remote.assignor): pure, deterministic functions.

Both take the same input and return the same shape::

    assign(members, topics) -> {member_id: frozenset[TopicPartition]}

``members`` maps a member id to a :class:`MemberSubscription` (the topics it subscribes to,
already resolved from names/regex, and its current target assignment, used for
stickiness); ``topics`` maps every subscribed, existing topic to its partition count. Every
member appears in the output (possibly with an empty set). Topics in a subscription that
are missing from ``topics`` are ignored. Ties are always broken by member id, then by
(topic, partition), so the same input gives the same output on every broker.

``ASSIGNORS`` maps the configuration names ("uniform", "range") to the functions.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping

from rillet.frozen import frozen

from .model import TopicPartition

__all__ = ["ASSIGNORS", "Assignor", "MemberSubscription", "is_balanced", "range_assign",
           "uniform_assign"]


@frozen
class MemberSubscription:
    """What an assignor knows about one member."""

    topics: frozenset[str]
    """Resolved subscribed topic names."""
    assignment: frozenset[TopicPartition] = frozenset()
    """The member's current target assignment (the assignor tries to keep it)."""


Assignor = Callable[
    [Mapping[str, MemberSubscription], Mapping[str, int]], dict[str, frozenset[TopicPartition]]
]


def range_assign(
    members: Mapping[str, MemberSubscription], topics: Mapping[str, int]
) -> dict[str, frozenset[TopicPartition]]:
    """Range assignor: per topic, contiguous ranges over the subscribed members in id order.

    For each topic, the members subscribed to it are sorted by member id; with ``n``
    partitions and ``m`` members, each gets ``n // m`` consecutive partitions and the first
    ``n % m`` members one more. Balanced per topic (within one partition); co-partitioned
    topics land together, so over many topics the first members may carry more. Not sticky
    beyond what the ranges give (the same members always get the same ranges).

    Worked example: members C0, C1 subscribe to t0 and t1, 3 partitions each::

        >>> subs = {"C0": MemberSubscription(frozenset({"t0", "t1"})),
        ...         "C1": MemberSubscription(frozenset({"t0", "t1"}))}
        >>> out = range_assign(subs, {"t0": 3, "t1": 3})
        >>> sorted(out["C0"])
        [TopicPartition(topic='t0', partition=0), TopicPartition(topic='t0', partition=1), \
TopicPartition(topic='t1', partition=0), TopicPartition(topic='t1', partition=1)]
        >>> sorted(out["C1"])
        [TopicPartition(topic='t0', partition=2), TopicPartition(topic='t1', partition=2)]
    """
    out: dict[str, set[TopicPartition]] = {m: set() for m in members}
    for topic in sorted(topics):
        subscribed = sorted(m for m, s in members.items() if topic in s.topics)
        if not subscribed:
            continue
        count = topics[topic]
        per, extra = divmod(count, len(subscribed))
        start = 0
        for i, member in enumerate(subscribed):
            n = per + (1 if i < extra else 0)
            out[member].update(TopicPartition(topic, p) for p in range(start, start + n))
            start += n
    return {m: frozenset(ps) for m, ps in out.items()}


def uniform_assign(
    members: Mapping[str, MemberSubscription], topics: Mapping[str, int]
) -> dict[str, frozenset[TopicPartition]]:
    """Uniform sticky assignor: as even as the subscriptions allow, moving as little as possible.

    1. Every member keeps the partitions of its current assignment that still exist, that it
       still subscribes to, and that no member earlier in id order already kept.
    2. Each remaining partition (most constrained first: fewest eligible members, then by
       topic and partition) goes to the eligible member holding the fewest partitions.
    3. Identical subscriptions: each member's quota is ``n // m``, and the ``n % m`` extra
       slots go to the members already holding the most (then by id); members over quota
       give their highest partitions to members under quota. Different subscriptions:
       while some member ``a`` holds a partition that an eligible member ``b`` could take
       with ``count(a) - count(b) >= 2``, the heaviest such ``a`` gives its highest
       partition of that topic to the lightest such ``b``.

    The result is *balanced*: no partition can move to another member subscribed to its
    topic and reduce the spread (with identical subscriptions: counts differ by at most
    one). When a member joins an identically-subscribed balanced group it takes only the
    partitions it ends up with; when one leaves, only its partitions move.

    Worked example: C0 and C1 own t0 (4 partitions) two each; C2 joins::

        >>> tp = TopicPartition
        >>> subs = {"C0": MemberSubscription(frozenset({"t0"}), frozenset({tp("t0", 0), tp("t0", 1)})),
        ...         "C1": MemberSubscription(frozenset({"t0"}), frozenset({tp("t0", 2), tp("t0", 3)})),
        ...         "C2": MemberSubscription(frozenset({"t0"}))}
        >>> out = uniform_assign(subs, {"t0": 4})
        >>> sorted(out["C0"]), sorted(out["C1"]), sorted(out["C2"])
        ([TopicPartition(topic='t0', partition=0), TopicPartition(topic='t0', partition=1)], \
[TopicPartition(topic='t0', partition=2)], [TopicPartition(topic='t0', partition=3)])

    (Quotas 2, 1, 1: C0 and C1 tie at two and C0 comes first by id, so it keeps both; C1
    gives its highest partition to C2. One partition moved: the minimum.)
    """
    eligible: dict[str, list[str]] = {
        t: sorted(m for m, s in members.items() if t in s.topics) for t in topics
    }
    assignment: dict[str, set[TopicPartition]] = {m: set() for m in members}
    taken: set[TopicPartition] = set()
    for member in sorted(members):
        sub = members[member]
        for tp in sorted(sub.assignment):
            if (
                tp.topic in sub.topics
                and 0 <= tp.partition < topics.get(tp.topic, 0)
                and tp not in taken
            ):
                assignment[member].add(tp)
                taken.add(tp)

    unassigned = [
        TopicPartition(t, p)
        for t in sorted(topics)
        if eligible[t]
        for p in range(topics[t])
        if TopicPartition(t, p) not in taken
    ]
    unassigned.sort(key=lambda tp: (len(eligible[tp.topic]), tp))
    # Per topic, a heap of (count, member) over its eligible members. Counts only grow
    # here, so a stale entry is refreshed when it reaches the top.
    heaps = {t: sorted((len(assignment[m]), m) for m in ms) for t, ms in eligible.items()}
    for tp in unassigned:
        heap = heaps[tp.topic]
        while heap[0][0] != len(assignment[heap[0][1]]):
            heapq.heapreplace(heap, (len(assignment[heap[0][1]]), heap[0][1]))
        count, member = heap[0]
        assignment[member].add(tp)
        heapq.heapreplace(heap, (count + 1, member))

    if all(len(ms) == len(members) for ms in eligible.values() if ms):
        _balance_homogeneous(assignment)
    else:
        _balance(assignment, eligible)
    return {m: frozenset(ps) for m, ps in assignment.items()}


def _balance_homogeneous(assignment: dict[str, set[TopicPartition]]) -> None:
    # Identical subscriptions: quotas of n // m, the n % m extra slots going to the members
    # holding the most already; surplus partitions (each giver's highest) fill the deficits.
    if not assignment:
        return
    order = sorted(assignment, key=lambda m: (-len(assignment[m]), m))
    base, extra = divmod(sum(len(ps) for ps in assignment.values()), len(order))
    quota = {m: base + (1 if i < extra else 0) for i, m in enumerate(order)}
    surplus: list[TopicPartition] = []
    for m in sorted(assignment):
        over = len(assignment[m]) - quota[m]
        if over > 0:
            give = sorted(assignment[m])[-over:]
            assignment[m].difference_update(give)
            surplus.extend(give)
    surplus.sort(reverse=True)
    for m in sorted(assignment):
        while len(assignment[m]) < quota[m]:
            assignment[m].add(surplus.pop())


def _balance(assignment: dict[str, set[TopicPartition]], eligible: dict[str, list[str]]) -> None:
    # Every move lowers the sum of squared counts by >= 2, so this terminates.
    while True:
        move = _find_move(assignment, eligible)
        if move is None:
            return
        giver, taker, tp = move
        assignment[giver].remove(tp)
        assignment[taker].add(tp)


def _find_move(
    assignment: dict[str, set[TopicPartition]], eligible: dict[str, list[str]]
) -> tuple[str, str, TopicPartition] | None:
    counts = {m: len(ps) for m, ps in assignment.items()}
    if not counts or max(counts.values()) - min(counts.values()) < 2:
        return None
    lightest = {t: min(ms, key=lambda m: (counts[m], m)) for t, ms in eligible.items() if ms}
    for giver in sorted(assignment, key=lambda m: (-counts[m], m)):
        have = counts[giver]
        if have < 2:
            return None
        best: tuple[int, str, str] | None = None  # (count, member, topic)
        for topic in sorted({tp.topic for tp in assignment[giver]}):
            taker = lightest[topic]
            n = counts[taker]
            if have - n >= 2 and (best is None or (n, taker) < best[:2]):
                best = (n, taker, topic)
        if best is not None:
            _, taker, topic = best
            tp = max(tp for tp in assignment[giver] if tp.topic == topic)
            return giver, taker, tp
    return None


def is_balanced(
    assignment: Mapping[str, frozenset[TopicPartition]], members: Mapping[str, MemberSubscription]
) -> bool:
    """True when no partition could move to another subscribed member and reduce the spread."""
    counts = {m: len(ps) for m, ps in assignment.items()}
    for giver, ps in assignment.items():
        for topic in {tp.topic for tp in ps}:
            for taker, sub in members.items():
                if topic in sub.topics and counts[giver] - counts[taker] >= 2:
                    return False
    return True


ASSIGNORS: dict[str, Assignor] = {"uniform": uniform_assign, "range": range_assign}
