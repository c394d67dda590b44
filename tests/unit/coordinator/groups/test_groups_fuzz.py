"""Whatever a client sends, the core answers a typed Kafka error or a result: never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator.groups import (
    CommitOffset,
    ConsumerGroupHeartbeatRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
)
from rillet.coordinator.groups.errors import GroupError, IllegalTransition, InvalidRequestError
from rillet.coordinator.groups.records import from_kv

from .harness import TP, Harness

pytestmark = pytest.mark.timeout(60)

names = st.sampled_from(["", "a", "b", "c", "t", "u", "g"])
tps_ = st.frozensets(st.builds(TP, st.sampled_from(["", "t", "u"]), st.integers(-2, 5)),
                     max_size=4)
heartbeats = st.builds(
    ConsumerGroupHeartbeatRequest,
    group_id=st.sampled_from(["g", "", "h"]),
    member_id=names,
    member_epoch=st.integers(-3, 6),
    instance_id=st.one_of(st.none(), st.sampled_from(["", "i1", "i2"])),
    rebalance_timeout_ms=st.integers(-1, 5000),
    subscribed_topic_names=st.one_of(st.none(), st.lists(names, max_size=3).map(tuple)),
    subscribed_topic_regex=st.one_of(st.none(), st.sampled_from(["", "t.*", "(", "[a-", "u"])),
    server_assignor=st.one_of(st.none(), st.sampled_from(["uniform", "range", "x"])),
    owned_partitions=st.one_of(st.none(), tps_),
)
commits = st.builds(
    OffsetCommitRequest,
    group_id=st.sampled_from(["g", ""]),
    member_id=names,
    member_epoch=st.integers(-2, 6),
    instance_id=st.one_of(st.none(), st.sampled_from(["i1", "i2"])),
    offsets=st.dictionaries(st.builds(TP, st.sampled_from(["", "t"]), st.integers(-1, 3)),
                            st.builds(CommitOffset, offset=st.integers(-1, 9),
                                      metadata=st.text(max_size=5)), max_size=3),
)


@settings(max_examples=200)
@given(st.lists(st.one_of(heartbeats, commits, st.integers(0, 100_000)), max_size=30))
def test_random_requests_get_typed_errors_or_results(requests) -> None:
    h = Harness(topics={"t": 3, "u": 1}, session_timeout_ms=10_000)
    for req in requests:
        try:
            if isinstance(req, int):
                h.tick(h.now + req)
            elif isinstance(req, OffsetCommitRequest):
                h.run(h.gc.commit_offsets(h.state, req, h.now))
                h.gc.fetch_offsets(h.state, OffsetFetchRequest(group_id=req.group_id))
            else:
                h.hb(req.member_id, req.member_epoch, group_id=req.group_id,
                     owned=req.owned_partitions,
                     **{k: getattr(req, k) for k in (
                         "instance_id", "rebalance_timeout_ms", "subscribed_topic_names",
                         "subscribed_topic_regex", "server_assignor")})
        except IllegalTransition:
            raise
        except GroupError as err:
            assert err.code > 0
        h.assert_no_double_ownership()
    assert h.replayed() == h.state


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)


weird = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.booleans(), st.floats())


@given(
    names=st.lists(weird, max_size=3).map(tuple),
    owned=st.frozensets(st.tuples(weird, weird) | st.tuples(weird), max_size=3),
    regex=weird, epoch=weird, client_id=weird,
    offsets=st.dictionaries(st.tuples(weird, weird), st.builds(
        CommitOffset, offset=weird, leader_epoch=weird, metadata=weird), max_size=2),
)
def test_ill_typed_requests_get_invalid_request(names, owned, regex, epoch, client_id,
                                                offsets) -> None:
    h = Harness()
    reqs = [
        ConsumerGroupHeartbeatRequest(
            group_id="g", member_id="a", member_epoch=0, rebalance_timeout_ms=100,
            subscribed_topic_names=names, subscribed_topic_regex=regex),
        ConsumerGroupHeartbeatRequest(
            group_id="g", member_id="a", member_epoch=epoch, owned_partitions=owned,
            client_id=client_id),
    ]
    for req in reqs:
        try:
            h.run(h.gc.heartbeat(h.state, req, h.topics, 0))
        except IllegalTransition:
            raise
        except GroupError:
            pass
    try:
        h.run(h.gc.commit_offsets(h.state, OffsetCommitRequest(group_id="g", offsets=offsets), 0))
    except IllegalTransition:
        raise
    except GroupError:
        pass
    assert h.replayed() == h.state


@given(st.dictionaries(st.sampled_from(["type", "group_id", "member_id", "topic",
                                        "partition"]), json_like),
       st.one_of(st.none(), st.dictionaries(st.text(max_size=12), json_like, max_size=6)))
def test_garbage_records_raise_invalid_request(key, value) -> None:
    try:
        from_kv(key, value)
    except InvalidRequestError:
        pass


def test_a_boolean_offset_or_leader_epoch_is_refused_as_the_replay_would() -> None:
    """Hypothesis found it: True/False passed isinstance(int) on commit, and the record
    written then failed the replay's integer check (records.py ``_int``)."""
    for bad in (CommitOffset(offset=False, leader_epoch=0, metadata=""),
                CommitOffset(offset=0, leader_epoch=False, metadata="")):
        h = Harness()
        with pytest.raises(InvalidRequestError):
            h.gc.commit_offsets(h.state, OffsetCommitRequest(
                group_id="g", offsets={("t", 0): bad}), 0)
        assert h.replayed() == h.state
