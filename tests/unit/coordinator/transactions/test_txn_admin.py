"""The administration views of the transaction coordinator (kafka-transactions.sh list and
describe): filters by state, producer id and running time; Dead ids hidden."""

from __future__ import annotations

import itertools

import pytest
from rillet.coordinator.transactions import TransactionCoordinator
from rillet.coordinator.transactions import admin as TA

pytestmark = pytest.mark.timeout(10)


def _world():
    ids = itertools.count(1000)
    c = TransactionCoordinator()
    pids = {}
    for tid in ("idle", "running", "old"):
        r = c.init_producer_id(tid, 60_000, 1_000, lambda: next(ids))
        pids[tid] = (r.response.producer_id, r.response.producer_epoch)
    c.add_partitions("old", *pids["old"], [("t", 0), ("t", 1), ("u", 0)], 2_000)
    c.add_partitions("running", *pids["running"], [("t", 0)], 9_000)
    return c, pids


def test_every_live_id_is_listed_with_its_state_and_producer() -> None:
    c, pids = _world()
    listed = TA.list_transactions([c], now_ms=10_000)
    assert [(t.transactional_id, t.state) for t in listed] == [
        ("idle", "Empty"), ("old", "Ongoing"), ("running", "Ongoing")]
    assert {t.transactional_id: t.producer_id for t in listed} == {
        k: v[0] for k, v in pids.items()}


def test_filters_by_state_producer_and_running_time() -> None:
    c, pids = _world()
    assert [t.transactional_id for t in TA.list_transactions(
        [c], states=["Ongoing"], now_ms=10_000)] == ["old", "running"]
    assert [t.transactional_id for t in TA.list_transactions(
        [c], producer_ids=[pids["idle"][0]], now_ms=10_000)] == ["idle"]
    # open for at least 5 s at t=10 s: only the one begun at t=2 s (hanging transactions)
    assert [t.transactional_id for t in TA.list_transactions(
        [c], min_duration_ms=5_000, now_ms=10_000)] == ["old"]
    assert TA.unknown_states(["Ongoing", "Hanging"]) == ("Hanging",)


def test_describe_gives_partitions_and_start_only_while_running() -> None:
    c, _ = _world()
    old = TA.describe(c, "old")
    assert old is not None and TA.start_ms(old) == 2_000
    assert TA.partitions_by_topic(old.partitions) == {"t": (0, 1), "u": (0,)}
    idle = TA.describe(c, "idle")
    assert idle is not None and TA.start_ms(idle) == -1
    assert TA.describe(c, "nobody") is None
