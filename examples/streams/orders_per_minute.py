"""Orders per customer per minute with rillet.streams (docs/streams.md "Windows,
suppression and joins").

Reads orders from ``orders`` (key: the customer, value: a JSON object, its event time the
record timestamp), counts them per customer in one-minute tumbling windows that accept
records up to 10 s late (grace), and writes each window's *final* count once the window
has closed (``suppress``) to ``orders-per-minute``: key the customer, value JSON
``{"window_start": ..., "window_end": ..., "orders": n}``. Records later than the grace
are dropped (counted and logged).

    rillet cluster up
    rillet topic create orders --partitions 2
    rillet topic create orders-per-minute --partitions 2
    rillet streams run examples/streams/orders_per_minute.py:app

``python examples/streams/orders_per_minute.py`` runs it against the cluster with a few
out-of-order orders of its own; ``--demo`` runs the same topology in the
TopologyTestDriver (no broker) and prints what it writes.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rillet.streams import serdes
from rillet.streams.windows import TumblingWindows

MINUTE = 60_000
WINDOWS = TumblingWindows(MINUTE, grace_ms=10_000)

# (customer, order, event time ms) in arrival order: out of order, the last bob is late
ORDERS = [
    ("alice", {"item": "tea"}, 5_000),
    ("bob", {"item": "cake"}, 12_000),
    ("alice", {"item": "milk"}, 61_000),
    ("alice", {"item": "jam"}, 58_000),    # out of order, within the grace: counted
    ("bob", {"item": "bread"}, 75_000),    # first minute closes (60 s + 10 s grace)
    ("bob", {"item": "eggs"}, 30_000),     # late: dropped
    ("carol", {"item": "figs"}, 130_000),  # second minute closes
    ("alice", {"item": "salt"}, 200_000),  # third minute closes
]


def build(app_or_topology: Any) -> None:
    """Add the orders-per-minute topology to an ``App`` or a ``Topology``."""
    orders = app_or_topology.stream("orders", key_serde=serdes.String,
                                    value_serde=serdes.Json)
    per_minute = (orders.group_by_key()
                  .window(WINDOWS)
                  .count(store="orders-per-minute"))
    (per_minute.suppress()
     .to_stream()
     .map(lambda wk, n: (wk.key, {"window_start": wk.window.start,
                                  "window_end": wk.window.end, "orders": n}))
     .to("orders-per-minute", key_serde=serdes.String, value_serde=serdes.Json))


def __getattr__(name: str) -> Any:
    # `rillet streams run examples/streams/orders_per_minute.py:app` asks for `app`
    if name == "app":
        return make_app()
    raise AttributeError(name)


def make_app(config: dict[str, Any] | None = None) -> Any:
    from rillet.streams import App

    app = App("orders-per-minute", {"commit.interval.ms": 200, **(config or {})})
    build(app)
    return app


def demo() -> list[tuple[str, dict]]:
    """The topology in the TopologyTestDriver: returns (and prints) what it writes."""
    from rillet.streams.driver import TopologyTestDriver
    from rillet.streams.topology import Topology

    topology = Topology()
    build(topology)
    out = []
    with TopologyTestDriver(topology, "orders-per-minute") as driver:
        for customer, order, ts in ORDERS:
            driver.pipe("orders", customer, order, ts)
            out += driver.read_key_values("orders-per-minute")
    for customer, result in out:
        print(f"{customer}\t{result}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="host:port (default: $RILLET_BROKERS / profile)")
    parser.add_argument("--state-dir", help="where the stores live")
    parser.add_argument("--demo", action="store_true", help="run in the test driver")
    args = parser.parse_args()
    if args.demo:
        demo()
        return
    from rillet import Admin, Consumer, NewTopic, Producer
    from rillet.errors import TopicAlreadyExistsError

    config: dict[str, Any] = {}
    if args.bootstrap:
        config["bootstrap.servers"] = args.bootstrap
    if args.state_dir:
        config["state.dir"] = args.state_dir
    app = make_app(config)
    bootstrap = app.config.bootstrap_servers
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        for name in ("orders", "orders-per-minute"):
            try:
                admin.create_topics([NewTopic(name, 1)])
            except TopicAlreadyExistsError:
                pass
    with Producer({"bootstrap.servers": bootstrap}) as producer:
        for customer, order, ts in ORDERS:
            producer.send("orders", serdes.Json.serialize("orders", order),
                          key=customer.encode(), timestamp_ms=ts)
    app.start()
    got = []
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest"}) as out:
        out.assign([("orders-per-minute", 0)])
        deadline = time.monotonic() + 60
        while len(got) < 5 and time.monotonic() < deadline:
            for records in out.poll(500).values():
                got += [(r.key.decode(), serdes.Json.deserialize("x", r.value))
                        for r in records]
    app.close()
    for customer, result in got:
        print(f"{customer}\t{result}")
    if len(got) < 5:
        sys.exit(f"expected 5 final results, got {got}")


if __name__ == "__main__":
    main()
