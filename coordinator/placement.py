"""Replica placement for new topics and partitions: pure and deterministic.

Kafka's rack-unaware algorithm (``AdminUtils.assignReplicasToBrokers``) with the random start
replaced by an argument, so the same inputs always give the same layout:

* the first replica of partition ``p`` is broker ``brokers[(p + start_index) % n]``, so
  leaders (the preferred leader is the first replica) go round-robin over the brokers;
* the followers of a partition are the next brokers after the first, skipping by a shift
  that grows by one after every ``n`` partitions, so replica sets differ between rounds and
  followers spread evenly too.

Worked example, brokers [1, 2, 3], 6 partitions, replication factor 2, start_index 0::

    p0 -> (1, 2)   p1 -> (2, 3)   p2 -> (3, 1)     (shift 0: follower = next broker)
    p3 -> (1, 3)   p4 -> (2, 1)   p5 -> (3, 2)     (shift 1: follower = the one after)

Each broker leads two partitions and follows two. The controller passes as ``start_index``
the number of partitions that already exist in the cluster, which balances leaders across
topics as well.
"""

from __future__ import annotations

from collections.abc import Sequence


class PlacementError(ValueError):
    """The request cannot be placed (Kafka: INVALID_REPLICATION_FACTOR / INVALID_PARTITIONS)."""

    def __init__(self, message: str, *, replication_factor: bool = True) -> None:
        super().__init__(message)
        self.replication_factor = replication_factor


def assign_replicas(
    brokers: Sequence[int],
    num_partitions: int,
    replication_factor: int,
    *,
    start_index: int = 0,
    first_partition: int = 0,
) -> list[tuple[int, ...]]:
    """Replica lists for partitions ``first_partition .. first_partition + num_partitions - 1``.

    ``brokers`` are the live (unfenced) broker ids; they are sorted here so the caller's
    order does not matter. Raises ``PlacementError`` if the replication factor exceeds the
    number of live brokers or either count is not positive.
    """
    live = sorted(set(brokers))
    n = len(live)
    if num_partitions <= 0:
        raise PlacementError(
            f"number of partitions must be positive, got {num_partitions}", replication_factor=False
        )
    if replication_factor <= 0:
        raise PlacementError(f"replication factor must be positive, got {replication_factor}")
    if replication_factor > n:
        raise PlacementError(
            f"replication factor {replication_factor} is larger than the number of live "
            f"brokers ({n}: {live})"
        )
    out: list[tuple[int, ...]] = []
    for p in range(first_partition, first_partition + num_partitions):
        shift = p // n
        first = (p + start_index) % n
        replicas = [live[first]]
        for j in range(replication_factor - 1):
            replicas.append(live[_replica_index(first, shift, j, n)])
        out.append(tuple(replicas))
    return out


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    return (first + 1 + (shift + j) % (n - 1)) % n


def preferred_leader(replicas: Sequence[int]) -> int:
    """The preferred leader of a partition is its first replica (-1 if it has none)."""
    return replicas[0] if replicas else -1
