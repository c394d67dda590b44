"""The classic group protocol's state machine (coordinator/groups/classic.py), no processes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rillet.coordinator.groups.classic import (
    ClassicConfig,
    ClassicGroup,
    ClassicState,
    JoinResponse,
    SyncResponse,
    check_kind,
)
from rillet.coordinator.groups.errors import (
    FencedInstanceIdError,
    GroupIdNotFoundError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidSessionTimeoutError,
    MemberIdRequiredError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

NO_DELAY = ClassicConfig(initial_rebalance_delay_ms=0)
RANGE = [("range", b"meta-range"), ("roundrobin", b"meta-rr")]


def join(g, mid="", *, new="", now=0, instance=None, protocols=RANGE, known=True,
         session=10_000, rebalance=30_000):
    return dict(g.join(member_id=mid, group_instance_id=instance, client_id="c",
                       client_host="/127.0.0.1", session_timeout_ms=session,
                       rebalance_timeout_ms=rebalance, protocol_type="consumer",
                       protocols=protocols, require_known_member_id=known,
                       new_member_id=new, now_ms=now))


def join_new(g, name, now=0, **kw):
    """MEMBER_ID_REQUIRED round trip, then the real join."""
    first = join(g, new=name, now=now, **kw)
    assert first[name].error == MemberIdRequiredError.code and first[name].member_id == name
    return join(g, name, now=now, **kw)


def stable_group(*names, now=0):
    """Members that join within the initial delay (100 ms) share generation 1, synced at
    ``now + 100``."""
    g = ClassicGroup("g", ClassicConfig(initial_rebalance_delay_ms=100))
    for n in names:
        assert join_new(g, n, now=now) == {}
    now += 100
    replies = dict(g.tick(now))
    assert set(replies) == set(names), replies
    leader = replies[names[0]].leader
    for n in names:
        if n != leader:
            assert g.sync(member_id=n, group_instance_id=None, generation_id=g.generation_id,
                          protocol_type="consumer", protocol_name="range", assignments=[],
                          now_ms=now) == []
    out = dict(g.sync(member_id=leader, group_instance_id=None, generation_id=g.generation_id,
                      protocol_type="consumer", protocol_name="range",
                      assignments=[(n, n.encode()) for n in names], now_ms=now))
    assert set(out) == set(names) and g.state is ClassicState.STABLE
    return g


def test_first_join_needs_a_member_id_then_completes_a_generation():
    g = ClassicGroup("g", NO_DELAY)
    out = join(g, new="a-1")
    assert out["a-1"].error == MemberIdRequiredError.code
    assert g.members == {} and g.state is ClassicState.EMPTY
    out = join(g, "a-1")
    r = out["a-1"]
    assert isinstance(r, JoinResponse) and r.error == 0
    assert (r.generation_id, r.leader, r.protocol_name) == (1, "a-1", "range")
    assert r.members == (("a-1", None, b"meta-range"),)  # the leader gets the metadata
    assert g.state is ClassicState.COMPLETING_REBALANCE


def test_second_member_triggers_a_rebalance_the_first_learns_by_heartbeat():
    g = stable_group("a")
    assert join_new(g, "b") == {}  # parked: a must rejoin
    assert g.state is ClassicState.PREPARING_REBALANCE
    with pytest.raises(RebalanceInProgressError):
        g.heartbeat(member_id="a", group_instance_id=None, generation_id=1, now_ms=1)
    out = join(g, "a", now=2)
    assert set(out) == {"a", "b"} and g.generation_id == 2
    assert out["a"].leader == "a" and len(out["a"].members) == 2 and out["b"].members == ()
    # b's sync waits for the leader's
    assert g.sync(member_id="b", group_instance_id=None, generation_id=2, protocol_type=None,
                  protocol_name=None, assignments=[], now_ms=3) == []
    out = dict(g.sync(member_id="a", group_instance_id=None, generation_id=2,
                      protocol_type="consumer", protocol_name="range",
                      assignments=[("a", b"A"), ("b", b"B")], now_ms=3))
    assert out == {"a": SyncResponse(0, "consumer", "range", b"A"),
                   "b": SyncResponse(0, "consumer", "range", b"B")}
    g.heartbeat(member_id="b", group_instance_id=None, generation_id=2, now_ms=4)


def test_leave_moves_partitions_the_rest_rejoin():
    g = stable_group("a", "b", "c")
    errors, replies = g.leave([("b", None)], now_ms=5)
    assert errors == [None] and replies == []
    assert g.state is ClassicState.PREPARING_REBALANCE and set(g.members) == {"a", "c"}
    join(g, "a", now=6)
    out = join(g, "c", now=6)
    assert set(out) == {"a", "c"} and g.generation_id == 2
    errors, _ = g.leave([("zzz", None)], now_ms=7)
    assert isinstance(errors[0], UnknownMemberIdError)


def test_session_timeout_expires_a_silent_member():
    g = stable_group("a", "b", now=0)
    g.heartbeat(member_id="a", group_instance_id=None, generation_id=1, now_ms=9_000)
    assert g.tick(10_099) == []
    g.tick(10_100)  # b's session (10 s from its sync at 100 ms) ended; a heartbeated at 9 s
    assert set(g.members) == {"a"} and g.state is ClassicState.PREPARING_REBALANCE
    assert g.next_deadline_ms() == 9_000 + 10_000  # a's session, before the rebalance deadline
    assert g.rebalance_deadline_ms == 10_100 + 30_000


def test_rebalance_timeout_drops_members_that_do_not_rejoin():
    g = stable_group("a", "b")
    join(g, "a", now=200, protocols=[("roundrobin", b"x")])  # changed protocols: rebalance
    for t in (9_000, 18_000, 27_000):  # b heartbeats (its session lives) but never rejoins
        with pytest.raises(RebalanceInProgressError):
            g.heartbeat(member_id="b", group_instance_id=None, generation_id=1, now_ms=t)
        assert g.tick(t) == []
    assert g.tick(200 + 29_999) == []
    out = dict(g.tick(200 + 30_000))
    assert set(out) == {"a"} and set(g.members) == {"a"} and out["a"].protocol_name == "roundrobin"


def test_stale_generation_and_unknown_members_are_refused_without_change():
    g = stable_group("a", "b")
    with pytest.raises(IllegalGenerationError):
        g.heartbeat(member_id="a", group_instance_id=None, generation_id=0, now_ms=1)
    with pytest.raises(IllegalGenerationError):
        g.check_commit(member_id="a", group_instance_id=None, generation_id=7)
    with pytest.raises(UnknownMemberIdError):
        g.sync(member_id="x", group_instance_id=None, generation_id=1, protocol_type=None,
               protocol_name=None, assignments=[], now_ms=1)
    with pytest.raises(UnknownMemberIdError):
        join(g, "x")
    with pytest.raises(UnknownMemberIdError):  # an admin commit needs an empty group
        g.check_commit(member_id="", group_instance_id=None, generation_id=-1)
    g.check_commit(member_id="a", group_instance_id=None, generation_id=1)
    assert g.state is ClassicState.STABLE and g.generation_id == 1


def test_inconsistent_protocols_and_bad_session_timeouts():
    g = stable_group("a")
    with pytest.raises(InconsistentGroupProtocolError):
        join(g, new="b", protocols=[("sticky", b"")])
    with pytest.raises(InvalidSessionTimeoutError):
        join(ClassicGroup("h"), new="b", session=10)
    with pytest.raises(InconsistentGroupProtocolError):
        check_kind(classic_exists=False, consumer_exists=True, classic_request=True)
    with pytest.raises(GroupIdNotFoundError):
        check_kind(classic_exists=True, consumer_exists=False, classic_request=False)
    check_kind(classic_exists=True, consumer_exists=False, classic_request=True)


def test_protocol_vote_picks_what_all_support_and_most_prefer():
    g = ClassicGroup("g", NO_DELAY)
    join(g, new="a", known=False, protocols=[("range", b""), ("roundrobin", b"")])
    g.sync(member_id="a", group_instance_id=None, generation_id=1, protocol_type=None,
           protocol_name=None, assignments=[], now_ms=0)
    join(g, new="b", known=False, protocols=[("roundrobin", b""), ("range", b"")])
    join(g, new="c", known=False, protocols=[("roundrobin", b""), ("sticky", b"")])
    out = join(g, "a", protocols=[("range", b""), ("roundrobin", b"")])
    assert out["a"].protocol_name == "roundrobin"  # range is not supported by c


def test_static_member_restart_keeps_its_assignment_without_rebalance():
    g = ClassicGroup("g", NO_DELAY)
    join(g, new="a", instance="i-a")
    join(g, new="b", instance="i-b")
    # a joined first alone (generation 1), b's join started generation 2's rebalance
    join(g, "a", instance="i-a")
    assert g.generation_id == 2
    leader = g.leader_id
    for m in ("a", "b"):
        g.sync(member_id=m, group_instance_id=f"i-{m}", generation_id=2, protocol_type=None,
               protocol_name=None, assignments=[("a", b"A"), ("b", b"B")] if m == leader else [],
               now_ms=0)
    assert g.state is ClassicState.STABLE
    out = join(g, new="b2", instance="i-b", now=50)
    assert out["b2"].generation_id == 2 and g.state is ClassicState.STABLE
    assert g.members["b2"].assignment == b"B" and "b" not in g.members
    with pytest.raises(FencedInstanceIdError):  # the old process is a zombie
        g.heartbeat(member_id="b", group_instance_id="i-b", generation_id=2, now_ms=51)


def test_initial_rebalance_delay_waits_for_more_members():
    g = ClassicGroup("g", ClassicConfig(initial_rebalance_delay_ms=3000))
    assert join(g, new="a", known=False, now=0) == {}
    assert join(g, new="b", known=False, now=1000) == {}  # extends the delay to 4000
    assert g.tick(3999) == []
    out = dict(g.tick(4000))
    assert set(out) == {"a", "b"} and out["a"].generation_id == 1


def test_last_leave_empties_the_group_and_a_record_round_trips():
    g = stable_group("a", "b")
    rec = g.to_record()
    back = ClassicGroup.from_record("g", rec, NO_DELAY, now_ms=0)
    assert back.describe() == g.describe()
    g.leave([("a", None), ("b", None)], now_ms=1)
    assert g.state is ClassicState.EMPTY and g.members == {}
    g.check_commit(member_id="", group_instance_id=None, generation_id=-1)
    assert g.describe()["state"] == "Empty"


def test_a_member_id_handed_out_holds_the_rebalance_until_it_joins_or_expires():
    g = stable_group("a")
    assert join(g, new="b", now=200)["b"].error == MemberIdRequiredError.code
    assert join_new(g, "c", now=200) == {}  # c joined: rebalance; a must rejoin
    assert join(g, "a", now=300) == {}  # b's pending id still holds the rebalance
    out = dict(g.tick(200 + 10_000))  # b never came back within its session timeout
    assert set(out) == {"a", "c"} and "b" not in g.members


def test_a_classic_commit_lands_in_the_shared_offset_path():
    from rillet.coordinator.groups import (
        CommitOffset,
        CoordinatorState,
        GroupCoordinator,
        OffsetCommitRequest,
        OffsetFetchRequest,
        TopicPartition,
    )
    from rillet.coordinator.groups.classic import classic_commit

    g = stable_group("a", "b")
    tp = TopicPartition("orders", 0)
    req = OffsetCommitRequest(group_id="g", member_id="a", member_epoch=g.generation_id,
                              offsets={tp: CommitOffset(offset=42)})
    core = GroupCoordinator()
    result = core.commit_offsets(CoordinatorState(), classic_commit(g, req), 1000)
    fetched = core.fetch_offsets(result.state, OffsetFetchRequest(group_id="g"))
    assert fetched.offsets[tp].offset == 42
    with pytest.raises(IllegalGenerationError):
        classic_commit(g, replace(req, member_epoch=g.generation_id - 1))
    with pytest.raises(UnknownMemberIdError):
        classic_commit(None, req)


def test_the_group_record_replays_through_consumer_offsets_encoding():
    import cbor2
    from rillet.coordinator.groups import from_kv, replay, to_kv
    from rillet.coordinator.groups.classic_records import ClassicGroupRecord

    g = stable_group("a", "b")
    k, v = to_kv(ClassicGroupRecord(group_id="g", value=g.to_record()))
    k, v = cbor2.loads(cbor2.dumps(k)), cbor2.loads(cbor2.dumps(v))  # as the actor stores them
    state = replay([from_kv(k, v)])
    back = ClassicGroup.from_record("g", state.classic["g"], NO_DELAY)
    assert back.describe() == g.describe() and back.generation_id == 1
    gone = replay([from_kv(*to_kv(ClassicGroupRecord(group_id="g", value=None)))], state)
    assert gone.classic == {}
    from rillet.coordinator.groups.errors import InvalidRequestError
    with pytest.raises(InvalidRequestError):
        from_kv({"type": "classic_group", "group_id": "g"}, {"generation": "x"})


def test_group_max_size_counts_a_pending_member_that_joins():
    from rillet.coordinator.groups.errors import GroupMaxSizeReachedError

    g = ClassicGroup("g", ClassicConfig(initial_rebalance_delay_ms=0, max_size=1))
    join(g, new="a")
    join(g, new="b")  # both got MEMBER_ID_REQUIRED while the group was empty
    join(g, "a")
    with pytest.raises(GroupMaxSizeReachedError):
        join(g, "b")
    assert set(g.members) == {"a"}


def test_a_member_commits_before_it_rejoins_but_not_while_the_rebalance_completes():
    """Kafka's rule: a commit of the current generation is accepted in PreparingRebalance
    (what a consumer consumed before it rejoins is not consumed twice) and refused with
    REBALANCE_IN_PROGRESS in CompletingRebalance."""
    g = stable_group("a", "b")
    join(g, "a", now=200, protocols=[("roundrobin", b"x")])
    assert g.state is ClassicState.PREPARING_REBALANCE
    g.check_commit(member_id="b", group_instance_id=None, generation_id=1)
    join(g, "b", now=300, protocols=[("roundrobin", b"x")])
    assert g.state is ClassicState.COMPLETING_REBALANCE and g.generation_id == 2
    with pytest.raises(RebalanceInProgressError):
        g.check_commit(member_id="b", group_instance_id=None, generation_id=2)


def test_a_transactional_offset_commit_is_checked_against_the_classic_group():
    """KIP-447 from a Kafka client in a classic group (actors/group_classic.py
    ``txn_commit_request``): the generation and member are the classic group's; checked,
    they are dropped so the offsets core takes the commit as one without group metadata."""
    from types import SimpleNamespace

    from rillet.actors.group_classic import txn_commit_request
    from rillet.coordinator.groups.messages import TxnOffsetCommitRequest

    host = SimpleNamespace(groups={"g": stable_group("a", "b")})
    req = TxnOffsetCommitRequest(transactional_id="t", group_id="g", producer_id=1,
                                 producer_epoch=0, generation_id=1, member_id="a")
    checked = txn_commit_request(host, req)
    assert (checked.generation_id, checked.member_id, checked.instance_id) == (-1, "", None)
    with pytest.raises(IllegalGenerationError):  # a zombie of an older generation
        txn_commit_request(host, replace(req, generation_id=0))
    with pytest.raises(UnknownMemberIdError):
        txn_commit_request(host, replace(req, member_id="x"))
    plain = replace(req, generation_id=-1, member_id="")  # no group metadata: not checked
    assert txn_commit_request(host, plain) is plain
    other = replace(req, group_id="native")  # not a classic group: the native rules
    assert txn_commit_request(host, other) is other
