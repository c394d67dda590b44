"""Share groups (KIP-932) on real brokers over the raw wire: membership through the group
coordinator (ShareGroupHeartbeat, ShareGroupDescribe, ListGroups, DeleteGroups), the one-type
rule for group ids, and the GROUP config resource (AlterConfigs / DescribeConfigs), which
survives a controller failover. docs/queues.md, "Share groups: membership and configs".
"""

from __future__ import annotations

import time

import pytest
from rillet.transport import protocol as P

from rillet.admin import Admin
from rillet.errors import InvalidConfigError
from rillet.records import NewTopic
from tests.integration.cluster_helpers import call, wait_until
from tests.support import FAST_CLUSTER_CONFIGS

E = P.ErrorCode
SMALL = {"offsets.topic.num.partitions": "3"}
_RETRY = (E.COORDINATOR_NOT_AVAILABLE, E.COORDINATOR_LOAD_IN_PROGRESS, E.NOT_COORDINATOR)


def coordinator_call(cluster, group: str, request, timeout_s: float = 20.0):
    """``request`` answered by ``group``'s coordinator, retried while it moves or loads."""
    def attempt():
        for b in cluster.broker_ids:
            if cluster.pid(b) is None:
                continue
            found = call(cluster, b, P.FindCoordinatorRequest(key=group))
            if found is None or found.error_code:
                continue
            r = call(cluster, found.node_id, request)
            if r is None:
                return None
            errors = [g.error_code for g in getattr(r, "groups", ())] + [
                getattr(r, "error_code", 0)]
            if any(e in _RETRY for e in errors):
                return None
            return r
        return None

    return wait_until(attempt, timeout_s, f"{request.API} answered by the coordinator")


class Member:
    """One share-group member speaking the raw wire (the share consumer's heartbeat loop)."""

    def __init__(self, cluster, group: str, member_id: str, topics=("t",)) -> None:
        self.cluster, self.group, self.member_id, self.topics = cluster, group, member_id, topics
        self.epoch, self.assignment, self.interval_ms = 0, None, 0
        self.last_beat = 0.0

    def heartbeat(self, epoch: int | None = None) -> P.ShareGroupHeartbeatResponse:
        epoch = self.epoch if epoch is None else epoch
        r = coordinator_call(self.cluster, self.group, P.ShareGroupHeartbeatRequest(
            group_id=self.group, member_id=self.member_id, member_epoch=epoch,
            subscribed_topic_names=self.topics if epoch == 0 else None))
        self.last_beat = time.monotonic()
        if r.error_code == 0:
            self.epoch, self.interval_ms = r.member_epoch, r.heartbeat_interval_ms
            if r.assignment is not None:
                self.assignment = {(t.topic, p) for t in r.assignment for p in t.partitions}
        return r


def describe(cluster, group: str) -> P.DescribedGroup:
    return coordinator_call(cluster, group, P.ShareGroupDescribeRequest(group_ids=(group,))
                            ).groups[0]


def listed(cluster) -> set[tuple[str, str, str]]:
    out = set()
    for b in cluster.broker_ids:
        r = call(cluster, b, P.ListGroupsRequest())
        out |= {(g.group_id, g.group_state, g.protocol_type) for g in r.groups}
    return out


def settle(members, partitions: int) -> None:
    """Heartbeat until every member holds the group's latest epoch and the assignments cover
    every partition."""
    def settled():
        for m in members:
            assert m.heartbeat().error_code == 0
        epochs = {m.epoch for m in members}
        covered = set().union(*(m.assignment or set() for m in members))
        return len(epochs) == 1 and covered == {("t", p) for p in range(partitions)}

    wait_until(settled, 20, "the members to settle on one epoch", interval_s=0.05)


@pytest.mark.timeout(90)
def test_membership_fencing_describe_list_delete_and_one_type_per_group_id(cluster_factory):
    cluster = cluster_factory(configs=SMALL)
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        admin.create_topics([NewTopic("t", 2)])
        # the group's own session and heartbeat configs govern its members
        admin.alter_group_configs("g", set={"share.session.timeout.ms": 1500,
                                            "share.heartbeat.interval.ms": 200})
    a, b, c = (Member(cluster, "g", m) for m in ("member-a", "member-b", "member-c"))
    for m in (a, b, c):
        r = m.heartbeat(0)
        assert r.error_code == 0 and r.member_epoch >= 1, r
    assert a.interval_ms == 200
    settle([a, b, c], 2)
    # three members on two partitions: one each, one partition shared, both covered
    assert all(len(m.assignment) == 1 for m in (a, b, c))
    d = describe(cluster, "g")
    assert (d.error_code, d.group_state, d.group_epoch) == (0, "Stable", a.epoch)
    assert sorted(m.member_id for m in d.members) == ["member-a", "member-b", "member-c"]
    assert {x.member_id: {(t.topic, p) for t in x.assignment for p in t.partitions}
            for x in d.members} == {m.member_id: m.assignment for m in (a, b, c)}
    assert ("g", "Stable", "share") in listed(cluster)

    # c goes silent: fenced after share.session.timeout.ms, a and b take both partitions
    silent_since, epoch_before = c.last_beat, a.epoch

    def fenced():
        for m in (a, b):
            assert m.heartbeat().error_code == 0
        return a.epoch > epoch_before and b.epoch == a.epoch
    wait_until(fenced, 15, "c to be fenced", interval_s=0.1)
    assert time.monotonic() - silent_since >= 1.4  # not before its session ran out
    assert a.assignment | b.assignment == {("t", 0), ("t", 1)}
    assert a.assignment.isdisjoint(b.assignment)
    assert [m.member_id for m in describe(cluster, "g").members] == ["member-a", "member-b"]
    r = c.heartbeat()
    assert r.error_code == E.UNKNOWN_MEMBER_ID  # it must rejoin with epoch 0
    assert c.heartbeat(0).error_code == 0 and c.epoch > a.epoch  # and it may

    # a group id is one type: consumer requests for a share group's id and the reverse
    r = coordinator_call(cluster, "g", P.ConsumerGroupHeartbeatRequest(
        group_id="g", member_id="x", member_epoch=0, rebalance_timeout_ms=1000,
        subscribed_topic_names=("t",)))
    assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    r = coordinator_call(cluster, "cg", P.ConsumerGroupHeartbeatRequest(
        group_id="cg", member_id="y", member_epoch=0, rebalance_timeout_ms=1000,
        subscribed_topic_names=("t",)))
    assert r.error_code == 0
    r = coordinator_call(cluster, "cg", P.ShareGroupHeartbeatRequest(
        group_id="cg", member_id="z", member_epoch=0, subscribed_topic_names=("t",)))
    assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert describe(cluster, "cg").error_code == E.INCONSISTENT_GROUP_PROTOCOL
    r = coordinator_call(cluster, "g", P.ConsumerGroupDescribeRequest(group_ids=("g",)))
    assert r.groups[0].error_code == E.INCONSISTENT_GROUP_PROTOCOL
    r = coordinator_call(cluster, "g", P.OffsetCommitRequest(
        group_id="g", member_id="", member_epoch=-1, topics=(P.OffsetCommitTopic(
            name="t", partitions=(P.OffsetCommitPartition(partition=0, committed_offset=1),)),)))
    assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL  # no consumer offsets in its name
    assert {("cg", "Stable", "consumer"), ("g", "Stable", "share")} <= listed(cluster)
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        assert [x.group_id for x in admin.list_groups()] == ["cg"]  # consumer groups only

    # delete: refused while members remain, then the group is gone
    delete = P.DeleteGroupsRequest(groups_names=("g",))
    assert coordinator_call(cluster, "g", delete).results[0].error_code == E.NON_EMPTY_GROUP
    for m in (a, b, c):
        assert m.heartbeat(-1).error_code == 0
    assert ("g", "Empty", "share") in listed(cluster)
    assert coordinator_call(cluster, "g", delete).results[0].error_code == 0
    d = describe(cluster, "g")
    assert (d.error_code, d.group_state) == (E.GROUP_ID_NOT_FOUND, "Dead")
    assert not any(g[0] == "g" for g in listed(cluster))


def _group_value(admin: Admin, group: str, key: str):
    entry = admin.describe_group_configs(group)[key]
    return entry.value, entry.is_default


@pytest.mark.timeout(60)
def test_group_configs_set_described_and_refused(cluster_factory):
    cluster = cluster_factory(configs={"group.share.delivery.count.limit": "7"})
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        # a group need not exist; unset keys show the broker's default, then Kafka's
        configs = admin.describe_group_configs("orders-workers")
        assert configs["share.delivery.count.limit"].value == "7"
        assert configs["share.record.lock.duration.ms"].value == "30000"
        assert all(e.is_default for e in configs.values())
        assert set(configs) == {
            "errors.deadletterqueue.topic.name", "retry.backoff.max.ms", "retry.backoff.ms",
            "retry.backoff.multiplier", "share.auto.offset.reset",
            "share.delivery.count.limit", "share.heartbeat.interval.ms",
            "share.record.lock.duration.ms", "share.session.timeout.ms"}

        admin.alter_group_configs("orders-workers", set={
            "share.delivery.count.limit": 3, "errors.deadletterqueue.topic.name": "orders.dead"})
        wait_until(lambda: _group_value(admin, "orders-workers",
                                        "share.delivery.count.limit") == ("3", False))
        assert _group_value(admin, "orders-workers", "errors.deadletterqueue.topic.name") == (
            "orders.dead", False)

        with pytest.raises(InvalidConfigError, match="did you mean 'share.delivery.count.limit'"):
            admin.alter_group_configs("orders-workers", set={"share.delivery.count.limt": 4})
        with pytest.raises(InvalidConfigError, match="between"):
            admin.alter_group_configs("orders-workers", set={"share.delivery.count.limit": 0})
        with pytest.raises(InvalidConfigError, match="not an integer"):
            admin.alter_group_configs("orders-workers", set={"retry.backoff.ms": "soon"})
        with pytest.raises(InvalidConfigError, match="smaller than share.session.timeout.ms"):
            admin.alter_group_configs("orders-workers",
                                      set={"share.heartbeat.interval.ms": 60000})
        # all or nothing: a good key next to a bad one is not applied either
        with pytest.raises(InvalidConfigError):
            admin.alter_group_configs("orders-workers", set={"retry.backoff.ms": 5,
                                                             "share.auto.offset.reset": "x"})
        assert _group_value(admin, "orders-workers", "retry.backoff.ms") == ("1000", True)
        assert _group_value(admin, "orders-workers", "share.delivery.count.limit") == (
            "3", False)

        admin.alter_group_configs("orders-workers", delete=["share.delivery.count.limit"])
        wait_until(lambda: _group_value(admin, "orders-workers",
                                        "share.delivery.count.limit") == ("7", True))
    # a malformed resource on the wire: an error answer, the broker carries on
    r = call(cluster, 1, P.DescribeConfigsRequest(resources=(P.ConfigResource(
        resource_type=99, resource_name="x"),)))
    assert r.results[0].error_code == E.INVALID_REQUEST
    r = call(cluster, 1, P.AlterConfigsRequest(resources=(P.AlterConfigsResource(
        resource_type=P.ConfigResourceType.GROUP, resource_name="",
        configs=(P.AlterableConfig(name="retry.backoff.ms", value="5"),)),)))
    assert r.results[0].error_code != 0


@pytest.mark.timeout(120)
def test_group_configs_survive_a_controller_failover(cluster_factory):
    cluster = cluster_factory(brokers=3, configs={
        **FAST_CLUSTER_CONFIGS, "metadata.snapshot.threshold.entries": "10"})
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        admin.alter_group_configs("g", set={"retry.backoff.ms": 250,
                                            "retry.backoff.multiplier": 1.5})
    for b in cluster.broker_ids:
        with Admin({"bootstrap.servers": cluster.address(b)}) as admin:
            wait_until(lambda admin=admin: _group_value(admin, "g", "retry.backoff.ms") == (
                "250", False), 10, f"broker {b} to see the group config")
    old = cluster.controller_id()
    assert old > 0
    cluster.kill(old)
    others = [b for b in cluster.broker_ids if b != old]
    wait_until(lambda: cluster.controller_id() not in (-1, old), 20, "a new controller")
    with Admin({"bootstrap.servers": cluster.address(others[0])}) as admin:
        admin.alter_group_configs("g", set={"share.auto.offset.reset": "earliest"})
    cluster.start()  # the killed broker comes back and replays the metadata log
    with Admin({"bootstrap.servers": cluster.address(old)}) as admin:
        wait_until(lambda: _group_value(admin, "g", "share.auto.offset.reset") == (
            "earliest", False), 20, "the restarted broker to see the new config")
        assert _group_value(admin, "g", "retry.backoff.multiplier") == ("1.5", False)
    for b in others:  # the new controller kept the first change beside the second
        with Admin({"bootstrap.servers": cluster.address(b)}) as admin:
            wait_until(lambda admin=admin: _group_value(admin, "g", "share.auto.offset.reset")
                       == ("earliest", False), 10, f"broker {b} to see the second change")
            assert _group_value(admin, "g", "retry.backoff.ms") == ("250", False)


@pytest.mark.timeout(120)
def test_share_group_carries_on_after_its_coordinators_broker_is_killed(cluster_factory):
    from tests.support import FAST_REPLICATION_CONFIGS

    cluster = cluster_factory(brokers=3, configs={
        **FAST_REPLICATION_CONFIGS, "offsets.topic.num.partitions": "1"})
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        admin.create_topics([NewTopic("t", 2, 3)])
        admin.alter_group_configs("g", set={"share.session.timeout.ms": 6000,
                                            "share.heartbeat.interval.ms": 200})
    a, b = Member(cluster, "g", "member-a"), Member(cluster, "g", "member-b")
    for m in (a, b):
        assert m.heartbeat(0).error_code == 0
    settle([a, b], 2)
    epoch, assignments = a.epoch, (a.assignment, b.assignment)
    coordinator = coordinator_call(cluster, "g", P.FindCoordinatorRequest(key="g")).node_id
    # the members' records are replicated (acks=all) before their answers: kill -9 now
    cluster.kill(coordinator)
    # the new coordinator replays them: the same members carry on at the same epoch
    for m in (a, b):
        r = m.heartbeat()
        assert (r.error_code, r.member_epoch) == (0, epoch), r
    assert (a.assignment, b.assignment) == assignments
    d = describe(cluster, "g")
    assert (d.group_state, d.group_epoch) == ("Stable", epoch)
    assert {m.member_id: m.member_epoch for m in d.members} == {"member-a": epoch,
                                                                "member-b": epoch}
    assert coordinator_call(cluster, "g", P.FindCoordinatorRequest(key="g")).node_id != (
        coordinator)
