"""Controller decisions: leader election, fencing, AlterPartition, preferred leader, reassignment."""

from __future__ import annotations

import json

from rillet.coordinator import election as E
from rillet.coordinator import metadata as M

T, P = "t", 0
S = E.PartitionState((1, 2, 3), (1, 2, 3), 1, 4, 10)


def rec(d: E.Decision) -> E.PartitionChangeRecord:
    assert d.record is not None, d
    return d.record


def test_fencing_the_leader_elects_the_first_live_isr_replica_and_bumps_epochs():
    r = rec(E.on_broker_fenced(T, P, S, 1, live={2, 3}))
    assert (r.leader, r.isr, r.leader_epoch, r.partition_epoch) == (2, (2, 3), 5, 11)
    assert not E.on_broker_fenced(T, P, S, 1, live={2, 3}).unclean
    # replica order, not ISR order, decides; fenced ISR members are skipped
    s = E.PartitionState((3, 1, 2), (1, 2, 3), 1, 4, 10)
    assert rec(E.on_broker_fenced(T, P, s, 1, live={2})).leader == 2


def test_fencing_a_follower_shrinks_the_isr_without_a_leader_change():
    r = rec(E.on_broker_fenced(T, P, S, 3, live={1, 2}))
    assert (r.leader, r.isr, r.leader_epoch, r.partition_epoch) == (1, (1, 2), 4, 11)
    assert E.on_broker_fenced(T, P, S, 9, live={1, 2, 3}).record is None


def test_the_last_isr_member_stays_and_the_partition_goes_offline():
    s = E.PartitionState((1, 2, 3), (1,), 1, 4, 10)
    r = rec(E.on_broker_fenced(T, P, s, 1, live={2, 3}))
    assert (r.leader, r.isr, r.leader_epoch) == (E.NO_LEADER, (1,), 5)
    offline = r.state
    # an out-of-sync replica coming back does not lead; the last ISR member does
    assert E.on_broker_unfenced(T, P, offline, 2, live={2, 3}).record is None
    back = rec(E.on_broker_unfenced(T, P, offline, 1, live={1, 2, 3}))
    assert (back.leader, back.isr, back.leader_epoch) == (1, (1,), 6)


def test_unclean_election_is_explicit():
    s = E.PartitionState((1, 2, 3), (1,), 1, 4, 10)
    d = E.on_broker_fenced(T, P, s, 1, live={2, 3}, unclean=True)
    assert d.unclean and (rec(d).leader, rec(d).isr, rec(d).leader_epoch) == (2, (2,), 5)
    offline = E.PartitionState((1, 2, 3), (1,), E.NO_LEADER, 5, 11)
    d = E.on_broker_unfenced(T, P, offline, 3, live={3}, unclean=True)
    assert d.unclean and rec(d).leader == 3


def test_alter_partition_validation():
    live = {1, 2, 3}

    def alter(**kw):
        args = {
            "broker_id": 1,
            "leader_epoch": 4,
            "partition_epoch": 10,
            "new_isr": (1, 2),
            "live": live,
        }
        args.update(kw)
        return E.alter_partition(T, P, S, **args)

    ok = alter()
    assert ok.error == E.NONE and (rec(ok).isr, rec(ok).leader_epoch, rec(ok).partition_epoch) == (
        (1, 2),
        4,
        11,
    )
    assert alter(leader_epoch=3).error == E.FENCED_LEADER_EPOCH
    assert alter(leader_epoch=5).error == E.FENCED_LEADER_EPOCH
    assert alter(partition_epoch=9).error == E.INVALID_UPDATE_VERSION  # a stale duplicate
    assert alter(broker_id=2).error == E.NOT_LEADER_OR_FOLLOWER
    assert alter(new_isr=(2, 3)).error == E.INVALID_REQUEST  # without the leader
    assert alter(new_isr=(1, 4)).error == E.INVALID_REQUEST  # not a replica
    assert alter(new_isr=()).error == E.INVALID_REQUEST
    s = E.PartitionState((1, 2, 3), (1, 2), 1, 4, 10)
    assert (
        E.alter_partition(
            T, P, s, broker_id=1, leader_epoch=4, partition_epoch=10, new_isr=(1, 2, 3), live={1, 2}
        ).error
        == E.INELIGIBLE_REPLICA
    )
    assert E.alter_partition(
        T, P, None, broker_id=1, leader_epoch=4, partition_epoch=10, new_isr=(1,), live=live
    ).error == (E.UNKNOWN_TOPIC_OR_PARTITION)
    # the ISR is kept in replica order; an unchanged ISR appends nothing
    assert rec(alter(new_isr=(3, 1))).isr == (1, 3)
    assert alter(new_isr=(3, 2, 1)).record is None


def test_alter_partition_refuses_a_restarted_replica_or_a_dead_leaders_request():
    """KIP-903: an ISR addition computed from a follower's previous process, or any change
    sent by a leader process that has died since, never applies."""
    narrow = E.PartitionState((1, 2, 3), (1, 2), 1, 4, 10)
    registered = {1: "l-1", 2: "f-2", 3: "f-3-new"}

    def alter(**kw):
        args = {
            "broker_id": 1,
            "leader_epoch": 4,
            "partition_epoch": 10,
            "new_isr": (1, 2, 3),
            "live": {1, 2, 3},
            "registered": registered,
            "leader_incarnation": "l-1",
        }
        args.update(kw)
        return E.alter_partition(T, P, narrow, **args)

    stale = alter(new_isr_incarnations=("l-1", "f-2", "f-3-old"))
    assert stale.error == E.INELIGIBLE_REPLICA and stale.record is None
    ok = alter(new_isr_incarnations=("l-1", "f-2", "f-3-new"))
    assert ok.error == E.NONE and rec(ok).isr == (1, 2, 3)
    dead = alter(new_isr=(1, 2), leader_incarnation="l-0")
    assert dead.error == E.STALE_BROKER_EPOCH and dead.record is None
    # no incarnations given (an older broker): the rules as before
    assert alter(registered=None, leader_incarnation=None).error == E.NONE


def test_preferred_leader_election():
    s = E.PartitionState((1, 2, 3), (1, 2, 3), 2, 7, 10)
    r = rec(E.preferred_leader_election(T, P, s, {1, 2, 3}))
    assert (r.leader, r.leader_epoch) == (1, 8)
    assert E.preferred_leader_election(T, P, r.state, {1, 2, 3}).error == E.ELECTION_NOT_NEEDED
    lagging = E.PartitionState((1, 2, 3), (2, 3), 2, 7, 10)
    assert (
        E.preferred_leader_election(T, P, lagging, {1, 2, 3}).error
        == E.PREFERRED_LEADER_NOT_AVAILABLE
    )
    assert E.preferred_leader_election(T, P, s, {2, 3}).error == E.PREFERRED_LEADER_NOT_AVAILABLE


def test_reassignment_adds_waits_moves_the_leader_then_removes():
    s = E.PartitionState((1, 2, 3), (1, 2, 3), 1, 4, 10)
    step1 = rec(E.start_reassignment(T, P, s, (4, 5, 3), known_brokers={1, 2, 3, 4, 5}))
    assert step1.replicas == (4, 5, 3, 1, 2)
    assert (step1.adding_replicas, step1.removing_replicas) == ((4, 5), (1, 2))
    s = step1.state
    assert E.start_reassignment(T, P, s, (1, 2, 3), {1, 2, 3}).error == E.REASSIGNMENT_IN_PROGRESS
    live = {1, 2, 3, 4, 5}
    assert E.reassignment_step(T, P, s, live).record is None  # 4 and 5 not in sync yet
    # the leader adds them to the ISR once caught up (AlterPartition)
    s = rec(
        E.alter_partition(
            T,
            P,
            s,
            broker_id=1,
            leader_epoch=4,
            partition_epoch=11,
            new_isr=(1, 2, 3, 4, 5),
            live=live,
        )
    ).state
    assert s.isr == (4, 5, 3, 1, 2)
    move = rec(E.reassignment_step(T, P, s, live))
    assert (move.leader, move.leader_epoch, move.replicas) == (4, 5, (4, 5, 3, 1, 2))
    done = rec(E.reassignment_step(T, P, move.state, live))
    assert (done.replicas, done.isr, done.leader) == ((4, 5, 3), (4, 5, 3), 4)
    assert done.adding_replicas == done.removing_replicas == ()
    assert E.reassignment_step(T, P, done.state, live).record is None


def test_reassignment_validation_and_cancel():
    s = E.PartitionState((1, 2, 3), (1, 2, 3), 1, 4, 10)
    for target in ((), (4, 4), (9,)):
        assert (
            E.start_reassignment(T, P, s, target, {1, 2, 3, 4}).error
            == E.INVALID_REPLICA_ASSIGNMENT
        )
    assert E.start_reassignment(T, P, s, (1, 2, 3), {1, 2, 3}).record is None
    moving = rec(E.start_reassignment(T, P, s, (4, 2, 3), {1, 2, 3, 4})).state
    back = rec(E.cancel_reassignment(T, P, moving, {1, 2, 3, 4}))
    assert (back.replicas, back.isr, back.leader, back.adding_replicas) == (
        (2, 3, 1),
        (1, 2, 3),
        1,
        (),
    )
    assert E.cancel_reassignment(T, P, s, {1}).error == E.NO_REASSIGNMENT_IN_PROGRESS


def test_record_round_trips_through_json():
    r = rec(E.start_reassignment(T, P, S, (4, 2, 3), {1, 2, 3, 4}))
    data = json.loads(json.dumps(r.to_dict()))
    assert data["type"] == "PartitionChangeRecord"
    assert E.PartitionChangeRecord.from_dict(data) == r
    assert E.apply_change(S, r) == r.state


def test_fence_and_unfence_over_a_metadata_image():
    image = M.replay(
        [
            *(M.RegisterBroker(broker_id=b, host="h", port=b) for b in (1, 2, 3)),
            *(M.UnfenceBroker(broker_id=b) for b in (1, 2, 3)),
            M.CreateTopic(
                name="a", topic_id="x", configs=(("unclean.leader.election.enable", "true"),)
            ),
            M.PartitionRecord(topic="a", partition=0, replicas=(1, 2), isr=(1,), leader=1),
            M.CreateTopic(name="b", topic_id="y"),
            M.PartitionRecord(topic="b", partition=0, replicas=(1, 2), isr=(1,), leader=1),
            M.PartitionRecord(topic="b", partition=1, replicas=(2, 3), isr=(2, 3), leader=2),
        ]
    )
    decisions = E.fence_broker(image, 1)
    by_topic = {d.record.topic: d for d in decisions}
    assert set(by_topic) == {"a", "b"}  # b/1 does not involve broker 1
    assert by_topic["a"].unclean and by_topic["a"].record.leader == 2
    assert by_topic["b"].record.leader == E.NO_LEADER and not by_topic["b"].unclean
    assert E.unclean_enabled({}, default=True) and not E.unclean_enabled(
        {"unclean.leader.election.enable": "false"}, True
    )
    assert E.PartitionState.from_info(image.partition("b", 1)).partition_epoch == 0
    assert E.unfence_broker(image, 1) == []  # every partition still has its leader
