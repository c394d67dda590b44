"""Slow: repeated crashes of the active controller and of other brokers while topics are
created; at the end every broker holds the same metadata and every topic exists."""

from __future__ import annotations

import random
import time

import pytest
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

from rillet import Admin, NewTopic

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def _metadata(cluster, broker_id: int):
    with ClientEndpoint() as endpoint:
        try:
            return endpoint.request(cluster.address(broker_id), P.MetadataRequest(), 1000).result(3)
        except Exception:  # noqa: BLE001 - down: the caller polls again
            return None


def test_crash_loop_keeps_every_created_topic(cluster_factory, cluster3_configs) -> None:
    rng = random.Random(7)
    c = cluster_factory(3, cluster3_configs)
    created = []
    for round_ in range(12):
        victim = c.controller_id() if round_ % 2 == 0 else rng.choice(c.broker_ids)
        c.kill(victim)
        live = [b for b in c.broker_ids if b != victim]
        deadline = time.monotonic() + 20
        while True:  # new topics go to live brokers only once the victim is fenced
            m = _metadata(c, live[0])
            if m and m.controller_id in live and victim not in {b.broker_id for b in m.brokers}:
                break
            assert time.monotonic() < deadline, f"broker {victim} never fenced"
            time.sleep(0.05)
        with Admin({"bootstrap.servers": c.address(live[0]), "request.timeout.ms": 20000}) as a:
            name = f"t{round_}"
            a.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
            created.append(name)
        c.start_broker(victim)
        c.wait_ready(30, broker_ids=[victim])
    deadline = time.monotonic() + 20
    while True:
        metas = [_metadata(c, b) for b in c.broker_ids]
        views = [
            sorted((t.name, len(t.partitions)) for t in m.topics) if m else None for m in metas
        ]
        if all(v == sorted((n, 2) for n in created) for v in views):
            break
        assert time.monotonic() < deadline, views
        time.sleep(0.1)
