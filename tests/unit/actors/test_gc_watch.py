"""The collector's pauses in the broker's counters (actors/gc_watch.py)."""

from __future__ import annotations

import gc

import pytest
from loguru import logger
from rillet.actors.gc_watch import GcWatch
from rillet.actors.session import BrokerContext
from rillet.actors.ticker import Ticker

pytestmark = pytest.mark.timeout(30)


def test_every_collection_is_counted_and_timed_by_generation() -> None:
    watch = GcWatch().install()
    try:
        before = watch.values()
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
        after = watch.values()
    finally:
        watch.uninstall()
    assert after["gc_collections_gen0"] >= before["gc_collections_gen0"] + 1
    assert after["gc_collections_gen2"] == before["gc_collections_gen2"] + 2
    assert after["gc_pause_ms_total"] >= after["gc_pause_ms_max"] >= 0
    gc.collect(2)  # uninstalled: nothing counted any more
    assert watch.values()["gc_collections_gen2"] == after["gc_collections_gen2"]
    assert watch._callback not in gc.callbacks


def test_a_slow_collection_is_logged_by_report_not_inside_the_collection() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    watch = GcWatch(warn_ms=0).install()  # every collection is "slow"
    try:
        gc.collect(2)
        assert not lines  # the callback only noted it
        watch.report()
        assert any("garbage collection (generation 2)" in line for line in lines)
        lines.clear()
        watch.report()  # reported once
        assert not any("generation 2" in line for line in lines)
    finally:
        watch.uninstall()
        logger.remove(sink)


def test_the_broker_counters_carry_the_pauses() -> None:
    ticker = Ticker()
    try:
        ctx = BrokerContext(broker_id=1, host="h", port=1, cluster_id="c", broker_configs={},
                            send=lambda *_: None, ticker=ticker)
        assert "gc_pause_ms_max" not in ctx.counter_values()
        ctx.gc_watch = GcWatch()
        ctx.gc_watch.collections[2] = 3
        assert ctx.counter_values()["gc_collections_gen2"] == 3
    finally:
        ticker.stop()


def test_a_slow_full_collection_freezes_what_survived_it() -> None:
    watch = GcWatch(schedule=lambda delay, fn: None, freeze_ms=0.0).install()
    try:
        hosted = [[i] for i in range(50_000)]  # the "partition actors": tracked objects
        gc.collect(2)  # "slow": freeze_ms is 0
        assert gc.get_freeze_count() == 0  # nothing happens inside the collection
        watch.report()
        assert watch.refreezes == 1 and watch.values()["gc_refreezes"] == 1
        assert gc.get_freeze_count() >= len(hosted) == 50_000
    finally:
        watch.uninstall()
    assert gc.get_freeze_count() == 0  # a stopped broker's objects are collectable again


def test_dropped_partitions_are_unfrozen_once_settled_and_reclaimed_by_the_next_walk() -> None:
    import weakref

    class Node:
        pass

    scheduled: list = []
    watch = GcWatch(schedule=lambda delay, fn: scheduled.append((delay, fn)), settle_s=2.0,
                    freeze_ms=0.0).install()
    try:
        a, b = Node(), Node()
        a.peer, b.peer = b, a  # a cycle: only the collector reclaims it
        gone = weakref.ref(a)
        gc.collect(2)
        watch.report()  # frozen while alive
        del a, b  # the partition is dropped ...
        gc.collect()
        assert gone() is not None  # ... but frozen objects are not walked
        watch.partitions_dropped()
        watch.partitions_dropped()  # a second drop before the first settled
        assert [d for d, _ in scheduled] == [2.0, 2.0]
        scheduled[0][1]()  # superseded: nothing happens
        assert watch.unfreezes == 0 and gc.get_freeze_count() > 0
        scheduled[1][1]()
        assert watch.values()["gc_unfreezes"] == 1 and gc.get_freeze_count() == 0
        gc.collect()  # the next full walk (no collection is run on purpose)
        assert gone() is None
    finally:
        watch.uninstall()


def test_without_a_scheduler_nothing_is_frozen() -> None:
    watch = GcWatch(freeze_ms=0.0).install()
    try:
        gc.collect(2)
        watch.report()
        watch.partitions_dropped()
        assert watch.refreezes == 0 and gc.get_freeze_count() == 0
    finally:
        watch.uninstall()


def test_a_slow_full_collection_freezes_what_survived_it_at_most_every_freeze_every_s() -> None:
    watch = GcWatch(schedule=lambda delay, fn: None, freeze_ms=0.0, freeze_every_s=3600).install()
    try:
        watch.report()
        assert watch.refreezes == 0  # no full collection yet
        gc.collect(2)  # "slow": freeze_ms is 0
        watch.report()
        assert watch.refreezes == 1 and gc.get_freeze_count() > 0
        gc.collect(2)
        watch.report()  # within freeze_every_s of the last one: not again
        assert watch.refreezes == 1
    finally:
        watch.uninstall()
    assert gc.get_freeze_count() == 0


def test_new_partitions_are_frozen_as_they_open_without_waiting_for_a_slow_collection() -> None:
    watch = GcWatch(schedule=lambda delay, fn: None, grow_window_s=3600).install()
    try:
        watch.report()
        assert watch.refreezes == 0 and gc.get_freeze_count() == 0  # nothing added yet
        watch.partitions_added()
        hosted = [[i] for i in range(50_000)]  # the new replicas' objects, never collected
        watch.report()
        assert watch.refreezes == 1 and gc.get_freeze_count() >= len(hosted)
        more = [[i] for i in range(10_000)]  # logs still opening: the next report freezes too
        frozen = gc.get_freeze_count()
        watch.report()
        assert watch.refreezes == 2 and gc.get_freeze_count() >= frozen + len(more)
        watch._grow_until = 0.0  # the window is over: only a slow full collection freezes
        watch.report()
        assert watch.refreezes == 2
    finally:
        watch.uninstall()
    assert gc.get_freeze_count() == 0


def test_an_unfreeze_ends_the_window_so_dropped_partitions_meet_a_full_collection() -> None:
    import weakref

    class Node:
        pass

    scheduled: list = []
    watch = GcWatch(schedule=lambda delay, fn: scheduled.append((delay, fn)),
                    grow_window_s=3600).install()
    try:
        a, b = Node(), Node()
        a.peer, b.peer = b, a
        gone = weakref.ref(a)
        watch.partitions_added()
        watch.report()  # frozen while alive
        del a, b
        watch.partitions_dropped()
        scheduled[-1][1]()  # settled: unfrozen
        assert gc.get_freeze_count() == 0
        watch.report()  # within the creation's window, but after an unfreeze: no freeze
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert gone() is None
    finally:
        watch.uninstall()


def test_without_a_scheduler_added_partitions_freeze_nothing() -> None:
    watch = GcWatch().install()
    try:
        watch.partitions_added()
        watch.report()
        assert watch.refreezes == 0 and gc.get_freeze_count() == 0
    finally:
        watch.uninstall()


def test_what_the_start_made_is_frozen_once_the_broker_serves() -> None:
    """``started`` freezes at once (the modules, actors and their state live as long as
    the process): the first full collections do not walk them."""
    watch = GcWatch(schedule=lambda delay, fn: None).install()
    try:
        made = [[i] for i in range(20_000)]  # the start's objects
        watch.started()
        assert watch.refreezes == 1 and gc.get_freeze_count() >= len(made)
    finally:
        watch.uninstall()
    assert gc.get_freeze_count() == 0  # a stopped broker's objects are collectable again
    unscheduled = GcWatch().install()  # without a scheduler nothing is frozen
    try:
        unscheduled.started()
        assert unscheduled.refreezes == 0 and gc.get_freeze_count() == 0
    finally:
        unscheduled.uninstall()
