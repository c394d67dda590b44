"""The share-partition leader on a real broker process, over raw ShareFetch/ShareAcknowledge
requests (docs/queues.md, "Share-partition"): acquire, accept, release at once and delayed,
reject into the dead-letter topic with its headers, renew, lock expiry, the delivery limit,
bad input. Share state goes through the real share-state coordinator (``__share_group_state``);
failover is test_share_failover.py."""

from __future__ import annotations

import time

import pytest
from rillet.logstore.batch import records
from rillet.transport import protocol as P

from rillet.launcher import LocalCluster
from tests.integration.share_helpers import (
    ack,
    acquired,
    describe,
    share_ack,
    share_fetch,
    values_batch,
)
from tests.support import wait_until

E = P.ErrorCode
ACCEPT, RELEASE, REJECT, RENEW = P.ACK_ACCEPT, P.ACK_RELEASE, P.ACK_REJECT, P.ACK_RENEW
LOCK_MS = 3000  # group "gx"'s lock (the lock-expiry test); the others hold theirs 30 s
CONFIGS = {
    "group.share.delivery.count.limit": "3",
    "group.share.retry.backoff.ms": "2000",
    "group.share.retry.backoff.max.ms": "4000",
}


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """One broker for the module (each test has its own topic, so its own share-partition)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("share"), 1,
                           {"log.retention.check.interval.ms": "500", **CONFIGS})
    cluster.start(timeout_s=30)
    try:
        yield cluster
    finally:
        cluster.stop(timeout_s=10)


@pytest.fixture
def wire(shared_cluster, wire_factory):
    return wire_factory(shared_cluster)


@pytest.fixture
def q(wire, request) -> str:
    """This test's topic, its share-partition of group "g" initialised at offset 0."""
    name = request.node.name.removeprefix("test_")[:60].replace("_", "-")
    assert wire.create_topic(name).error_code == E.NONE
    wait_until(lambda: share_fetch(wire, "g", "init", name).error_code == E.NONE, 10,
               "the share-partition initialised at the latest offset")
    return name


def group_configs(wire, group: str, **configs: str) -> None:
    """Set ``group``'s GROUP configs (dots as underscores) and wait until this broker's
    metadata image has them (the leader reads them there when it loads a share-partition)."""
    configs = {k.replace("_", "."): v for k, v in configs.items()}
    change = P.AlterConfigsRequest(resources=(P.AlterConfigsResource(
        resource_type=P.ConfigResourceType.GROUP, resource_name=group, configs=tuple(
            P.AlterableConfig(name=k, value=v) for k, v in configs.items())),))
    assert wire.call(change).results[0].error_code == E.NONE

    def in_image():
        r = wire.call(P.DescribeConfigsRequest(resources=(P.ConfigResource(
            resource_type=P.ConfigResourceType.GROUP, resource_name=group),))).results[0]
        return configs.items() <= {(c.name, c.value) for c in r.configs}

    wait_until(in_image, 10, f"{group}'s configs in the broker's metadata image")


def dlq_records(wire, topic: str) -> list:
    def read():
        part = wire.fetch(topic, 0, 0)
        return list(records(part.records)) if part.error_code == E.NONE else []

    return read()


def test_acquire_accept_release_reject_renew(wire, q):
    assert wire.produce(q, 0, values_batch([b"v0", b"v1", b"v2", b"v3", b"v4"],
                                             key=b"k", headers=[("h", b"1")])).error_code == 0
    got = acquired(share_fetch(wire, "g", "a", q))
    assert got == [(o, b"v%d" % o, 1) for o in range(5)]
    assert acquired(share_fetch(wire, "g", "b", q)) == []  # all held by a
    t0 = time.monotonic()
    part = share_fetch(wire, "g", "a", q, max_records=0, acks=[
        ack(0, 0, ACCEPT), ack(1, 1, RELEASE, delay_ms=0), ack(2, 2, RELEASE, delay_ms=3000),
        ack(3, 3, REJECT, reason="bad url"), ack(4, 4, RENEW)])
    assert part.acknowledge_error_code == E.NONE, part
    assert acquired(share_fetch(wire, "g", "b", q)) == [(1, b"v1", 2)]  # released at once
    # offset 2 is not offered before its delay; then b gets it with delivery count 2
    got = wait_until(lambda: acquired(share_fetch(wire, "g", "b", q, max_wait_ms=200)), 10,
                     "the delayed record")
    assert got == [(2, b"v2", 2)]
    assert time.monotonic() - t0 >= 3.0
    # offset 4 is still a's (renewed): a accepts it; 3 is in the dead-letter topic
    assert share_ack(wire, "g", "a", q, [ack(4, 4, ACCEPT)]) == E.NONE
    dead = wait_until(lambda: dlq_records(wire, q + ".dlq"), 10, "the dead letter")
    assert [(r.key, r.value) for r in dead] == [(b"k", b"v3")]
    headers = dict(dead[0].headers)
    assert headers["h"] == b"1"
    assert {k: v for k, v in headers.items() if k.startswith("rillet.dlq.")} == {
        "rillet.dlq.topic": q.encode(), "rillet.dlq.partition": b"0", "rillet.dlq.offset": b"3",
        "rillet.dlq.delivery.count": b"1", "rillet.dlq.group": b"g",
        "rillet.dlq.reason": b"bad url"}
    assert share_ack(wire, "g", "b", q, [ack(1, 2, ACCEPT)]) == E.NONE

    def settled():
        d = describe(wire, "g", q)
        return d if d.start_offset == 5 else None

    d = wait_until(settled, 10, "every record accepted or archived")
    assert (d.acquired, d.available, d.lag, d.high_watermark) == (0, 0, 0, 5)
    # an accepted record is never offered again, to anyone
    assert acquired(share_fetch(wire, "g", "c", q)) == []


def test_lock_expiry_redelivers_then_the_delivery_limit_dead_letters(wire, q):
    group_configs(wire, "gx", share_record_lock_duration_ms=str(LOCK_MS),
                  share_auto_offset_reset="earliest")
    wire.produce(q, 0, values_batch([b"poison"]))
    assert acquired(share_fetch(wire, "gx", "a", q)) == [(0, b"poison", 1)]
    # a dies holding it: after the lock (3 s) b gets it, delivered a second time
    got = wait_until(lambda: acquired(share_fetch(wire, "gx", "b", q, max_wait_ms=500)),
                     LOCK_MS / 1000 + 5, "the expired record")
    assert got == [(0, b"poison", 2)]
    # third delivery (the limit is 3) and a release: archived and dead-lettered
    assert share_ack(wire, "gx", "b", q, [ack(0, 0, RELEASE, delay_ms=0)]) == E.NONE
    assert acquired(share_fetch(wire, "gx", "c", q)) == [(0, b"poison", 3)]
    assert share_ack(wire, "gx", "c", q, [ack(0, 0, RELEASE, delay_ms=0)]) == E.NONE
    dead = wait_until(lambda: dlq_records(wire, q + ".dlq"), 10, "the dead letter")
    headers = dict(dead[0].headers)
    assert headers["rillet.dlq.reason"] == b"delivery count limit reached"
    assert headers["rillet.dlq.delivery.count"] == b"3"
    wait_until(lambda: describe(wire, "gx", q).start_offset == 1, 10, "archived")
    assert acquired(share_fetch(wire, "gx", "d", q)) == []


def test_release_with_the_groups_backoff_is_never_early(wire, q):
    wire.produce(q, 0, values_batch([b"x"]))
    share_fetch(wire, "g", "a", q)
    t0 = time.monotonic()
    assert share_ack(wire, "g", "a", q, [ack(0, 0, RELEASE, delay_ms=-1)]) == E.NONE
    d = describe(wire, "g", q)
    assert d.delayed == 1 and d.available == 0
    got = wait_until(lambda: acquired(share_fetch(wire, "g", "b", q, max_wait_ms=100)), 10,
                     "the backed-off record")
    assert got == [(0, b"x", 2)]
    assert time.monotonic() - t0 >= 2.0  # retry.backoff.ms for delivery 1


def test_long_poll_answers_when_records_arrive(wire, q):
    import threading

    result = {}

    def poll():
        result["part"] = share_fetch(wire, "g", "a", q, max_wait_ms=10_000)

    t = threading.Thread(target=poll)
    t0 = time.monotonic()
    t.start()
    time.sleep(0.3)  # the scenario: the record arrives while the fetch waits
    wire.produce(q, 0, values_batch([b"late"]))
    t.join(20)
    assert acquired(result["part"]) == [(0, b"late", 1)]
    assert 0.3 <= time.monotonic() - t0 < 8  # waited for it, answered on its arrival


def test_bad_input_gets_clear_errors_and_changes_nothing(wire, q):
    wire.produce(q, 0, values_batch([b"a", b"b"]))
    assert [o for o, _, _ in acquired(share_fetch(wire, "g", "a", q))] == [0, 1]
    before = describe(wire, "g", q)
    # not acquired by this member; never acquired; a negative delay other than -1
    assert share_ack(wire, "g", "b", q, [ack(0, 0, ACCEPT)]) == E.INVALID_RECORD_STATE
    assert share_ack(wire, "g", "a", q, [ack(0, 5, ACCEPT)]) == E.INVALID_RECORD_STATE
    assert share_ack(wire, "g", "a", q, [ack(0, 0, RELEASE, delay_ms=-7)]) == (
        E.INVALID_REQUEST)
    # all or nothing: the good half of a request with a bad half is not applied either
    assert share_ack(wire, "g", "a", q, [ack(0, 0, ACCEPT), ack(7, 7, ACCEPT)]) == (
        E.INVALID_RECORD_STATE)
    # an unknown group holds nothing here
    assert share_ack(wire, "nosuch", "a", q, [ack(0, 0, ACCEPT)]) == E.INVALID_RECORD_STATE
    assert describe(wire, "g", q) == before
    part = share_fetch(wire, "g", "a", q, max_records=0, acks=[ack(1, 1, 9)])
    assert part.acknowledge_error_code == E.INVALID_REQUEST
    assert describe(wire, "g", q) == before
    # unknown topic, empty ids
    assert share_fetch(wire, "g", "a", "nosuch").error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    response = wire.call(P.ShareFetchRequest(group_id="", member_id="a", topics=()))
    assert response.error_code == E.INVALID_REQUEST and "group_id" in response.error_message
    # the broker still serves the member
    assert share_ack(wire, "g", "a", q, [ack(0, 1, ACCEPT)]) == E.NONE


def test_a_fetch_carries_only_the_batches_holding_its_records(wire, q):
    for values in ([b"a", b"b"], [b"c"], [b"d", b"e"]):
        wire.produce(q, 0, values_batch(values))
    part = share_fetch(wire, "g", "a", q, max_records=2)
    assert [r.offset for r in records(part.records)] == [0, 1]
    part = share_fetch(wire, "g", "b", q, max_records=2)
    assert acquired(part) == [(2, b"c", 1), (3, b"d", 1)]
    assert [r.offset for r in records(part.records)] == [2, 3, 4]  # whole batches, as stored


def test_batch_optimized_acquisition_finishes_the_stored_batch(wire, q):
    """KIP-1206's default mode: max_records is soft, a stored batch is acquired whole (so
    it is read and decoded once, by one member); record_limit stays exact (above)."""
    for values in ([b"a", b"b", b"c"], [b"d", b"e"]):
        wire.produce(q, 0, values_batch(values))
    part = share_fetch(wire, "g", "a", q, max_records=2, acquire_mode=0)
    assert acquired(part) == [(0, b"a", 1), (1, b"b", 1), (2, b"c", 1)]
    part = share_fetch(wire, "g", "b", q, max_records=1, acquire_mode=0)
    assert acquired(part) == [(3, b"d", 1), (4, b"e", 1)]
    response = wire.call(P.ShareFetchRequest(group_id="g", member_id="a", topics=(),
                                             acquire_mode=2))
    assert response.error_code == E.INVALID_REQUEST and "acquire_mode" in response.error_message


def test_records_removed_by_retention_are_skipped(wire, q):
    assert wire.create_topic("small", configs={"segment.bytes": "1000",
                                               "retention.bytes": "1000"}).error_code == 0
    wait_until(lambda: share_fetch(wire, "g", "init", "small").error_code == E.NONE, 10,
               "the share-partition initialised")
    for i in range(20):
        wire.produce("small", 0, values_batch([b"%03d" % i + b"x" * 200]))
    start = wait_until(lambda: wire.list_offset("small", 0, P.EARLIEST_TIMESTAMP).offset, 15,
                       "retention to remove the first segments")
    part = share_fetch(wire, "g", "a", "small")
    assert part.error_code == E.NONE, part
    offsets = [o for o, _, _ in acquired(part)]
    assert offsets and offsets[0] >= start  # from the log start on, none lost
    while offsets[-1] < 19:
        more = [o for o, _, _ in acquired(share_fetch(wire, "g", "a", "small"))]
        assert more and more[0] == offsets[-1] + 1
        offsets += more
    assert offsets == list(range(offsets[0], 20))


def alter(wire, group: str, topic: str, offset: int) -> int:
    response = wire.call(P.AlterShareGroupOffsetsRequest(group_id=group, topics=(
        P.ShareOffsetTopic(name=topic, partitions=(P.ShareOffset(partition=0,
                                                                  start_offset=offset),)),)))
    return response.results[0].partitions[0].error_code


def delete(wire, group: str, topic: str) -> int:
    response = wire.call(P.DeleteShareGroupOffsetsRequest(group_id=group, topics=(
        P.GroupTopicPartitions(topic=topic, partitions=(0,)),)))
    return response.results[0].partitions[0].error_code


def test_reset_and_delete_share_offsets(wire, q):
    wire.produce(q, 0, values_batch([b"a", b"b", b"c"]))
    assert [o for o, _, _ in acquired(share_fetch(wire, "g", "a", q))] == [0, 1, 2]
    # a member holds records: refused, nothing changes
    assert alter(wire, "g", q, -2) == E.NON_EMPTY_GROUP
    assert delete(wire, "g", q) == E.NON_EMPTY_GROUP
    assert share_ack(wire, "g", "a", q, [ack(0, 2, ACCEPT)]) == E.NONE
    assert describe(wire, "g", q).start_offset == 3
    # back to the earliest offset: everything is offered again, as new
    assert alter(wire, "g", q, -2) == E.NONE
    assert acquired(share_fetch(wire, "g", "b", q)) == [
        (0, b"a", 1), (1, b"b", 1), (2, b"c", 1)]
    assert share_ack(wire, "g", "b", q, [ack(0, 2, ACCEPT)]) == E.NONE
    assert alter(wire, "g", q, 1) == E.NONE  # a given offset
    assert describe(wire, "g", q).start_offset == 1
    assert delete(wire, "g", q) == E.NONE
    d = describe(wire, "g", q)
    assert (d.start_offset, d.high_watermark) == (-1, 3)
    assert alter(wire, "g", q, -3) == E.INVALID_REQUEST


def test_the_groups_own_configs_apply_on_the_leader(wire, q):
    group_configs(wire, "g2", errors_deadletterqueue_topic_name="custom-dead",
                  share_delivery_count_limit="2", share_auto_offset_reset="earliest")
    wire.produce(q, 0, values_batch([b"m"]))  # before g2's first fetch: "earliest" finds it
    assert acquired(share_fetch(wire, "g2", "a", q)) == [(0, b"m", 1)]
    assert share_ack(wire, "g2", "a", q, [ack(0, 0, RELEASE, delay_ms=0)]) == E.NONE
    assert acquired(share_fetch(wire, "g2", "a", q)) == [(0, b"m", 2)]
    assert share_ack(wire, "g2", "a", q, [ack(0, 0, RELEASE, delay_ms=0)]) == E.NONE
    dead = wait_until(lambda: dlq_records(wire, "custom-dead"), 10, "the dead letter")
    assert dict(dead[0].headers)["rillet.dlq.reason"] == b"delivery count limit reached"
    assert dict(dead[0].headers)["rillet.dlq.group"] == b"g2"
    # a change applies to the share-partition already loaded, not only to the next one: at
    # the new limit of 3 a record released twice comes a third time (at 2 it was archived)
    group_configs(wire, "g2", share_delivery_count_limit="3")
    wire.produce(q, 0, values_batch([b"n"]))
    for count in (1, 2):
        got = wait_until(lambda: acquired(share_fetch(wire, "g2", "a", q)), 10, "record n")
        assert got == [(1, b"n", count)]
        assert share_ack(wire, "g2", "a", q, [ack(1, 1, RELEASE, delay_ms=0)]) == E.NONE
    got = wait_until(lambda: acquired(share_fetch(wire, "g2", "a", q, max_wait_ms=200)), 10,
                     "record n a third time")
    assert got == [(1, b"n", 3)]
