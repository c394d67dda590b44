"""Records: plain-dict encoding, decoding, and replay == live state (also after compaction)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator.groups import CommitOffset, MemberState, OffsetCommitRequest
from rillet.coordinator.groups.errors import GroupError, InvalidRequestError
from rillet.coordinator.groups.records import (
    CurrentMemberRecord,
    GroupMetadataRecord,
    MemberMetadataRecord,
    OffsetCommitRecord,
    PartitionMetadataRecord,
    TargetMemberRecord,
    TargetMetadataRecord,
    Tombstone,
    from_kv,
    key_of,
    replay,
    to_kv,
)

from .harness import TP, Harness, tps

pytestmark = pytest.mark.timeout(60)

SAMPLES = [
    GroupMetadataRecord(group_id="g", epoch=3),
    PartitionMetadataRecord(group_id="g", topics=(("t", 4), ("u", 1))),
    MemberMetadataRecord(
        group_id="g", member_id="m", instance_id="i", rack_id=None, client_id="c",
        client_host="/h", subscribed_topic_names=("t",), subscribed_topic_regex="u.*",
        rebalance_timeout_ms=1000, server_assignor=None,
    ),
    TargetMemberRecord(group_id="g", member_id="m", partitions=tps("t:0,1 u:0")),
    TargetMetadataRecord(group_id="g", assignment_epoch=3),
    CurrentMemberRecord(
        group_id="g", member_id="m", member_epoch=3, previous_member_epoch=2,
        state=MemberState.UNREVOKED_PARTITIONS, assigned=tps("t:0"),
        pending_revocation=tps("t:1"),
    ),
    OffsetCommitRecord(group_id="g", topic="t", partition=2, offset=7, leader_epoch=1,
                       metadata="x", commit_timestamp_ms=5),
    Tombstone(type="offset_commit", group_id="g", topic="t", partition=2),
    Tombstone(type="current_member", group_id="g", member_id="m"),
]


def _plain(v) -> bool:
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    if isinstance(v, list):
        return all(_plain(x) for x in v)
    return v is None or isinstance(v, str | int | bytes)


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip_through_plain_dicts(record) -> None:
    key, value = to_kv(record)
    assert _plain(key) and (value is None or _plain(value))
    assert from_kv(key, value) == record
    assert key_of(record) == key


def test_tombstone_has_the_key_of_what_it_deletes() -> None:
    assert key_of(Tombstone(type="offset_commit", group_id="g", topic="t", partition=2)) == \
        key_of(SAMPLES[6])


@pytest.mark.parametrize("key, value", [
    ({"type": "nope", "group_id": "g"}, {}),
    ({"type": "group_metadata"}, {"epoch": 1}),
    ({"type": "group_metadata", "group_id": "g"}, {"epoch": "1"}),
    ({"type": "offset_commit", "group_id": "g", "topic": "t", "partition": True}, None),
    ({"type": "target_member", "group_id": "g", "member_id": "m"}, {"partitions": "x"}),
    ({"type": "current_member", "group_id": "g", "member_id": "m"},
     {"member_epoch": 1, "previous_member_epoch": 0, "state": "weird", "assigned": [],
      "pending_revocation": []}),
])
def test_malformed_records_raise_a_typed_error(key, value) -> None:
    with pytest.raises(InvalidRequestError):
        from_kv(key, value)


def compact(log):
    """What log compaction keeps: the last record of each key, in log order."""
    last = {}
    for i, r in enumerate(log):
        last[repr(sorted(key_of(r).items()))] = i
    keep = sorted(last.values())
    return [log[i] for i in keep]


MEMBERS = ["a", "b", "c", "d"]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.sampled_from(MEMBERS), st.sampled_from(["t", "u", "tu"])),
        st.tuples(st.just("ack"), st.sampled_from(MEMBERS), st.booleans()),
        st.tuples(st.just("leave"), st.sampled_from(MEMBERS), st.booleans()),
        st.tuples(st.just("commit"), st.sampled_from(MEMBERS), st.integers(0, 3)),
        st.tuples(st.just("tick"), st.just(""), st.integers(0, 3000)),
        st.tuples(st.just("grow"), st.sampled_from(["t", "u", "v"]), st.integers(1, 2)),
        st.tuples(st.just("delete"), st.just(""), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(ops)
def test_replay_of_emitted_records_equals_live_state(script) -> None:
    h = Harness(topics={"t": 3, "u": 2}, session_timeout_ms=2000)
    last: dict = {}
    statics = {"c": "inst-c", "d": "inst-d"}
    for op, who, arg in script:
        try:
            if op == "join":
                names = tuple(arg)
                last[who] = h.join(who, subscribed_topic_names=names,
                                   instance_id=statics.get(who))
            elif op == "ack" and who in last:
                r = last[who]
                owned = r.assignment if arg else frozenset()
                last[who] = h.hb(who, r.member_epoch, owned=owned, instance_id=statics.get(who))
            elif op == "leave" and who in last:
                epoch = -2 if arg and who in statics else -1
                h.hb(who, epoch, instance_id=statics.get(who))
                last.pop(who)
            elif op == "commit" and who in last:
                h.run(h.gc.commit_offsets(h.state, OffsetCommitRequest(
                    group_id="g", member_id=who, member_epoch=last[who].member_epoch,
                    offsets={TP("t", arg % 3): CommitOffset(offset=arg)}), h.now))
            elif op == "tick":
                h.tick(h.now + arg)
            elif op == "grow":
                h.topics[who] = h.topics.get(who, 0) + arg
                h.run(h.gc.on_metadata(h.state, h.topics, h.now))
            elif op == "delete":
                h.run(h.gc.delete_group(h.state, "g"))
        except GroupError as err:
            assert err.code != -1, f"internal error: {err}"
        h.assert_no_double_ownership()
    assert h.replayed() == h.state
    assert replay(compact(h.log)) == h.state
