"""Read-only views of a transaction coordinator for administration (kafka-transactions.sh
list / describe; Kafka's ListTransactions and DescribeTransactions). Pure: ``now_ms`` is an
argument."""

from __future__ import annotations

from collections.abc import Iterable

from rillet.frozen import frozen

from .coordinator import TransactionCoordinator
from .state import TopicPartition, TxnMetadata, TxnState

KNOWN_STATES = frozenset(s.value for s in TxnState)
#: states with a transaction running (it has a start time and a duration)
RUNNING = frozenset(
    {
        TxnState.ONGOING,
        TxnState.PREPARE_COMMIT,
        TxnState.PREPARE_ABORT,
        TxnState.PREPARE_EPOCH_FENCE,
    }
)


def start_ms(m: TxnMetadata) -> int:
    """When the running transaction of ``m`` began; -1 when none is running."""
    return m.txn_start_ms if m.state in RUNNING else -1


@frozen
class Listed:
    transactional_id: str
    producer_id: int
    state: str


def unknown_states(states: Iterable[str]) -> tuple[str, ...]:
    """The state filters that name no state (answered back, as Kafka does)."""
    return tuple(sorted(set(states) - KNOWN_STATES))


def list_transactions(
    coordinators: Iterable[TransactionCoordinator],
    *,
    states: Iterable[str] = (),
    producer_ids: Iterable[int] = (),
    min_duration_ms: int = -1,
    now_ms: int,
) -> list[Listed]:
    """Every transactional id of ``coordinators`` matching all filters given: its state is
    one of ``states``, its producer id one of ``producer_ids``, its transaction open for at
    least ``min_duration_ms`` (``-1``: any; only a running transaction has a duration).
    Dead ids (expired, tombstoned) are left out."""
    wanted_states = frozenset(states)
    wanted_pids = frozenset(producer_ids)
    out = []
    for core in coordinators:
        for m in core.transactions.values():
            if m.state is TxnState.DEAD:
                continue
            if wanted_states and m.state.value not in wanted_states:
                continue
            if wanted_pids and m.producer_id not in wanted_pids:
                continue
            if min_duration_ms >= 0 and (start_ms(m) < 0 or now_ms - start_ms(m) < min_duration_ms):
                continue
            out.append(Listed(m.transactional_id, m.producer_id, m.state.value))
    return sorted(out, key=lambda t: t.transactional_id)


def describe(core: TransactionCoordinator, transactional_id: str) -> TxnMetadata | None:
    """The metadata of ``transactional_id`` (None: unknown or dead)."""
    m = core.transactions.get(transactional_id)
    return None if m is None or m.state is TxnState.DEAD else m


def partitions_by_topic(partitions: Iterable[TopicPartition]) -> dict[str, tuple[int, ...]]:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return {t: tuple(ps) for t, ps in by_topic.items()}
