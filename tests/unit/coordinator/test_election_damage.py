"""Controller decisions for damaged replicas (election.on_replica_damage and friends)."""

from __future__ import annotations

import json

from rillet.coordinator import election as E
from rillet.coordinator import metadata as M

T, P = "t", 0
S = E.PartitionState((1, 2, 3), (1, 2, 3), 1, 4, 10)


def rec(d: E.Decision) -> E.PartitionChangeRecord:
    assert d.record is not None, d
    return d.record


def test_a_damaged_leader_hands_over_to_a_healthy_isr_member():
    r = rec(E.on_replica_damage(T, P, S, 1, live={1, 2, 3}))
    assert (r.leader, r.isr, r.damaged, r.leader_epoch, r.partition_epoch) == (
        2, (2, 3), (1,), 5, 11)
    # a repeated report changes nothing
    assert E.on_replica_damage(T, P, r.state, 1, live={1, 2, 3}).record is None


def test_a_damaged_follower_leaves_the_isr_without_a_leader_change():
    r = rec(E.on_replica_damage(T, P, S, 3, live={1, 2, 3}))
    assert (r.leader, r.isr, r.damaged, r.leader_epoch) == (1, (1, 2), (3,), 4)
    # out of sync already: only marked
    s = E.PartitionState((1, 2, 3), (1, 2), 1, 4, 10)
    r = rec(E.on_replica_damage(T, P, s, 3, live={1, 2, 3}))
    assert (r.leader, r.isr, r.damaged) == (1, (1, 2), (3,))


def test_the_only_isr_member_damaged_takes_the_partition_offline_with_a_clear_status():
    s = E.PartitionState((1, 2, 3), (2,), 2, 7, 3)
    d = E.on_replica_damage(T, P, s, 2, live={1, 2, 3})
    r = rec(d)
    assert (r.leader, r.isr, r.damaged, r.leader_epoch) == (E.NO_LEADER, (2,), (2,), 8)
    assert "replica on broker 2 is damaged" in d.message
    assert "unclean.leader.election.enable" in E.offline_reason(r.state, {1, 2, 3})
    offline = r.state
    # nobody may lead it cleanly: not the damaged replica, not the out-of-sync ones
    assert E.on_broker_unfenced(T, P, offline, 2, live={1, 2, 3}).record is None
    assert E.elect_offline(T, P, offline, {1, 2, 3}, unclean=False).record is None
    # unclean election: an undamaged live replica first (data may be lost; logged)
    d = E.elect_offline(T, P, offline, {1, 2, 3}, unclean=True)
    assert d.unclean and (rec(d).leader, rec(d).isr) == (1, (1,))


def test_unclean_election_takes_a_damaged_replica_only_as_the_last_resort():
    s = E.PartitionState((1, 2, 3), (1,), 1, 4, 10, damaged=(1, 3))
    assert E.choose_leader(s, {1, 3}, unclean=True) == (1, True)
    assert E.choose_leader(s, {1, 2, 3}, unclean=True) == (2, True)
    assert E.choose_leader(s, {1, 2, 3}, unclean=False) == (E.NO_LEADER, False)


def test_a_damaged_replica_is_never_elected_cleanly():
    s = rec(E.on_replica_damage(T, P, S, 3, live={1, 2, 3})).state
    # put it back in the ISR by hand (say, a stale image): still not a candidate
    s2 = E.PartitionState(s.replicas, (1, 2, 3), 1, s.leader_epoch, s.partition_epoch,
                          damaged=(3,))
    assert E.on_broker_fenced(T, P, s2, 1, live={3}).record.leader == E.NO_LEADER
    assert rec(E.on_broker_fenced(T, P, s2, 1, live={2, 3})).leader == 2
    s3 = E.PartitionState((3, 1, 2), (1, 2, 3), 1, 4, 10, damaged=(3,))
    assert E.preferred_leader_election(T, P, s3, {1, 2, 3}).error == (
        E.PREFERRED_LEADER_NOT_AVAILABLE)


def test_isr_expansion_that_adds_it_back_clears_the_mark():
    s = rec(E.on_replica_damage(T, P, S, 1, live={1, 2, 3})).state  # leader 2, ISR [2, 3]
    r = rec(E.alter_partition(T, P, s, broker_id=2, leader_epoch=s.leader_epoch,
                              partition_epoch=s.partition_epoch, new_isr=(2, 3, 1),
                              live={1, 2, 3}))
    assert (r.isr, r.damaged) == ((1, 2, 3), ())
    # a shrink that does not involve it keeps the mark
    s = rec(E.on_replica_damage(T, P, S, 3, live={1, 2, 3})).state
    r = rec(E.alter_partition(T, P, s, broker_id=1, leader_epoch=s.leader_epoch,
                              partition_epoch=s.partition_epoch, new_isr=(1,),
                              live={1, 2, 3}))
    assert r.damaged == (3,)


def test_unknown_partition_or_replica():
    assert E.on_replica_damage(T, P, None, 1, live={1}).error == E.UNKNOWN_TOPIC_OR_PARTITION
    assert E.on_replica_damage(T, P, S, 9, live={1}).error == E.INVALID_REQUEST


def test_the_mark_survives_replay_and_snapshots_and_old_records_still_load():
    image = M.replay([
        M.CreateTopic(name=T, topic_id="x"),
        M.PartitionRecord(topic=T, partition=P, replicas=(1, 2, 3), isr=(1, 2, 3), leader=1),
    ])
    r = rec(E.on_replica_damage(T, P, E.PartitionState.from_info(image.partition(T, P)), 1,
                                live={1, 2, 3}))
    entry = M.encode_records([r])
    image = M.replay(M.decode_records(entry), image)
    assert image.partition(T, P).damaged == (1,)
    again = M.decode_snapshot(M.encode_snapshot(image))
    assert again.partition(T, P).damaged == (1,) and again.partition(T, P).leader == 2
    old = json.loads(entry)
    del old[0]["damaged"]  # written by a version without the field
    assert M.decode_records(json.dumps(old).encode())[0].damaged == ()


def test_a_damaged_replica_reassigned_away_loses_its_mark():
    s = rec(E.on_replica_damage(T, P, S, 3, live={1, 2, 3, 4})).state
    s = rec(E.start_reassignment(T, P, s, (1, 2, 4), {1, 2, 3, 4})).state
    assert s.damaged == (3,)  # still a replica while the new one catches up
    s = E.PartitionState(s.replicas, (1, 2, 4), 1, s.leader_epoch, s.partition_epoch,
                         s.adding_replicas, s.removing_replicas, s.damaged)
    r = rec(E.reassignment_step(T, P, s, {1, 2, 3, 4}))
    assert r.replicas == (1, 2, 4) and r.damaged == ()
