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
