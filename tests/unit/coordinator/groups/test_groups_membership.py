"""The heartbeat state machine: joins, revoke-before-assign, leaves, timeouts, static members."""

from __future__ import annotations

import pytest
from rillet.coordinator.groups import GroupConfig, GroupCoordinator, GroupState, MemberState
from rillet.coordinator.groups.errors import (
    FencedInstanceIdError,
    FencedMemberEpochError,
    GroupMaxSizeReachedError,
    IllegalTransition,
    InvalidRegularExpressionError,
    InvalidRequestError,
    UnknownMemberIdError,
    UnreleasedInstanceIdError,
    UnsupportedAssignorError,
)
from rillet.coordinator.groups.model import ConsumerGroupMember
from rillet.coordinator.groups.reconciliation import check_transition

from .harness import TP, Harness, tps

pytestmark = pytest.mark.timeout(30)


def two_members(h: Harness):
    a = h.join("a")
    assert a.member_epoch == 1 and a.assignment == tps("t:0,1,2,3")
    a = h.ack(a)
    b = h.join("b")
    return a, b


def test_first_member_gets_everything_and_group_is_stable() -> None:
    h = Harness()
    a = h.join("a", client_id="c1", client_host="/10.0.0.1")
    assert a.heartbeat_interval_ms == 5000
    h.ack(a)
    g = h.group()
    assert g.state is GroupState.STABLE and g.group_epoch == 1 and g.assignment_epoch == 1
    d = h.gc.describe_group(h.state, "g")
    assert d.members[0].client_id == "c1" and d.members[0].client_host == "/10.0.0.1"
    assert d.members[0].assignment == tuple(sorted(tps("t:0,1,2,3")))


def test_revoke_before_assign() -> None:
    h = Harness()
    a, b = two_members(h)
    # b joins at group epoch 2 but a still owns everything: b gets nothing yet.
    assert b.member_epoch == 2 and b.assignment == frozenset()
    assert h.member("b").state is MemberState.UNRELEASED_PARTITIONS
    assert h.group().state is GroupState.RECONCILING
    # a is told to give up two partitions, keeping its epoch until it acknowledges.
    a2 = h.hb("a", a.member_epoch, owned=a.assignment)
    assert a2.member_epoch == 1 and len(a2.assignment) == 2
    revoked = a.assignment - a2.assignment
    assert h.member("a").pending_revocation == revoked
    # b asks again: the revoked partitions are still a's, nothing for b.
    b = h.ack(b)
    assert b.assignment == frozenset()
    h.assert_no_double_ownership()
    # a acknowledges (no longer owns them) and moves to epoch 2; then b gets them.
    a3 = h.ack(a2)
    assert a3.member_epoch == 2 and h.member("a").state is MemberState.STABLE
    b = h.ack(b)
    assert b.assignment == revoked and h.member("b").state is MemberState.STABLE
    assert h.group().state is GroupState.STABLE
    h.assert_no_double_ownership()
    assert h.replayed() == h.state


def test_member_still_owning_revoked_partitions_stays_at_its_epoch() -> None:
    h = Harness()
    a, b = two_members(h)
    a2 = h.hb("a", 1, owned=a.assignment)
    for _ in range(3):
        again = h.hb("a", 1, owned=a.assignment)  # keeps reporting the revoked ones
        assert again.member_epoch == 1 and again.assignment == a2.assignment
    assert h.member("a").state is MemberState.UNREVOKED_PARTITIONS
    # owned=None means "unchanged": still owning
    assert h.hb("a", 1, owned=None).member_epoch == 1


def test_leave_frees_partitions_at_once() -> None:
    h = Harness()
    a, b = two_members(h)
    a2 = h.ack(h.hb("a", 1, owned=a.assignment))
    b = h.ack(b)
    assert h.group().state is GroupState.STABLE
    resp = h.hb("a", a2.member_epoch, owned=frozenset())
    resp = h.hb("a", -1)
    assert resp.member_epoch == -1 and resp.assignment is None
    assert "a" not in h.group().members and h.group().group_epoch == 3
    b = h.ack(b)
    assert b.member_epoch == 3 and b.assignment == tps("t:0,1,2,3")
    assert h.replayed() == h.state


def test_session_timeout_evicts_a_silent_member() -> None:
    h = Harness(session_timeout_ms=1000)
    a, b = two_members(h)
    h.now = 500
    b = h.ack(b)
    assert h.tick(999) == ()
    expired = h.tick(1000)
    assert [(e.member_id, e.reason) for e in expired] == [("a", "session_timeout")]
    assert set(h.group().members) == {"b"}
    b = h.ack(b)
    assert b.assignment == tps("t:0,1,2,3")
    with pytest.raises(UnknownMemberIdError):
        h.ack(a)
    assert h.state.next_deadline_ms() == 1000 + 1000  # b's session, renewed at t=1000
    assert h.replayed() == h.state


def test_rebalance_timeout_fences_a_member_that_does_not_revoke() -> None:
    h = Harness(session_timeout_ms=60_000)
    a = h.ack(h.join("a", rebalance_timeout_ms=2000))
    b = h.join("b")
    h.hb("a", 1, owned=a.assignment)  # now asked to revoke
    assert h.state.rebalance_deadlines["g"]["a"] == 2000
    h.now = 1500
    h.hb("a", 1, owned=a.assignment)  # heartbeats but never revokes
    b = h.ack(b)
    assert h.tick(1999) == ()
    expired = h.tick(2000)
    assert [(e.member_id, e.reason) for e in expired] == [("a", "rebalance_timeout")]
    b = h.ack(b)
    assert b.assignment == tps("t:0,1,2,3")


def test_static_member_keeps_its_assignment_across_a_quick_restart() -> None:
    h = Harness(session_timeout_ms=5000)
    a = h.ack(h.join("a1", instance_id="inst-a"), instance_id="inst-a")
    b = h.join("b")
    a = h.ack(h.hb("a1", a.member_epoch, owned=a.assignment, instance_id="inst-a"),
              instance_id="inst-a")
    b = h.ack(b)
    assert h.group().state is GroupState.STABLE
    epoch = h.group().group_epoch
    a_parts = a.assignment
    # temporary leave: nothing moves, b does not get a's partitions
    resp = h.hb("a1", -2, instance_id="inst-a")
    assert resp.member_epoch == -2
    assert h.member("a1").member_epoch == -2 and h.member("a1").assigned == a_parts
    assert h.ack(b).assignment == b.assignment
    # restart with a new member id: same partitions, no group epoch bump
    a2 = h.join("a2", instance_id="inst-a")
    assert a2.assignment == a_parts and h.group().group_epoch == epoch
    assert "a1" not in h.group().members
    with pytest.raises(FencedInstanceIdError):
        h.hb("a1", a.member_epoch, owned=a_parts, instance_id="inst-a")
    # an active instance id cannot be taken over
    with pytest.raises(UnreleasedInstanceIdError):
        h.join("a3", instance_id="inst-a")
    assert h.replayed() == h.state


def test_static_member_that_does_not_return_is_evicted_after_the_session_timeout() -> None:
    h = Harness(session_timeout_ms=5000)
    a = h.ack(h.join("a1", instance_id="inst-a"), instance_id="inst-a")
    b = h.join("b")
    h.hb("a1", -2, instance_id="inst-a")
    h.now = 1000
    b = h.ack(b)
    expired = h.tick(5000)
    assert [e.member_id for e in expired] == ["a1"]
    assert h.ack(h.ack(b)).assignment == a.assignment | b.assignment == tps("t:0,1,2,3")


def test_lost_response_previous_epoch_is_accepted_once() -> None:
    h = Harness()
    a, b = two_members(h)
    a2 = h.hb("a", 1, owned=a.assignment)
    a3 = h.ack(a2)  # epoch 2 now; suppose this response was lost
    assert a3.member_epoch == 2
    again = h.hb("a", 1, owned=a2.assignment)  # client retries with epoch 1
    assert again.member_epoch == 2 and again.assignment == a3.assignment
    with pytest.raises(FencedMemberEpochError):
        h.hb("a", 1, owned=tps("t:0,1,2,3"))  # owns more than its assignment: fenced
    with pytest.raises(FencedMemberEpochError):
        h.hb("a", 7, owned=a3.assignment)


def test_unknown_member_and_group() -> None:
    h = Harness()
    with pytest.raises(UnknownMemberIdError):
        h.hb("x", 3, owned=frozenset())
    h.join("a")
    with pytest.raises(UnknownMemberIdError):
        h.hb("x", 1, owned=frozenset())
    with pytest.raises(UnknownMemberIdError):
        h.hb("x", -1)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"member_id": "", "epoch": 0}, InvalidRequestError),
        ({"member_id": "a", "epoch": 0, "rebalance_timeout_ms": -1}, InvalidRequestError),
        ({"member_id": "a", "epoch": 0, "owned": tps("t:0")}, InvalidRequestError),
        ({"member_id": "a", "epoch": -2}, InvalidRequestError),
        ({"member_id": "a", "epoch": -3}, InvalidRequestError),
        ({"member_id": "a", "epoch": 0, "server_assignor": "sticky"}, UnsupportedAssignorError),
        ({"member_id": "a", "epoch": 0, "subscribed_topic_regex": "t("},
         InvalidRegularExpressionError),
    ],
)
def test_bad_heartbeats_are_rejected_and_change_nothing(kwargs, error) -> None:
    h = Harness()
    before = h.state
    with pytest.raises(error) as info:
        h.hb(kwargs.pop("member_id"), kwargs.pop("epoch"), **kwargs)
    assert h.state is before and h.log == []
    assert info.value.code > 0


def test_join_without_subscription_is_invalid() -> None:
    h = Harness()
    with pytest.raises(InvalidRequestError):
        h.hb("a", 0, rebalance_timeout_ms=1000, subscribed_topic_names=None)


def test_new_partitions_and_regex_topics_are_picked_up() -> None:
    h = Harness(topics={"orders-eu": 2, "payments": 2, "__consumer_offsets": 50})
    a = h.ack(h.join("a", subscribed_topic_regex=r"orders-.*|__.*"))
    assert a.assignment == tps("orders-eu:0,1")  # internal topics never match a regex
    epoch = h.group().group_epoch
    h.topics["orders-us"] = 1
    h.topics["orders-eu"] = 3
    a = h.ack(a)
    assert h.group().group_epoch == epoch + 1
    assert h.ack(a).assignment == tps("orders-eu:0,1,2 orders-us:0")


def test_on_metadata_bumps_only_groups_whose_topics_changed() -> None:
    h = Harness(topics={"t": 2, "u": 2})
    h.ack(h.join("a", group_id="g1"), group_id="g1")
    h.ack(h.join("b", group_id="g2", subscribed_topic_names=("u",)), group_id="g2")
    result = h.gc.on_metadata(h.state, {"t": 4, "u": 2}, 0)
    assert {r.group_id for r in result.records} == {"g1"}
    h.run(result)
    assert h.group("g1").assignment_epoch == 2 and h.group("g2").group_epoch == 1
    assert h.group("g1").target["a"] == tps("t:0,1,2,3")


def test_subscription_change_bumps_the_epoch_and_revokes() -> None:
    h = Harness(topics={"t": 2, "u": 2})
    a = h.ack(h.join("a", subscribed_topic_names=("t", "u")))
    assert a.assignment == tps("t:0,1 u:0,1")
    a2 = h.hb("a", a.member_epoch, owned=a.assignment, subscribed_topic_names=("u",))
    assert a2.assignment == tps("u:0,1") and h.member("a").pending_revocation == tps("t:0,1")
    assert h.ack(a2).member_epoch == 2


def test_range_assignor_by_config_and_by_member_choice() -> None:
    h = Harness(topics={"t": 3}, remote_assignor="range")
    a = h.ack(h.join("a"))
    b = h.join("b")
    h.ack(h.hb("a", a.member_epoch, owned=a.assignment))
    assert h.group().target == {"a": tps("t:0,1"), "b": tps("t:2")}
    assert h.gc.describe_group(h.state, "g").assignor == "range"
    h2 = Harness(topics={"t": 3})
    h2.join("a", server_assignor="range")
    assert h2.gc.describe_group(h2.state, "g").assignor == "range"
    del b


def test_unknown_configured_assignor_is_refused() -> None:
    with pytest.raises(ValueError, match="uniform"):
        GroupCoordinator(GroupConfig(remote_assignor="sticky"))


def test_group_max_size() -> None:
    h = Harness(max_size=1)
    h.join("a")
    with pytest.raises(GroupMaxSizeReachedError):
        h.join("b")


def test_failover_replay_then_on_loaded_restores_timers() -> None:
    h = Harness(session_timeout_ms=1000)
    a, b = two_members(h)
    h.hb("a", 1, owned=a.assignment)
    restored = h.gc.on_loaded(h.replayed(), now_ms=50_000)
    assert restored == h.state
    assert restored.session_deadlines["g"] == {"a": 51_000, "b": 51_000}
    assert restored.rebalance_deadlines["g"] == {"a": 60_000}


def test_check_transition_rejects_assigning_a_partition_owned_elsewhere() -> None:
    old = ConsumerGroupMember(member_id="b", member_epoch=1)
    new = ConsumerGroupMember(member_id="b", member_epoch=2, assigned=frozenset({TP("t", 0)}))
    check_transition(old, new, target_epoch=2, owners={})
    with pytest.raises(IllegalTransition):
        check_transition(old, new, target_epoch=2, owners={TP("t", 0): "a"})
    revoking = ConsumerGroupMember(
        member_id="b", member_epoch=1, state=MemberState.UNREVOKED_PARTITIONS,
        assigned=frozenset({TP("t", 0)}),
    )
    with pytest.raises(IllegalTransition):  # no new partitions while revoking
        check_transition(old, revoking, target_epoch=2, owners={})
    with pytest.raises(IllegalTransition):  # epochs never go down
        check_transition(new, old, target_epoch=2, owners={})


def test_a_group_with_members_never_dies() -> None:
    from rillet.coordinator.groups.coordinator import MAY_DIE
    from rillet.coordinator.groups.records import GroupBuilder, Tombstone

    assert MAY_DIE == {GroupState.EMPTY, GroupState.DEAD}
    h = Harness()
    h.ack(h.join("a"))
    before = h.state
    # Wiping a live group behind the handlers' back would be Stable -> Dead: refused.
    b = GroupBuilder(h.group())
    for kind in ("current_member", "target_member", "member_metadata"):
        b.emit(Tombstone(type=kind, group_id="g", member_id="a"))
    for kind in ("target_metadata", "partition_metadata", "group_metadata"):
        b.emit(Tombstone(type=kind, group_id="g"))
    with pytest.raises(IllegalTransition):
        h.gc._commit(before, [b], {}, {})
    assert h.state is before and h.group().state is GroupState.STABLE


def test_a_new_revocation_in_the_acknowledging_heartbeat_restarts_the_rebalance_timer() -> None:
    h = Harness(topics={"t": 6}, session_timeout_ms=60_000)
    a = h.ack(h.join("a", rebalance_timeout_ms=1000))
    b = h.join("b")
    a1 = h.hb("a", a.member_epoch, owned=a.assignment)  # must revoke 3
    assert h.state.rebalance_deadlines["g"]["a"] == 1000
    h.now = 500
    h.join("c")  # the target changes again while a is revoking
    h.now = 900
    a2 = h.ack(a1)  # acknowledges the first revocation, is asked for another at once
    assert h.member("a").state is MemberState.UNREVOKED_PARTITIONS
    assert len(a2.assignment) == 2
    assert h.state.rebalance_deadlines["g"]["a"] == 1900
    h.now = 1200
    h.hb("a", a2.member_epoch, owned=a1.assignment)  # still revoking: the timer keeps running
    assert h.state.rebalance_deadlines["g"]["a"] == 1900
    assert h.tick(1899) == ()
    del b
