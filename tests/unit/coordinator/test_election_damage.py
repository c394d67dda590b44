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


def test_a_damaged_follower_leaves_the_isr_the_leader_stays_at_a_new_epoch():
    r = rec(E.on_replica_damage(T, P, S, 3, live={1, 2, 3}))
    assert (r.leader, r.isr, r.damaged, r.leader_epoch) == (1, (1, 2), (3,), 5)
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


def test_a_fetch_sent_before_the_damage_cannot_add_the_replica_back():
    """Found by the replication simulator: follower 3 fetches at offset 10 (all it holds),
    then finds a damaged batch at 4, reports it and truncates to 4. Its fetch reaches leader
    1 only after the damage record. Counted, it would have 1 propose ISR [1, 2, 3] and
    alter_partition would clear the mark while 3 lacks committed records 4..9; the leader
    epoch bump of the damage record fences that fetch instead."""
    from rillet.coordinator import replication as R

    leader = R.LeaderReplica(
        1, replicas=(1, 2, 3), isr=(1, 2, 3), leader_epoch=4, partition_epoch=10,
        log_end_offset=10, high_watermark=10, now_ms=0,
    )
    st = rec(E.on_replica_damage(T, P, S, 3, live={1, 2, 3})).state
    p = leader.on_partition_change(
        leader=st.leader, isr=st.isr, leader_epoch=st.leader_epoch,
        partition_epoch=st.partition_epoch, replicas=st.replicas, now_ms=5,
    )
    if p.resigned:  # a new leader epoch: the actor leads again with fresh follower state
        leader = R.LeaderReplica(
            1, replicas=st.replicas, isr=st.isr, leader_epoch=st.leader_epoch,
            partition_epoch=st.partition_epoch, log_end_offset=10, high_watermark=10, now_ms=5,
        )
    late = leader.on_follower_fetch(3, 10, 6, current_leader_epoch=4, incarnation="i3")
    assert late.error == R.FENCED_LEADER_EPOCH and late.progress.propose is None
    assert set(leader.isr) == {1, 2} and leader.pending is None
    # after healing it fetches at the new epoch from where it truncated, then catches up
    fresh = leader.on_follower_fetch(3, 4, 7, current_leader_epoch=5, incarnation="i3")
    assert fresh.error == R.NONE and fresh.progress.propose is None
    caught_up = leader.on_follower_fetch(3, 10, 8, current_leader_epoch=5, incarnation="i3")
    proposal = caught_up.progress.propose
    assert proposal is not None and proposal.new_isr == (1, 2, 3)
    d = E.alter_partition(
        T, P, st, broker_id=1, leader_epoch=proposal.leader_epoch,
        partition_epoch=proposal.partition_epoch, new_isr=proposal.new_isr, live={1, 2, 3},
    )
    assert rec(d).isr == (1, 2, 3) and rec(d).damaged == ()


def test_damage_found_again_while_healing_bumps_the_epoch_again():
    """Marked damaged, out of the ISR, it truncated and re-fetches at epoch 5; then it finds
    another damaged batch: its fetches of epoch 5 may count records it has lost again, so a
    report of the current epoch bumps it once more. A re-send of the first report (epoch 4)
    changes nothing."""
    st = rec(E.on_replica_damage(T, P, S, 3, live={1, 2, 3}, leader_epoch=4)).state
    assert st.leader_epoch == 5
    assert E.on_replica_damage(T, P, st, 3, live={1, 2, 3}, leader_epoch=4).record is None
    assert E.on_replica_damage(T, P, st, 3, live={1, 2, 3}).record is None
    again = rec(E.on_replica_damage(T, P, st, 3, live={1, 2, 3}, leader_epoch=5))
    assert (again.leader, again.isr, again.damaged, again.leader_epoch) == (1, (1, 2), (3,), 6)
    # offline with it as the last in-sync replica: nothing to fence, nothing changes
    off = rec(E.on_replica_damage(T, P, E.PartitionState((1, 2, 3), (2,), 2, 7, 3), 2, {1, 2, 3}))
    assert E.on_replica_damage(T, P, off.state, 2, {1, 2, 3}, leader_epoch=8).record is None
