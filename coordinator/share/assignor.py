"""KIP-932's simple assignor for share groups. Pure and deterministic.

Every partition of a subscribed topic goes to at least one member subscribed to it, and the
members of a topic are spread evenly over its partitions:

* a topic with at least as many partitions as subscribed members: each partition goes to
  one member, the one with the fewest partitions so far (over all topics; ties by member
  id), so members end up within one partition of each other;
* a topic with more subscribed members than partitions: each member gets one partition,
  round-robin in member-id order, so partitions are shared by ``members // partitions`` or
  one more members.

Worked example: members a, b, c subscribed to "t" with 2 partitions -> a: {t-0}, b: {t-1},
c: {t-0}. Subscribed to "u" with 4 partitions as well, each holds one partition after "t",
so u-0..u-3 go to a, b, c, a: a: {t-0, u-0, u-3}, b: {t-1, u-1}, c: {t-0, u-2}.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from .group_model import SharePartition


def simple_assign(
    subscriptions: Mapping[str, tuple[str, ...]], topics: Mapping[str, int]
) -> dict[str, frozenset[SharePartition]]:
    """member id -> its partitions, for members subscribed to ``subscriptions[member]``
    (topic names) and the existing ``topics`` (name -> partition count). Every member is in
    the answer (with an empty set if it gets nothing)."""
    out: dict[str, set[SharePartition]] = {m: set() for m in subscriptions}
    for topic in sorted(topics):
        count = topics[topic]
        members = sorted(m for m, names in subscriptions.items() if topic in names)
        if not members or count <= 0:
            continue
        if len(members) > count:
            for i, m in enumerate(members):
                out[m].add((topic, i % count))
            continue
        heap = [(len(out[m]), m) for m in members]  # least loaded first, ties by id
        heapq.heapify(heap)
        for p in range(count):
            load, m = heapq.heappop(heap)
            out[m].add((topic, p))
            heapq.heappush(heap, (load + 1, m))
    return {m: frozenset(ps) for m, ps in out.items()}
