"""OffsetCommit / OffsetFetch fencing, simple commits, group deletion, describe and list."""

from __future__ import annotations

import pytest
from rillet.coordinator.groups import (
    CommitOffset,
    GroupState,
    OffsetCommitRequest,
    OffsetFetchRequest,
)
from rillet.coordinator.groups.errors import (
    FencedInstanceIdError,
    GroupIdNotFoundError,
    InvalidRequestError,
    NonEmptyGroupError,
    StaleMemberEpochError,
    UnknownMemberIdError,
)

from .harness import TP, Harness

pytestmark = pytest.mark.timeout(30)


def commit(h: Harness, member_id="", epoch=-1, group_id="g", instance_id=None, **offsets):
    req = OffsetCommitRequest(
        group_id=group_id, member_id=member_id, member_epoch=epoch, instance_id=instance_id,
        offsets={TP("t", int(p[1:])): CommitOffset(offset=o, metadata=f"m{o}")
                 for p, o in offsets.items()},
    )
    return h.run(h.gc.commit_offsets(h.state, req, h.now))


def fetch(h: Harness, group_id="g", **kw):
    return h.gc.fetch_offsets(h.state, OffsetFetchRequest(group_id=group_id, **kw)).offsets


def test_member_commits_with_its_current_epoch() -> None:
    h = Harness()
    a = h.ack(h.join("a"))
    h.now = 1234
    resp = commit(h, "a", a.member_epoch, p0=10, p1=20)
    assert resp.errors == {TP("t", 0): 0, TP("t", 1): 0}
    got = fetch(h)
    assert got[TP("t", 0)].offset == 10 and got[TP("t", 0)].metadata == "m10"
    assert got[TP("t", 1)].commit_timestamp_ms == 1234
    assert fetch(h, member_id="a", member_epoch=a.member_epoch,
                 partitions=(TP("t", 1), TP("t", 3))).keys() == {TP("t", 1)}
    assert h.replayed() == h.state


def test_commits_from_stale_unknown_or_fenced_members_are_rejected() -> None:
    h = Harness()
    a = h.ack(h.join("a"))
    h.join("b")  # group epoch 2; a is still at epoch 1 until its next heartbeat
    before = h.state
    with pytest.raises(StaleMemberEpochError) as info:
        commit(h, "a", a.member_epoch + 1, p0=1)
    assert info.value.code == 113
    with pytest.raises(UnknownMemberIdError):
        commit(h, "zombie", 1, p0=1)
    with pytest.raises(FencedInstanceIdError):
        commit(h, "a", a.member_epoch, instance_id="other", p0=1)
    with pytest.raises(StaleMemberEpochError):
        fetch(h, member_id="a", member_epoch=7)
    assert h.state is before
    # during revocation the member keeps its epoch and can still commit what it revokes
    h.hb("a", a.member_epoch, owned=a.assignment)
    assert commit(h, "a", a.member_epoch, p3=99).errors == {TP("t", 3): 0}


def test_simple_commit_only_while_the_group_is_empty() -> None:
    h = Harness()
    assert commit(h, p0=5).errors == {TP("t", 0): 0}  # creates the group
    assert h.gc.describe_group(h.state, "g").state is GroupState.EMPTY
    h.join("a")
    with pytest.raises(UnknownMemberIdError):
        commit(h, p0=6)
    h.hb("a", -1)
    assert commit(h, p0=7).errors == {TP("t", 0): 0}
    assert fetch(h)[TP("t", 0)].offset == 7


def test_metadata_too_large_fails_only_that_partition() -> None:
    h = Harness(offset_metadata_max_bytes=4)
    req = OffsetCommitRequest(group_id="g", offsets={
        TP("t", 0): CommitOffset(offset=1, metadata="ok"),
        TP("t", 1): CommitOffset(offset=1, metadata="much too long"),
    })
    resp = h.run(h.gc.commit_offsets(h.state, req, 0))
    assert resp.errors == {TP("t", 0): 0, TP("t", 1): 12}
    assert set(fetch(h)) == {TP("t", 0)}


def test_invalid_commits() -> None:
    h = Harness()
    with pytest.raises(InvalidRequestError):
        commit(h, p0=-5)
    with pytest.raises(InvalidRequestError):
        h.gc.commit_offsets(h.state, OffsetCommitRequest(group_id=""), 0)
    with pytest.raises(UnknownMemberIdError):
        commit(h, "a", 1, p0=1)  # no such group yet


def test_delete_group_only_when_empty() -> None:
    h = Harness()
    with pytest.raises(GroupIdNotFoundError):
        h.gc.delete_group(h.state, "g")
    a = h.ack(h.join("a"))
    commit(h, "a", a.member_epoch, p0=3)
    with pytest.raises(NonEmptyGroupError):
        h.gc.delete_group(h.state, "g")
    h.hb("a", -1)
    assert h.gc.list_groups(h.state)[0].state is GroupState.EMPTY
    h.run(h.gc.delete_group(h.state, "g"))
    assert "g" not in h.state.groups
    assert h.gc.describe_group(h.state, "g").state is GroupState.DEAD
    assert fetch(h) == {}
    assert h.replayed() == h.state
    # the name can be used again from scratch
    assert h.join("b").member_epoch == 1


def test_delete_offsets_refused_for_subscribed_topics() -> None:
    h = Harness(topics={"t": 2, "u": 1})
    a = h.ack(h.join("a"))
    commit(h, "a", a.member_epoch, p0=1)
    h.run(h.gc.commit_offsets(h.state, OffsetCommitRequest(
        group_id="g", member_id="a", member_epoch=a.member_epoch,
        offsets={TP("u", 0): CommitOffset(offset=4)}), 0))
    resp = h.run(h.gc.delete_offsets(h.state, "g", [TP("t", 0), TP("u", 0)]))
    assert resp.errors == {TP("t", 0): 86, TP("u", 0): 0}
    assert set(fetch(h)) == {TP("t", 0)}


def test_list_groups_with_state_filter() -> None:
    h = Harness()
    h.ack(h.join("a", group_id="busy"), group_id="busy")
    commit(h, group_id="idle", p0=1)
    listing = h.gc.list_groups(h.state)
    assert [(g.group_id, g.state) for g in listing] == [
        ("busy", GroupState.STABLE), ("idle", GroupState.EMPTY)]
    only_empty = h.gc.list_groups(h.state, frozenset({GroupState.EMPTY}))
    assert [g.group_id for g in only_empty] == ["idle"]


def test_offsets_of_deleted_topics_are_removed() -> None:
    h = Harness()
    commit(h, p0=1, p1=2)
    commit(h, group_id="other", p2=3)
    removed = h.run(h.gc.delete_topic_offsets(h.state, ["t", "unrelated"]))
    assert removed == 3
    assert fetch(h) == {} and fetch(h, group_id="other") == {}
    assert h.replayed() == h.state


def test_offsets_of_empty_groups_expire_after_retention() -> None:
    h = Harness(offsets_retention_ms=1000)
    commit(h, group_id="idle", p0=1)
    a = h.ack(h.join("a", group_id="busy"), group_id="busy")
    commit(h, "a", a.member_epoch, group_id="busy", p1=5)
    h.now = 500
    commit(h, group_id="idle", p1=2)
    assert h.run(h.gc.expire_offsets(h.state, 999)) == ()
    assert h.run(h.gc.expire_offsets(h.state, 1000)) == ()
    assert set(fetch(h, group_id="idle")) == {TP("t", 1)}
    assert set(fetch(h, group_id="busy")) == {TP("t", 1)}  # members: never expired
    assert h.run(h.gc.expire_offsets(h.state, 1500)) == ("idle",)
    assert "idle" not in h.state.groups and "busy" in h.state.groups
    assert h.replayed() == h.state
