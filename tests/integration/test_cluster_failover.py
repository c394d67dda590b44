"""A real three-broker cluster: controller failover, broker fencing, a broker that is not a
voter. Timeouts are shortened with FAST_CLUSTER_CONFIGS (election 300 ms, heartbeats 200 ms,
session 1500 ms); every wait polls a condition with a deadline."""

from __future__ import annotations

import time

import pytest
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

from rillet import Admin, NewTopic, Producer
from tests.support import FAST_CLUSTER_CONFIGS, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
FAST = FAST_CLUSTER_CONFIGS


def metadata(cluster, broker_id: int, topics=None):
    with ClientEndpoint() as endpoint:
        request = P.MetadataRequest(topics=topics)
        try:
            return endpoint.request(cluster.address(broker_id), request, 1000).result(3)
        except Exception:  # noqa: BLE001 - down or busy: the caller polls again
            return None


def agreed_controller(cluster, exclude: int | None = None) -> int | None:
    """The controller every running broker names, if they agree (and it is not ``exclude``)."""
    seen = set()
    for b in cluster.broker_ids:
        if cluster.pid(b) is None:
            continue
        meta = metadata(cluster, b, ())
        if meta is None:
            return None
        seen.add(meta.controller_id)
    if len(seen) != 1:
        return None
    (controller,) = seen
    return controller if controller >= 0 and controller != exclude else None


def admin(cluster, broker_id: int | None = None) -> Admin:
    bootstrap = cluster.address(broker_id) if broker_id else cluster.bootstrap_servers
    return Admin({"bootstrap.servers": bootstrap, "request.timeout.ms": 15000})


def test_killing_the_active_controller_elects_another_which_the_old_one_follows(cluster3):
    c = cluster3
    old = wait_until(lambda: agreed_controller(c), 10, "an active controller")
    with admin(c) as a:
        a.create_topics([NewTopic("before", num_partitions=3, replication_factor=3)])
    c.kill(old)
    new = wait_until(lambda: agreed_controller(c, exclude=old), 10, "a new controller")
    assert new != old
    # topic creation works again (the admin client finds the new controller)
    live = [b for b in c.broker_ids if b != old]
    with admin(c, live[0]) as a:
        # rf 2: the old controller may not be fenced yet, so a replica may be placed on it
        a.create_topics([NewTopic("after", num_partitions=2, replication_factor=2)])
        assert {"before", "after"} <= set(a.list_topics())
    # the old controller comes back as a follower: the leader keeps its term (pre-vote)
    c.start_broker(old)
    c.wait_ready(30, broker_ids=[old])
    assert wait_until(lambda: agreed_controller(c), 10, "agreement") == new
    meta = wait_until(
        lambda: (m := metadata(c, old, ("before", "after"))) and all(
            t.error_code == 0 for t in m.topics) and m, 10, "the old controller to catch up")
    assert [len(t.partitions) for t in meta.topics] == [3, 2]
    assert {b.broker_id for b in meta.brokers} == set(c.broker_ids)


def test_a_killed_broker_is_fenced_and_the_partitions_it_led_get_new_leaders(cluster3):
    # Issue #13: this failed about 1 full run in 5. The "before" record could reach a new
    # leader ahead of its follower's first fetch, which reset the follower's catch-up time,
    # so the leader's next ISR check dropped it (coordinator/replication.py); the kill then
    # left that partition leaderless and the producer waited out delivery.timeout.ms.
    c = cluster3
    controller = wait_until(lambda: agreed_controller(c), 10, "an active controller")
    with admin(c) as a:
        a.create_topics([NewTopic("moving", num_partitions=6, replication_factor=2)])
        before = a.describe_topics(["moving"])["moving"].partitions
    victim = next(b for b in c.broker_ids if b != controller)
    led = {p.partition: p for p in before if p.leader == victim}
    assert led, "placement gives every broker some leaderships"
    # a producer bootstrapped from the controller writes to the victim's partitions ...
    producer = Producer({"bootstrap.servers": c.address(controller), "acks": 1})
    try:
        for i in led:
            producer.send("moving", b"before", partition=i).get(30)
        c.kill(victim)
        killed_at = time.monotonic()
        # ... and keeps writing to them: it finds the new leaders once the victim is fenced
        after = [producer.send("moving", b"after-failover", partition=i) for i in led]
        assert [f.get(30).partition for f in after] == list(led)
    finally:
        producer.close(5)  # a failure above shows as itself, not as a test timeout in flush

    def moved():
        m = metadata(c, controller, ("moving",))
        if m is None or victim in {b.broker_id for b in m.brokers}:
            return None
        parts = {p.partition: p for p in m.topics[0].partitions}
        ok = all(
            parts[i].leader not in (victim, -1) and parts[i].leader_epoch > old.leader_epoch
            for i, old in led.items()
        )
        return parts if ok else None

    session_s = int(c.configs["broker.session.timeout.ms"]) / 1000
    parts = wait_until(moved, session_s + 10, f"broker {victim} to be fenced")
    fenced_after = time.monotonic() - killed_at
    assert fenced_after >= session_s * 0.5, "fenced before its session could expire"
    for i in led:
        assert victim not in parts[i].isr
    # restarted, it registers again and is unfenced
    c.start_broker(victim)
    c.wait_ready(30, broker_ids=[victim])
    # polled: one metadata call may time out on a loaded machine (metadata() gives None)
    wait_until(lambda: (m := metadata(c, controller, ())) is not None
               and victim in {b.broker_id for b in m.brokers}, 10, f"broker {victim} back")


def test_a_broker_that_is_not_a_voter_follows_the_metadata_log(cluster_factory):
    c = cluster_factory(4, {**FAST, "metadata.snapshot.threshold.entries": "3"})
    assert c.voters == [1, 2, 3]
    with admin(c, 4) as a:  # through the non-voter, which forwards to the controller
        a.create_topics([NewTopic("wide", num_partitions=4, replication_factor=1)])
        parts = a.describe_topics(["wide"])["wide"].partitions
    assert {p.leader for p in parts} == {1, 2, 3, 4}
    meta = wait_until(
        lambda: (m := metadata(c, 4, ("wide",))) and m.topics[0].error_code == 0 and m,
        10, "broker 4 to see the topic")
    assert meta.controller_id in (1, 2, 3)
    assert not (c.broker_dir(4) / "__cluster_metadata").exists()
    # restarted, it fetches everything again (a snapshot first: the log was compacted)
    c.kill(4)
    c.start_broker(4)
    c.wait_ready(30, broker_ids=[4])
    meta = metadata(c, 4, ("wide",))
    assert meta.topics[0].error_code == 0 and len(meta.topics[0].partitions) == 4
