"""Plain-data message forms (strict decoding), the hard-state file, committed reads."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator.raft import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    HardState,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    InvalidMessageError,
    LogEntry,
    RaftConfig,
    Snapshot,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    decode_hard_state,
    encode_hard_state,
    message_from_dict,
    message_to_dict,
)

from tests.sim.raft_harness import Harness

MESSAGES = [
    VoteRequest(src=1, dst=2, term=3, last_log_index=9, last_log_term=2, pre_vote=True),
    VoteResponse(src=2, dst=1, term=3, granted=True, pre_vote=False),
    AppendEntriesRequest(
        src=1,
        dst=2,
        term=3,
        prev_log_index=4,
        prev_log_term=2,
        entries=(LogEntry(3, b"a"), LogEntry(3, b"", control=True)),
        leader_commit=4,
    ),
    AppendEntriesResponse(src=2, dst=1, term=3, success=False, hint_index=2, rejected_index=4),
    InstallSnapshotRequest(src=1, dst=3, term=3, snapshot=Snapshot(7, 2, b"img"), leader_commit=9),
    InstallSnapshotResponse(src=3, dst=1, term=3, match_index=7),
    TimeoutNow(src=1, dst=2, term=3),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message):
    data = message_to_dict(message)
    assert data["type"] == type(message).__name__
    assert message_from_dict(data) == message


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(type="Nope"), "unknown message type"),
        (lambda d: d.pop("term"), "fields must be exactly"),
        (lambda d: d.update(extra=1), "fields must be exactly"),
        (lambda d: d.update(term=True), "term must be a non-negative int64"),
        (lambda d: d.update(term=-1), "term must be a non-negative int64"),
        (lambda d: d.update(term=1 << 70), "term must be a non-negative int64"),
        (lambda d: d.update(entries="xx"), "entries must be a list"),
        (lambda d: d.update(entries=[[1, "str", False]]), "entry payload must be bytes"),
        (lambda d: d.update(entries=[[1, b"x"]]), "an entry must be"),
        (lambda d: d.update(entries=[[1, b"x", 0]]), "entry control must be a bool"),
    ],
)
def test_strict_decoding(change, reason):
    data = message_to_dict(MESSAGES[2])
    change(data)
    with pytest.raises(InvalidMessageError, match=reason):
        message_from_dict(data)


def test_not_a_map():
    with pytest.raises(InvalidMessageError, match="not a map"):
        message_from_dict([1, 2])


def test_hard_state_file():
    for state in (HardState(), HardState(7, 2)):
        assert decode_hard_state(encode_hard_state(state)) == state
    for bad in (b"", b"{", b'{"version": 2}', b'{"version": 1, "term": "x", "voted_for": null}'):
        with pytest.raises(ValueError, match="raft hard state"):
            decode_hard_state(bad)


def test_read_committed_serves_a_snapshot_then_entries():
    config = RaftConfig(election_timeout_ms=100, heartbeat_interval_ms=20, snapshot_threshold=4)
    h = Harness(3, config=config)
    h.elect(1)
    for i in range(6):
        h.propose(1, f"k{i}=v".encode())
        h.deliver_all()
    leader = h.nodes[1]
    base = leader.log.snapshot_index
    assert base > 0
    snap, first, entries = leader.read_committed(1, 100)
    assert snap is not None and snap.index == base and first == base + 1
    assert first + len(entries) - 1 == leader.commit_index
    snap, first, entries = leader.read_committed(leader.commit_index, 1)
    assert snap is None and first == leader.commit_index and len(entries) == 1
    assert leader.read_committed(leader.commit_index + 1, 10) == (None, leader.commit_index + 1, [])


_names = sorted({k for m in MESSAGES for k in message_to_dict(m)})
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 1 << 64)
    | st.binary(max_size=8)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(MESSAGES),
    edits=st.dictionaries(st.sampled_from(_names), _values, max_size=3),
)
def test_decoder_never_raises_anything_but_invalid_message(base, edits):
    data = message_to_dict(base)
    data.update(edits)
    try:
        message = message_from_dict(data)
    except InvalidMessageError:
        return
    assert message_from_dict(message_to_dict(message)) == message
