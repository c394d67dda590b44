"""examples/streams/orders_per_minute.py: its topology (``build``) in the test driver equals
the plain-Python reference over hypothesis-generated out-of-order and late orders, and its
``--demo`` prints the final counts shown in docs/streams.md."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings

from rillet.streams.api import Window, Windowed
from rillet.streams.driver import TopologyTestDriver
from rillet.streams.topology import Topology

from .test_windows_aggregate import MINUTE, SETTINGS, orders, reference_time_windows

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "streams" / "orders_per_minute.py"


def _example():
    spec = importlib.util.spec_from_file_location("orders_per_minute", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@settings(SETTINGS, max_examples=10)
@given(orders())
def test_example_final_counts_equal_the_reference(records):
    example = _example()
    topology = Topology()
    example.build(topology)
    finals = {}
    stream_time = -1
    with TopologyTestDriver(topology, "orders-per-minute") as driver:
        for customer, _amount, ts in records:
            driver.pipe("orders", customer, {"item": "x"}, ts)
            stream_time = max(stream_time, ts)
            for customer_out, result in driver.read_key_values("orders-per-minute"):
                key = Windowed(customer_out,
                               Window(result["window_start"], result["window_end"]))
                assert key not in finals, "a final count was emitted twice"
                assert result["window_end"] + 10_000 <= stream_time
                finals[key] = result["orders"]
    reference = reference_time_windows(records, MINUTE, MINUTE, 10_000)
    assert finals == {k: v for k, v in reference.items() if k.window.end + 10_000 <= stream_time}


def test_example_demo_prints_the_final_counts():
    run = subprocess.run([sys.executable, str(EXAMPLE), "--demo"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "alice\t{'window_start': 0, 'window_end': 60000, 'orders': 2}",
        "bob\t{'window_start': 0, 'window_end': 60000, 'orders': 1}",
        "alice\t{'window_start': 60000, 'window_end': 120000, 'orders': 1}",
        "bob\t{'window_start': 60000, 'window_end': 120000, 'orders': 1}",
        "carol\t{'window_start': 120000, 'window_end': 180000, 'orders': 1}",
    ]
    assert "late" in run.stderr and "timestamp=30000" in run.stderr
