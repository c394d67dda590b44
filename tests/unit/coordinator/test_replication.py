"""Leader-side replication state (ISR, high watermark, acks=all) and follower truncation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator import replication as R
from rillet.logstore.epochs import LeaderEpochCache

LAG = 30_000
CFG = R.ReplicationConfig(
    replica_lag_time_max_ms=LAG, min_insync_replicas=2, alter_partition_retry_ms=100
)


def leader(isr=(1, 2, 3), leo=10, hw=10, epoch=5, now=0, cfg=CFG, **kw) -> R.LeaderReplica:
    return R.LeaderReplica(
        1,
        replicas=(1, 2, 3),
        isr=isr,
        leader_epoch=epoch,
        partition_epoch=kw.pop("partition_epoch", 3),
        log_end_offset=leo,
        high_watermark=hw,
        now_ms=now,
        config=cfg,
        **kw,
    )


def fetch(L, follower, offset, now, epoch=5, **kw):
    return L.on_follower_fetch(follower, offset, now, current_leader_epoch=epoch, **kw)


# ------------------------------------------------------------------------- follower progress


def test_caught_up_rules_follow_kafka():
    f = R.FollowerProgress(2)
    f.update(fetch_offset=10, leader_log_end_offset=10, now_ms=100)  # at the leader's end
    assert f.last_caught_up_time_ms == 100
    f.update(fetch_offset=10, leader_log_end_offset=15, now_ms=200)  # reached LEO of last fetch
    assert f.last_caught_up_time_ms == 100  # previous fetch time
    f.update(fetch_offset=15, leader_log_end_offset=20, now_ms=300)
    assert f.last_caught_up_time_ms == 200  # caught up to where the leader was at 200
    f.update(fetch_offset=16, leader_log_end_offset=25, now_ms=400)
    assert f.last_caught_up_time_ms == 200  # behind the LEO of its previous fetch
    assert f.caught_up(16, 400 + LAG, LAG) and not f.caught_up(25, 200 + LAG + 1, LAG)


# --------------------------------------------------------------------------- high watermark


def test_high_watermark_is_min_leo_over_isr_and_never_decreases():
    L = leader(leo=10, hw=4)
    assert L.on_append(12, 1).high_watermark == 4  # followers' LEOs unknown after election
    assert not fetch(L, 2, 8, 2).progress.high_watermark_changed
    d = fetch(L, 3, 6, 3)
    assert d.progress.high_watermark_changed and d.progress.high_watermark == 6
    assert fetch(L, 2, 12, 4).progress.high_watermark == 6
    p = fetch(L, 3, 12, 5).progress
    assert p.high_watermark == 12
    # a follower reporting less (it restarted and truncated) never lowers the HW
    assert fetch(L, 3, 11, 6).progress.high_watermark == 12 and L.high_watermark == 12


def test_single_replica_isr_follows_the_leader():
    L = leader(isr=(1,), leo=0, hw=0, cfg=R.ReplicationConfig(min_insync_replicas=1))
    p = L.on_append(5, 1)
    assert p.high_watermark_changed and p.high_watermark == 5


def test_fetch_is_fenced_by_epoch_membership_and_range():
    L = leader()
    assert fetch(L, 2, 10, 1, epoch=4).error == R.FENCED_LEADER_EPOCH
    assert fetch(L, 2, 10, 1, epoch=6).error == R.UNKNOWN_LEADER_EPOCH
    assert fetch(L, 9, 10, 1).error == R.NOT_LEADER_OR_FOLLOWER
    assert fetch(L, 2, 11, 1).error == R.OFFSET_OUT_OF_RANGE
    assert fetch(L, 2, 10, 1).error == R.NONE


def test_fetch_from_a_diverged_follower_is_told_where_to_truncate():
    epochs = LeaderEpochCache([(0, 0), (5, 8)])
    L = leader(leo=10, hw=8, leader_epoch_start_offset=8)
    # the follower's last epoch is 3 (it led epoch 3 alone): the leader's epoch 0 ended at 8
    d = fetch(L, 2, 9, 1, last_fetched_epoch=3, epochs=epochs)
    assert d.diverging_epoch == (0, 8)
    assert L.followers[2].log_end_offset == -1  # its offset did not count
    d = fetch(L, 2, 8, 1, last_fetched_epoch=0, epochs=epochs)
    assert d.diverging_epoch is None and L.followers[2].log_end_offset == 8


# ---------------------------------------------------------------------------------- the ISR


def test_shrink_after_lag_and_only_through_the_controller():
    L = leader(leo=10, hw=10, now=0)
    fetch(L, 2, 10, 1)
    fetch(L, 3, 10, 1)
    L.on_append(20, 2)
    fetch(L, 2, 20, 100)
    assert L.tick(LAG).propose is None  # 3 was caught up at time 1: within the lag
    p = L.tick(LAG + 2)
    assert p.propose == R.AlterIsr(1, 5, 3, (1, 2))
    assert L.isr == (1, 2, 3)  # not applied until the metadata says so
    assert L.tick(LAG + 3).propose is None  # one proposal in flight
    assert L.tick(LAG + 2 + 100).propose == p.propose  # re-sent after the retry interval
    L.on_partition_change(leader=1, isr=(1, 2), leader_epoch=5, partition_epoch=4, now_ms=LAG + 200)
    assert L.isr == (1, 2) and L.pending is None


def test_a_follower_at_the_leaders_end_is_never_out_of_sync():
    L = leader(leo=10, hw=10)
    fetch(L, 2, 10, 1)
    fetch(L, 3, 10, 1)
    assert L.tick(10 * LAG).propose is None


def test_a_watched_poll_before_an_append_counts_against_the_end_offset_of_its_time():
    """An idle leader stops its ISR checks; its followers keep polling their fetch sessions
    without naming the partition. The first check after an append refreshes them from the
    sessions' last polls, which came before the append: they had the log end of that time,
    so they are caught up as of those polls, not out of the ISR (the first acks=all produce
    after a long idle failed with NOT_ENOUGH_REPLICAS_AFTER_APPEND on a loaded machine)."""
    L = leader(leo=10, hw=10, now=0)
    fetch(L, 2, 10, 1)
    fetch(L, 3, 10, 1)
    idle = 10 * LAG  # no refresh in between: the leader had nothing to check
    L.on_append(11, idle)
    for follower in (2, 3):  # their last polls, 100 ms before the append, at offset 10
        assert fetch(L, follower, 10, idle - 100, watched=True).error == R.NONE
    assert L.tick(idle + 1).propose is None
    assert L.tick(idle - 100 + LAG).propose is None  # within the lag of those polls
    assert L.tick(idle - 100 + LAG + 1).propose is not None  # still at 10 after it: out


def test_a_watched_poll_before_two_appends_gets_no_more_credit_than_before():
    L = leader(leo=10, hw=10, now=0)
    fetch(L, 2, 10, 1)
    fetch(L, 3, 10, 1)
    idle = 10 * LAG
    L.on_append(11, idle)
    L.on_append(12, idle + 5)  # only one append back is kept
    for follower in (2, 3):
        fetch(L, follower, 10, idle - 100, watched=True)
    assert L.tick(idle + 6).propose == R.AlterIsr(1, 5, 3, (1,))  # caught up at time 1


def test_expand_when_caught_up_to_hw_and_epoch_start():
    L = leader(isr=(1, 2), leo=20, hw=12, leader_epoch_start_offset=15)
    fetch(L, 2, 20, 1)
    assert L.high_watermark == 20
    assert fetch(L, 3, 14, 2).progress.propose is None  # below the HW
    L2 = leader(isr=(1, 2), leo=20, hw=12, leader_epoch_start_offset=15)
    assert fetch(L2, 3, 13, 2).progress.propose is None  # >= HW but below this epoch's start
    assert fetch(L, 3, 20, 3).progress.propose == R.AlterIsr(1, 5, 3, (1, 2, 3))
    # while pending, the HW waits for the joining replica too (the maximal ISR)
    assert L.maximal_isr == (1, 2, 3)
    L.on_append(30, 4)
    fetch(L, 2, 30, 5)
    assert L.high_watermark == 20
    fetch(L, 3, 25, 6)
    assert L.high_watermark == 25


def test_an_isr_proposal_names_the_follower_process_and_a_restart_resets_its_progress():
    """KIP-903: the proposal says which process fetched; a new process starts from nothing."""
    L = leader(isr=(1, 2), leo=20, hw=20)
    proposal = fetch(L, 3, 20, 1, incarnation="p3-a").progress.propose
    assert proposal.new_isr == (1, 2, 3) and proposal.incarnations == ("", "", "p3-a")
    L2 = leader(isr=(1, 2, 3), leo=20, hw=20)
    fetch(L2, 3, 20, 1, incarnation="p3-a")
    f = L2.followers[3]
    assert f.last_caught_up_time_ms == 1
    fetch(L2, 3, 5, 2, incarnation="p3-b")  # restarted with a shorter log
    assert (f.incarnation, f.log_end_offset, f.last_caught_up_time_ms) == ("p3-b", 5, 0)


def test_an_isr_followers_first_fetch_behind_the_leader_keeps_its_grace_period():
    """On becoming leader every ISR member counts as caught up now; the first fetch of its
    process must not undo that. It did (a process never seen was taken for a restarted one,
    its catch-up time reset to 0): a follower whose first fetch came after a produce was
    shrunk out of the ISR at the next tick, so killing the leader then left the partition
    without an eligible leader (the killed-broker failover test's intermittent 'hang')."""
    L = leader(isr=(1, 2, 3), leo=0, hw=0, now=1000)
    L.on_append(1, 1001)  # a produce lands before the followers' first fetch
    fetch(L, 2, 0, 1002, incarnation="p2")
    fetch(L, 3, 0, 1002, incarnation="p3")
    assert [L.followers[b].last_caught_up_time_ms for b in (2, 3)] == [1000, 1000]
    assert L.tick(1003).propose is None
    assert L.tick(1000 + LAG).propose is None  # replica.lag.time.max.ms to catch up
    assert L.tick(1000 + LAG + 1).propose.new_isr == (1,)  # then out


def test_alter_partition_answers():
    L = leader(isr=(1, 2), leo=20, hw=20)
    prop = fetch(L, 3, 20, 1).progress.propose
    L.on_alter_partition_response(prop, R.INELIGIBLE_REPLICA, 2)
    assert L.pending is None  # not applied: back to the committed ISR
    assert fetch(L, 3, 20, 3).progress.propose is None  # backs off (e.g. 3 is fenced)
    prop = fetch(L, 3, 20, 102).progress.propose
    assert prop is not None
    L.on_alter_partition_response(prop, R.INVALID_UPDATE_VERSION, 4)
    assert L.pending == prop and L.tick(10_000).propose is None  # wait for the metadata
    L.on_partition_change(leader=1, isr=(1, 2, 3), leader_epoch=5, partition_epoch=4, now_ms=5)
    assert L.pending is None and L.isr == (1, 2, 3)


# ------------------------------------------------------------------------------- acks = all


def test_acks_all_refused_below_min_insync_before_writing():
    assert leader(isr=(1,)).check_append(-1) == R.NOT_ENOUGH_REPLICAS
    assert leader(isr=(1,)).check_append(1) == R.NONE
    assert leader(isr=(1, 2)).check_append(-1) == R.NONE


def test_acks_all_completes_when_hw_passes_the_batch():
    L = leader(isr=(1, 2), leo=10, hw=10)
    L.on_append(13, 1)
    assert L.wait_for_ack("a", 12, deadline_ms=1000) is None
    assert L.wait_for_ack("old", 9, deadline_ms=1000) == R.Completion("old", 9, R.NONE)
    assert fetch(L, 2, 12, 2).progress.completions == ()
    p = fetch(L, 2, 13, 3).progress
    assert p.completions == (R.Completion("a", 12, R.NONE),)
    assert len(L.purgatory) == 0


def test_isr_shrinking_below_min_insync_fails_the_wait_after_append():
    L = leader(isr=(1, 2), leo=10, hw=10)
    L.on_append(11, 1)
    L.wait_for_ack("a", 10, deadline_ms=10_000)
    p = L.on_partition_change(leader=1, isr=(1,), leader_epoch=5, partition_epoch=4, now_ms=2)
    assert p.completions == (R.Completion("a", 10, R.NOT_ENOUGH_REPLICAS_AFTER_APPEND),)


def test_waits_time_out_and_fail_on_leader_change():
    L = leader(isr=(1, 2), leo=10, hw=10)
    L.on_append(12, 1)
    L.wait_for_ack("a", 10, deadline_ms=50)
    L.wait_for_ack("b", 11, deadline_ms=500)
    assert L.tick(60).completions == (R.Completion("a", 10, R.REQUEST_TIMED_OUT),)
    p = L.on_partition_change(leader=2, isr=(1, 2), leader_epoch=6, partition_epoch=4, now_ms=70)
    assert p.resigned and p.completions == (R.Completion("b", 11, R.NOT_LEADER_OR_FOLLOWER),)
    assert L.check_append(-1) == R.NOT_LEADER_OR_FOLLOWER
    assert L.wait_for_ack("c", 11, 500) == R.Completion("c", 11, R.NOT_LEADER_OR_FOLLOWER)


def test_purgatory_completes_in_offset_order_and_skips_expired():
    pg = R.ProducePurgatory()
    for i, off in enumerate((5, 3, 9, 7)):
        pg.add(i, off, deadline_ms=100 + i)
    assert [c.key for c in pg.expire(100)] == [0]
    assert [c.key for c in pg.complete_up_to(8)] == [1, 3]
    assert len(pg) == 1 and [p.key for p in pg.waiting()] == [2]


def test_purgatory_length_counts_the_waiting_through_expiry_completion_and_compaction():
    # len() is asked after every message a leader handles: a count, kept exact
    pg = R.ProducePurgatory()
    for i in range(200):
        pg.add(i, i, deadline_ms=1000 if i % 2 else 10)
    assert len(pg) == 200
    assert len(pg.expire(10)) == 100 and len(pg) == 100  # and the heaps are compacted
    assert len(pg.complete_up_to(51)) == 25 and len(pg) == 75  # odd offsets 1..49
    assert pg.expire(10) == [] and pg.complete_up_to(51) == [] and len(pg) == 75
    assert len(pg) == len(pg.waiting())
    assert len(pg.fail_all("X")) == 75 and len(pg) == 0
    pg.add("a", 1, 5)
    assert len(pg) == 1


def test_purgatory_next_deadline_skips_the_answered():
    pg = R.ProducePurgatory()
    assert pg.next_deadline() is None
    pg.add("a", 1, deadline_ms=100)
    pg.add("b", 5, deadline_ms=200)
    assert pg.next_deadline() == 100
    pg.complete_up_to(2)  # "a" answered: its deadline wakes nobody
    assert pg.next_deadline() == 200 and len(pg) == 1
    assert [c.key for c in pg.expire(200)] == ["b"] and pg.next_deadline() is None


# -------------------------------------------------------------------------------- follower


def cache(*entries, leo):
    return LeaderEpochCache(list(entries), log_end_offset=lambda: leo)


def test_truncation_kip101_follower_keeps_what_the_leader_has():
    # follower: epoch 1 from 0, epoch 2 from 5, LEO 9; leader says epoch 2 ended at 7
    f = cache((1, 0), (2, 5), leo=9)
    t = R.follower_truncation(f, 9, 3, leader_epoch=2, leader_end_offset=7)
    assert (t.truncate_to, t.done) == (7, True)
    assert t.fetch_offset(9) == 7
    # the leader has more in that epoch: nothing to cut
    t = R.follower_truncation(f, 9, 3, leader_epoch=2, leader_end_offset=20)
    assert (t.truncate_to, t.done) == (9, True)


def test_truncation_kip279_walks_back_over_an_epoch_the_follower_never_saw():
    # KIP-279 double failover: the follower has epochs 1 and 3, the leader answers for
    # epoch 3 with its largest epoch below it, 2, which the follower does not know
    f = cache((1, 0), (3, 6), leo=10)
    t = R.follower_truncation(f, 10, 0, leader_epoch=2, leader_end_offset=8)
    assert (t.truncate_to, t.done) == (6, False)  # to the end of its epoch 1, then ask again
    f.truncate_from_end(6)
    assert f.latest_epoch == 1
    t = R.follower_truncation(f, 6, 0, leader_epoch=1, leader_end_offset=4)
    assert (t.truncate_to, t.done) == (4, True)


def test_truncation_fallbacks():
    f = cache((4, 10), leo=20)
    t = R.follower_truncation(f, 20, 12, leader_epoch=R.UNDEFINED_EPOCH, leader_end_offset=-1)
    assert (t.truncate_to, t.done) == (12, True)  # the leader knows nothing: to our HW
    t = R.follower_truncation(f, 20, 12, leader_epoch=2, leader_end_offset=8)
    assert (t.truncate_to, t.done) == (8, True)  # an epoch older than all of ours


def test_leader_answers_offset_for_leader_epoch_with_fencing():
    epochs = cache((0, 0), (2, 120), (5, 300), leo=410)
    args = {"leader_epoch": 5, "requested_epoch": 3}
    assert R.leader_epoch_end_offset(epochs, 410, current_leader_epoch=5, **args) == (
        R.NONE,
        2,
        300,
    )
    assert R.leader_epoch_end_offset(epochs, 410, current_leader_epoch=4, **args)[0] == (
        R.FENCED_LEADER_EPOCH
    )
    assert R.leader_epoch_end_offset(epochs, 410, current_leader_epoch=6, **args)[0] == (
        R.UNKNOWN_LEADER_EPOCH
    )


@pytest.mark.parametrize("leader_hw,leo,expected", [(5, 9, 5), (12, 9, 9)])
def test_follower_high_watermark_is_capped_by_its_log(leader_hw, leo, expected):
    assert R.follower_high_watermark(leader_hw, leo) == expected


_event = st.one_of(
    st.tuples(st.just("append"), st.integers(0, 5)),
    st.tuples(st.just("fetch"), st.sampled_from((2, 3)), st.integers(0, 60)),
    st.tuples(st.just("isr"), st.sampled_from(((1,), (1, 2), (1, 3), (1, 2, 3)))),
    st.tuples(st.just("tick"), st.integers(0, 40_000)),
    st.tuples(st.just("wait"), st.integers(0, 60)),
)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(_event, max_size=60))
def test_leader_invariants_under_any_event_order(events):
    """HW never decreases, never passes the leader's LEO, rises only to the min LEO of the
    maximal ISR; successful acks only for offsets below the HW with ISR >= min.insync."""
    L = leader(isr=(1, 2, 3), leo=0, hw=0)
    now, leo, pe, waits = 0, 0, 3, 0
    for ev in events:
        before = L.high_watermark
        if ev[0] == "append":
            leo += ev[1]
            p = L.on_append(leo, now)
        elif ev[0] == "fetch":
            d = fetch(L, ev[1], min(ev[2], leo), now)
            p = d.progress
        elif ev[0] == "isr":
            pe += 1
            p = L.on_partition_change(
                leader=1, isr=ev[1], leader_epoch=5, partition_epoch=pe, now_ms=now
            )
        elif ev[0] == "tick":
            now += ev[1]
            p = L.tick(now)
        else:
            waits += 1
            c = L.wait_for_ack(waits, min(ev[1], max(leo - 1, 0)), now + 30_000)
            p = R.Progress(L.high_watermark, completions=(c,) if c else ())
        assert before <= L.high_watermark <= leo
        if L.high_watermark > before:
            members = [f.log_end_offset for b, f in L.followers.items() if b in L.maximal_isr]
            assert L.high_watermark == min([leo, *members])
        for c in p.completions:
            if c.error == R.NONE:
                assert c.last_offset < L.high_watermark and len(L.isr) >= 2
            else:
                assert c.error in (R.NOT_ENOUGH_REPLICAS_AFTER_APPEND, R.REQUEST_TIMED_OUT)


def test_an_isr_check_is_needed_only_while_a_replica_is_behind_or_out():
    L = leader(leo=10, hw=10)
    assert not L.in_sync_and_idle  # followers' LEOs unknown after election
    fetch(L, 2, 10, 1)
    assert not L.in_sync_and_idle
    fetch(L, 3, 10, 2)
    assert L.in_sync_and_idle  # nothing a tick could change until the next append
    L.on_append(11, 3)
    assert not L.in_sync_and_idle
    fetch(L, 2, 11, 4)
    fetch(L, 3, 11, 4)
    assert L.in_sync_and_idle
    out = leader(isr=(1, 2), leo=10, hw=10)
    fetch(out, 2, 10, 1)
    fetch(out, 3, 10, 1)  # proposed for the ISR: pending
    assert not out.in_sync_and_idle
