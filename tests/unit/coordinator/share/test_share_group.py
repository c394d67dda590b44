"""Share-group membership (coordinator/share/group.py) and the simple assignor, pure."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator import groups as G
from rillet.coordinator.groups.errors import (
    FencedMemberEpochError,
    GroupIdNotFoundError,
    GroupMaxSizeReachedError,
    InconsistentGroupProtocolError,
    InvalidRequestError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)
from rillet.coordinator.share import group as SG
from rillet.coordinator.share.assignor import simple_assign
from rillet.coordinator.share.config import ShareGroupConfig
from rillet.coordinator.share.group_model import ShareGroups

from tests.support import examples

CFG = ShareGroupConfig(session_timeout_ms=1000, heartbeat_interval_ms=100, max_size=3)
TOPICS = {"t": 2}


def hb(state, mid, epoch, topics=TOPICS, now=0, names=("t",), gid="g", **kw):
    req = SG.ShareHeartbeat(group_id=gid, member_id=mid, member_epoch=epoch,
                            subscribed_topic_names=names if epoch == 0 else kw.pop("sub", None),
                            **kw)
    return SG.heartbeat(state, req, topics, now, CFG)


def replayed(state: ShareGroups, records) -> ShareGroups:
    """What a new coordinator rebuilds from the records (through the group records' codec)."""
    pairs = [G.to_kv(r) for r in records]
    return G.replay_kv(pairs).share


def test_three_members_on_two_partitions_share_them_and_cover_all() -> None:
    state, log = ShareGroups(), []
    epochs = {}
    for mid in ("a", "b", "c"):
        r = hb(state, mid, 0)
        state, log = r.state, log + list(r.records)
        epochs[mid] = r.response.member_epoch
    assert state.groups["g"].group_epoch == 3
    # the earlier members hear the new epoch and assignment on their next heartbeat
    got = {}
    for mid in ("a", "b", "c"):
        r = hb(state, mid, epochs[mid])
        state, log = r.state, log + list(r.records)
        assert r.response.member_epoch == 3
        got[mid] = r.response.assignment if epochs[mid] != 3 else state.groups["g"].assignment[mid]
    assert set().union(*got.values()) == {("t", 0), ("t", 1)}
    assert all(len(ps) == 1 for ps in got.values())
    # nothing new: no records, no assignment
    r = hb(state, "a", 3)
    assert r.records == () and r.response.assignment is None
    assert replayed(ShareGroups(), log).groups["g"].members == state.groups["g"].members


def test_leave_and_session_timeout_reassign() -> None:
    state = ShareGroups()
    for i, mid in enumerate(("a", "b")):
        state = hb(state, mid, 0, now=i).state
    state = hb(state, "a", 1, now=500).state  # a hears epoch 2
    r = SG.tick(state, 1000)  # b's session (joined at 1) ends at 1001
    assert r.response == ()
    r = SG.tick(state, 1001)
    assert r.response == (SG.FencedMember("g", "b"),)
    group = r.state.groups["g"]
    assert set(group.members) == {"a"} and group.group_epoch == 3
    assert group.assignment["a"] == {("t", 0), ("t", 1)}
    with pytest.raises(UnknownMemberIdError):
        hb(r.state, "b", 2, now=1002)
    state = hb(r.state, "a", 2, now=1002).state  # a hears epoch 3 and both partitions
    r = hb(state, "a", -1)
    assert r.response.member_epoch == -1 and r.state.groups["g"].state == "Empty"
    assert r.state.next_deadline_ms() is None


def test_epochs_fencing_and_lost_answers() -> None:
    state = hb(ShareGroups(), "a", 0).state
    state = hb(state, "b", 0).state  # group epoch 2; a still at 1
    r = hb(state, "a", 1)
    assert r.response.member_epoch == 2 and r.response.assignment == {("t", 0)}
    # the answer was lost: a asks again with epoch 1 and gets the same again
    r2 = hb(r.state, "a", 1)
    assert r2.response.member_epoch == 2 and r2.response.assignment == {("t", 0)}
    with pytest.raises(FencedMemberEpochError):
        hb(r.state, "a", 7)
    with pytest.raises(UnknownMemberIdError):
        hb(r.state, "zzz", 2)
    # a rejoin with epoch 0 keeps the member and answers its assignment
    r3 = hb(r.state, "a", 0)
    assert r3.response.member_epoch == 2 and r3.response.assignment == {("t", 0)}


def test_subscription_and_partition_count_changes_bump_the_epoch() -> None:
    state = hb(ShareGroups(), "a", 0).state
    r = hb(state, "a", 1, sub=("t", "u"), topics={"t": 2, "u": 1})
    assert r.response.member_epoch == 2 and r.response.assignment == {("t", 0), ("t", 1),
                                                                      ("u", 0)}
    r = SG.on_metadata(r.state, {"t": 3, "u": 1})
    assert r.state.groups["g"].group_epoch == 3 and r.records
    assert SG.on_metadata(r.state, {"t": 3, "u": 1}).records == ()
    r = hb(r.state, "a", 2, topics={"t": 3, "u": 1})
    assert ("t", 2) in r.response.assignment


def test_max_size_bad_requests_and_inconsistent_protocol() -> None:
    state = ShareGroups()
    for mid in ("a", "b", "c"):
        state = hb(state, mid, 0).state
    with pytest.raises(GroupMaxSizeReachedError):
        hb(state, "d", 0)
    with pytest.raises(InvalidRequestError):
        hb(state, "", 0)
    with pytest.raises(InvalidRequestError):
        SG.heartbeat(state, SG.ShareHeartbeat(group_id="g", member_id="x", member_epoch=0),
                     TOPICS, 0, CFG)
    with pytest.raises(InvalidRequestError):
        hb(state, "a", -2)
    with pytest.raises(InconsistentGroupProtocolError):
        SG.heartbeat(ShareGroups(), SG.ShareHeartbeat(group_id="cg", member_id="x",
                                                      member_epoch=0,
                                                      subscribed_topic_names=("t",)),
                     TOPICS, 0, CFG, consumer_groups={"cg"})
    assert len(state.groups["g"].members) == 3 and "d" not in state.session_deadlines["g"]


def test_delete_only_an_empty_group_and_replay_forgets_it() -> None:
    r = hb(ShareGroups(), "a", 0)
    log = list(r.records)
    with pytest.raises(NonEmptyGroupError):
        SG.delete_group(r.state, "g")
    with pytest.raises(GroupIdNotFoundError):
        SG.delete_group(r.state, "nope")
    r = hb(r.state, "a", -1)
    log += r.records
    assert replayed(ShareGroups(), log).groups["g"].state == "Empty"
    d = SG.delete_group(r.state, "g")
    log += d.records
    assert d.state.groups == {} and replayed(ShareGroups(), log).groups == {}
    assert SG.group_state(d.state, "g") == "Dead"


def test_failover_keeps_epoch_members_and_assignment() -> None:
    state, log = ShareGroups(), []
    for mid in ("a", "b", "c"):
        r = hb(state, mid, 0)
        state, log = r.state, log + list(r.records)
    loaded = SG.on_loaded(replayed(ShareGroups(), log), 5000, lambda gid: CFG)
    assert loaded.groups["g"].assignment == state.groups["g"].assignment
    assert loaded.groups["g"].group_epoch == 3
    assert loaded.session_deadlines == {"g": {m: 6000 for m in "abc"}}
    r = hb(loaded, "c", 3, now=5001)  # c heard epoch 3 before the failover: carries on
    assert r.records == () and r.response.member_epoch == 3


def test_share_records_decode_strictly() -> None:
    with pytest.raises(InvalidRequestError):
        G.from_kv({"type": "share_member", "group_id": "g"}, {"member_epoch": 1})
    with pytest.raises(InvalidRequestError):
        G.from_kv({"type": "share_group_metadata", "group_id": "g"},
                  {"epoch": "1", "topics": []})


# --------------------------------------------------------------------------- the assignor

members_st = st.lists(st.sampled_from("abcdefghij"), min_size=0, max_size=10, unique=True)
topics_st = st.dictionaries(st.sampled_from(["t", "u", "v", "w"]), st.integers(0, 12),
                            max_size=4)


@settings(max_examples=examples(100), deadline=None)
@given(members=members_st, topics=topics_st, data=st.data())
def test_every_partition_assigned_to_a_subscriber(members, topics, data) -> None:
    names = sorted(topics) + ["missing"]
    subs = {m: tuple(data.draw(st.lists(st.sampled_from(names), unique=True))) for m in members}
    out = simple_assign(subs, topics)
    assert set(out) == set(members)
    for m, ps in out.items():
        assert all(t in subs[m] and 0 <= p < topics[t] for t, p in ps)
    for t, n in topics.items():
        if any(t in s for s in subs.values()):
            assert {p for ps in out.values() for tt, p in ps if tt == t} == set(range(n))
    assert simple_assign(subs, topics) == out  # deterministic


@settings(max_examples=examples(100), deadline=None)
@given(members=members_st.filter(bool), topics=topics_st)
def test_same_subscriptions_are_balanced(members, topics) -> None:
    subs = {m: tuple(topics) for m in members}
    out = simple_assign(subs, topics)
    loads = [len(ps) for ps in out.values()]
    assert max(loads) - min(loads) <= 1
    for t, n in topics.items():
        if n:
            sharing = [sum((t, p) in ps for ps in out.values()) for p in range(n)]
            assert max(sharing) - min(sharing) <= 1
