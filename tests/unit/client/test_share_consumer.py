"""The ShareConsumer: acknowledgement bookkeeping (pure) and the client against a fake
share-group broker (the real semantics: tests/integration/test_share_consumer.py)."""

from __future__ import annotations

import time

import pytest
from rillet.transport import protocol as P

from rillet import AcknowledgeType, Producer, ShareConsumer
from rillet._share_acks import Acknowledgements, Settled, final_ranges, to_batches
from rillet._share_fetcher import Delivery
from rillet.errors import (
    ConfigError,
    IllegalStateError,
    RilletError,
    RilletTimeoutError,
    UnknownServerError,
)
from rillet.records import TopicPartition
from tests.unit.client.fakeshare import FakeShareBroker

TP = TopicPartition("q", 0)

# -- bookkeeping -----------------------------------------------------------------------------


def test_to_batches_merges_runs_and_splits_on_delay_and_reason() -> None:
    acks = [(5, P.ACK_ACCEPT, -1, ""), (3, P.ACK_ACCEPT, -1, ""), (4, P.ACK_GAP, -1, ""),
            (6, P.ACK_RELEASE, 100, ""), (7, P.ACK_RELEASE, 100, ""),
            (8, P.ACK_REJECT, -1, "bad"), (10, P.ACK_ACCEPT, -1, "")]
    assert to_batches(acks) == (
        P.AcknowledgementBatch(first_offset=3, last_offset=5,
                               acknowledge_types=(P.ACK_ACCEPT, P.ACK_GAP, P.ACK_ACCEPT)),
        P.AcknowledgementBatch(first_offset=6, last_offset=7,
                               acknowledge_types=(P.ACK_RELEASE,), delay_ms=100),
        P.AcknowledgementBatch(first_offset=8, last_offset=8,
                               acknowledge_types=(P.ACK_REJECT,), reason="bad"),
        P.AcknowledgementBatch(first_offset=10, last_offset=10,
                               acknowledge_types=(P.ACK_ACCEPT,)))


def test_implicit_settle_accepts_whole_ranges_with_gaps() -> None:
    a = Acknowledgements(explicit=False)
    a.delivered(TP, 0, 4, [0, 1, 3, 4])  # offset 2 has no record (a marker)
    a.delivered(TP, 10, 19, list(range(10, 20)))
    assert a.unacknowledged() == 14
    a.settle()
    assert a.unacknowledged() == 0 and not a.outstanding
    assert a.take() == {TP: (
        P.AcknowledgementBatch(first_offset=0, last_offset=4, acknowledge_types=(
            P.ACK_ACCEPT, P.ACK_ACCEPT, P.ACK_GAP, P.ACK_ACCEPT, P.ACK_ACCEPT)),
        P.AcknowledgementBatch(first_offset=10, last_offset=19,
                               acknowledge_types=(P.ACK_ACCEPT,)))}
    assert a.take() == {}


def test_explicit_acks_validate_and_check_all() -> None:
    a = Acknowledgements(explicit=True)
    a.delivered(TP, 0, 3, [0, 1, 3])
    with pytest.raises(IllegalStateError, match="not held"):
        a.acknowledge(TP, 2, P.ACK_ACCEPT, -1, "")  # a gap: no record was delivered
    with pytest.raises(IllegalStateError, match="not held"):
        a.acknowledge(TopicPartition("q", 1), 0, P.ACK_ACCEPT, -1, "")
    a.acknowledge(TP, 0, P.ACK_ACCEPT, -1, "")
    with pytest.raises(IllegalStateError, match="not held"):
        a.acknowledge(TP, 0, P.ACK_REJECT, -1, "")  # twice
    a.acknowledge(TP, 1, P.ACK_RENEW, -1, "")
    with pytest.raises(IllegalStateError, match="1 record"):
        a.check_all()  # offset 3 is owed; the renewed 1 is not
    a.acknowledge(TP, 3, P.ACK_RELEASE, 250, "")
    a.check_all()
    batches = a.take()[TP]
    # the gap (2) goes out as ACK_GAP; renew keeps 1 held
    assert [(b.first_offset, b.last_offset, b.acknowledge_types, b.delay_ms) for b in batches
            ] == [(0, 2, (P.ACK_ACCEPT, P.ACK_RENEW, P.ACK_GAP), -1), (3, 3, (P.ACK_RELEASE,), 250)]
    assert a.holds(TP, 1)
    a.acknowledge(TP, 1, P.ACK_ACCEPT, -1, "")
    assert not a.outstanding


def test_implicit_settle_keeps_renewed_records() -> None:
    a = Acknowledgements(explicit=False)
    a.delivered(TP, 0, 2, [0, 1, 2])
    a.acknowledge(TP, 1, P.ACK_RENEW, -1, "")
    a.settle()
    assert a.holds(TP, 1) and not a.holds(TP, 0)
    kinds = {o: k for b in a.take()[TP] for o, k in zip(
        range(b.first_offset, b.last_offset + 1),
        b.acknowledge_types * (b.last_offset - b.first_offset + 1)
        if len(b.acknowledge_types) == 1 else b.acknowledge_types, strict=True)}
    assert kinds == {0: P.ACK_ACCEPT, 1: P.ACK_RENEW, 2: P.ACK_ACCEPT}


# -- the client against a fake share broker ---------------------------------------------------


@pytest.fixture
def share_broker():
    b = FakeShareBroker().start()
    b.create("q", 2)
    try:
        yield b
    finally:
        b.close()


def _produce(address: str, n: int) -> None:
    with Producer({"bootstrap.servers": address, "linger.ms": 0}) as producer:
        for i in range(n):
            producer.send("q", value=f"v{i}".encode(), partition=i % 2)
        producer.flush(10)


def _poll_until(consumer, n: int, timeout_s: float = 10.0) -> list:
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out.extend(consumer.poll(timeout_ms=200))
    return out


def _consumer(broker, **kw) -> ShareConsumer:
    c = ShareConsumer(bootstrap_servers=broker.address, group_id="g", **kw)
    c.subscribe(["q"])
    return c


def _explicit_consumer_of_four(share_broker) -> tuple[ShareConsumer, list]:
    """Four records on q-0 and q-1 and an explicit-mode consumer whose acknowledgement
    callback records ``(offsets, error)`` in the list returned with it."""
    _produce(share_broker.address, 4)
    c = _consumer(share_broker, share_acknowledgement_mode="explicit")
    seen: list = []
    c.set_acknowledgement_commit_callback(lambda offsets, error: seen.append((offsets, error)))
    return c, seen


def test_implicit_mode_accepts_the_previous_poll_on_the_next(share_broker) -> None:
    _produce(share_broker.address, 6)
    c = _consumer(share_broker)
    try:
        records = _poll_until(c, 6)
        assert sorted(r.value for r in records) == [f"v{i}".encode() for i in range(6)]
        assert all(r.delivery_count == 1 for r in records)
        assert c.assignment() == {TopicPartition("q", 0), TopicPartition("q", 1)}
        assert c.commit_sync() == {TopicPartition("q", 0): None, TopicPartition("q", 1): None}
        accepted = {(t, p, o) for api, t, p, o, k, _, _ in share_broker.ack_log
                    if k == P.ACK_ACCEPT}
        assert accepted == {("q", r.partition, r.offset) for r in records}
        assert c.poll(timeout_ms=100) == []
    finally:
        c.close()
    assert share_broker.members == {}  # left the group


def test_explicit_acks_ride_on_the_next_fetch(share_broker) -> None:
    _produce(share_broker.address, 4)
    c = _consumer(share_broker)
    try:
        records = _poll_until(c, 4)
        by_value = {r.value: r for r in records}
        c.acknowledge(by_value[b"v0"], AcknowledgeType.ACCEPT)
        c.acknowledge(by_value[b"v1"], "release", delay_ms=0)
        c.acknowledge(by_value[b"v2"], "reject", reason="poison")
        with pytest.raises(IllegalStateError, match="not acknowledged"):
            c.poll(timeout_ms=0)  # v3 is owed (explicit mode since acknowledge())
        c.acknowledge(by_value[b"v3"], "release")
        again = _poll_until(c, 2)
        assert sorted((r.value, r.delivery_count) for r in again) == [(b"v1", 2), (b"v3", 2)]
        log = {(o, p): (k, d, why) for api, t, p, o, k, d, why in share_broker.ack_log}
        assert log[(by_value[b"v0"].offset, 0)] == (P.ACK_ACCEPT, -1, "")
        assert log[(by_value[b"v1"].offset, 1)] == (P.ACK_RELEASE, 0, "")
        assert log[(by_value[b"v2"].offset, 0)] == (P.ACK_REJECT, -1, "poison")
        assert log[(by_value[b"v3"].offset, 1)] == (P.ACK_RELEASE, -1, "")  # group back-off
        # with a prefetch in flight, acknowledgements go by ShareAcknowledge at the next poll
        assert {api for api, *_ in share_broker.ack_log} <= {"ShareFetch", "ShareAcknowledge"}
        for r in again:
            c.acknowledge(r)
    finally:
        c.close()


def test_final_ranges_are_the_accepted_and_rejected_runs() -> None:
    def batch(first, last, *types):
        return P.AcknowledgementBatch(first_offset=first, last_offset=last,
                                      acknowledge_types=types)

    whole = batch(10, 14, P.ACK_ACCEPT)
    released = batch(20, 24, P.ACK_RELEASE)
    mixed = batch(30, 34, P.ACK_ACCEPT, P.ACK_ACCEPT, P.ACK_RELEASE, P.ACK_GAP, P.ACK_REJECT)
    assert final_ranges([whole, released, mixed]) == [(10, 14), (30, 31), (34, 34)]


def test_settled_offsets_are_cut_out_of_deliveries_until_they_are_pruned() -> None:
    s = Settled(keep_s=5)
    records = [("q", 0, o, None, None, b"v", (), 0, 2) for o in (0, 1, 3, 4, 5)]  # 2: a gap
    d = Delivery(TP, 0, 5, records)
    assert s.without(d) == [d] and not s
    s.add(TP, [(1, 1), (4, 4)], now=100)
    pieces = s.without(d)
    assert [(p.first, p.last, [r[2] for r in p.records]) for p in pieces] == [
        (0, 0, [0]), (2, 3, [3]), (5, 5, [5])]  # the gap at 2 stays with its piece
    assert s.without(Delivery(TopicPartition("q", 1), 0, 5, records)) != pieces  # per partition
    s.prune(104.9)
    assert len(s.without(d)) == 3
    s.prune(105)
    assert s.without(d) == [d] and not s


def test_a_later_delivery_the_acknowledgement_applied_to_is_not_handed_out(share_broker) -> None:
    """A prefetched delivery of records this member still holds (their locks expired, the
    leader handed them to the same member again) is consumed by the member's accept of its
    older copy: the leader applies it to the later delivery. That delivery, already
    buffered, must not reach the application (test_share_faults saw an accepted record
    again under load)."""
    _produce(share_broker.address, 6)
    c = _consumer(share_broker, share_acknowledgement_mode="explicit")
    try:
        records = _poll_until(c, 6)
        assert all(r.delivery_count == 1 for r in records)
        # the locks of partition 0 expire; the parked prefetch acquires them again for us
        state = share_broker.records[("q", 0)]
        for rec in state.values():
            rec[0], rec[2] = "available", None
        deadline = time.monotonic() + 5
        while not all(rec[0] == "acquired" and rec[1] == 2 for rec in state.values()):
            assert time.monotonic() < deadline, "the prefetch did not acquire them again"
            time.sleep(0.01)
        for r in records:
            c.acknowledge(r)  # the application accepts what it holds: the older copies
        assert c.commit_sync() == {TopicPartition("q", 0): None, TopicPartition("q", 1): None}
        assert all(rec[0] == "done" for rec in state.values())  # applied to the later ones
        assert c.poll(timeout_ms=300) == []  # not shown again
    finally:
        c.close()


def test_commit_sync_reports_its_own_acknowledgements_only(share_broker) -> None:
    """commit_sync answers for the acknowledgements it sent: an older request answered
    meanwhile goes to the callback, and one of its own not answered in time is a timeout,
    never a success (test_share_faults saw records its worker logged as accepted after a
    timed-out commit come again: the older commit's success had been returned for them)."""
    c, seen = _explicit_consumer_of_four(share_broker)
    q0, q1 = TopicPartition("q", 0), TopicPartition("q", 1)
    try:
        records = _poll_until(c, 4)
        share_broker.ack_delay_s = 0.5
        for r in records:
            if r.partition == 0:
                c.acknowledge(r)
        first = c.commit_sync(timeout_ms=100)
        assert set(first) == {q0} and isinstance(first[q0], RilletTimeoutError)
        deadline = time.monotonic() + 5  # the first commit's answer reaches the client
        while not all(f.done() for f in c._fetcher.futures()):
            assert time.monotonic() < deadline, "the first acknowledgement was not answered"
            time.sleep(0.01)
        for r in records:
            if r.partition == 1:
                c.acknowledge(r)
        second = c.commit_sync(timeout_ms=100)  # answered only after its timeout
        assert set(second) == {q1} and isinstance(second[q1], RilletTimeoutError)
        assert (({q0: {0, 1}}, None)) in seen  # the first commit's success: to the callback
    finally:
        share_broker.ack_delay_s = 0.0
        c.close()


def test_acknowledgements_an_answer_does_not_name_are_not_reported_durable(share_broker):
    """Their outcome is unknown: an error, never None (a leader that could not apply them
    answered 0 for them until the share-partition manager said so in their own code)."""
    c, seen = _explicit_consumer_of_four(share_broker)
    q0, q1 = TopicPartition("q", 0), TopicPartition("q", 1)
    try:
        for r in _poll_until(c, 4):
            c.acknowledge(r)
        share_broker.unnamed = {("q", 0)}
        results = c.commit_sync()  # ShareAcknowledge: its answer names q-1 only
        assert set(results) == {q0, q1} and results[q1] is None
        assert isinstance(results[q0], UnknownServerError), results
        assert "did not name q-0" in str(results[q0])
        share_broker.unnamed = set()
        _produce(share_broker.address, 4)
        for r in _poll_until(c, 4):
            c.acknowledge(r)
        share_broker.unnamed = {("q", 0)}
        before = len(seen)
        deadline = time.monotonic() + 5  # these ride the next ShareFetch, answered without q-0
        while not any(q0 in o and e is not None for o, e in seen[before:]):
            assert time.monotonic() < deadline, seen
            c.poll(timeout_ms=50)
        assert not any(q0 in o and e is None for o, e in seen), seen
    finally:
        share_broker.unnamed = set()
        c.close()


def test_bad_acknowledgements_are_refused_locally(share_broker) -> None:
    _produce(share_broker.address, 2)
    c = _consumer(share_broker)
    try:
        r = _poll_until(c, 2)[0]
        with pytest.raises(ValueError, match="delay_ms must be"):
            c.acknowledge(r, "release", delay_ms=-5)
        with pytest.raises(ValueError, match="only for RELEASE"):
            c.acknowledge(r, "accept", delay_ms=5)
        with pytest.raises(ValueError, match="only for REJECT"):
            c.acknowledge(r, "release", reason="x")
        with pytest.raises(ValueError, match="acknowledge type"):
            c.acknowledge(r, "maybe")
        with pytest.raises(IllegalStateError, match="not held"):
            c.acknowledge(r._replace(offset=999))
        assert share_broker.ack_log == []  # nothing reached the broker
    finally:
        c.close()
    with pytest.raises(ConfigError, match="group.id"):
        ShareConsumer(bootstrap_servers=share_broker.address)
    with pytest.raises(ConfigError, match="did you mean"):
        ShareConsumer(bootstrap_servers=share_broker.address, group_id="g",
                      share_acknowledgement_mod="explicit")


def test_failed_acknowledgements_reach_the_callback(share_broker) -> None:
    _produce(share_broker.address, 2)
    c = _consumer(share_broker)
    seen = []
    c.set_acknowledgement_commit_callback(lambda offsets, error: seen.append((offsets, error)))
    try:
        _poll_until(c, 2)
        share_broker.fail_ack[("q", 0)] = P.ErrorCode.INVALID_RECORD_STATE
        results = c.commit_sync()
        assert results[TopicPartition("q", 0)].code == P.ErrorCode.INVALID_RECORD_STATE
        assert results[TopicPartition("q", 1)] is None
        assert {tuple(o) for o, e in seen if e is not None} == {(TopicPartition("q", 0),)}
    finally:
        share_broker.fail_ack.clear()
        c.close()


def test_close_releases_records_fetched_but_never_returned(share_broker) -> None:
    _produce(share_broker.address, 4)
    c = _consumer(share_broker)
    for r in _poll_until(c, 4):
        c.acknowledge(r, "accept")
    c.commit_sync()
    _produce(share_broker.address, 2)

    def acquired():
        return [o for st in share_broker.records.values() for o, v in st.items()
                if v[0] == "acquired"]

    # a fetch (the prefetch poll() left in flight, or one sent here) acquires the new
    # records; they are never handed out
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not acquired():
        c._fetcher.send_fetches(c._membership.current(), 100)
        time.sleep(0.05)
    assert acquired()
    c.close()
    assert acquired() == []  # released at once, not left to a lock expiry
    released = [o for api, t, p, o, k, d, _ in share_broker.ack_log if k == P.ACK_RELEASE]
    assert len(released) == 2


def test_acquired_records_missing_from_the_response_are_released_not_gapped(share_broker
                                                                             ) -> None:
    share_broker.drop_records = 1  # the leader acquires 0..3 but sends no batches
    _produce(share_broker.address, 4)
    c = _consumer(share_broker)
    try:
        records = _poll_until(c, 4)
        assert sorted((r.partition, r.offset, r.delivery_count) for r in records) == [
            (0, 0, 2), (0, 1, 2), (1, 0, 1), (1, 1, 1)] or sorted(
            (r.partition, r.offset, r.delivery_count) for r in records) == [
            (0, 0, 1), (0, 1, 1), (1, 0, 2), (1, 1, 2)]
        kinds = [(k, d) for api, t, p, o, k, d, _ in share_broker.ack_log]
        assert (P.ACK_GAP, -1) not in kinds
        assert kinds.count((P.ACK_RELEASE, 0)) == 2
    finally:
        c.close()


def test_retriable_partition_errors_are_retried_and_others_raised(share_broker) -> None:
    _produce(share_broker.address, 2)
    share_broker.fetch_errors = [P.ErrorCode.COORDINATOR_LOAD_IN_PROGRESS] * 3
    c = _consumer(share_broker)
    try:
        assert len(_poll_until(c, 2)) == 2  # the state was loading: asked again, no error
        assert share_broker.fetch_errors == []
        share_broker.fetch_errors = [P.ErrorCode.INVALID_REQUEST]
        with pytest.raises(RilletError):
            _poll_until(c, 1, timeout_s=3)
    finally:
        c.close()


def test_only_batches_holding_acquired_records_are_decoded(share_broker) -> None:
    share_broker.send_all_batches = True
    with Producer({"bootstrap.servers": share_broker.address, "linger.ms": 0}) as producer:
        for i in range(40):  # 40 one-record batches on partition 0
            producer.send("q", value=f"v{i}".encode(), partition=0).get(10)
    c = ShareConsumer(bootstrap_servers=share_broker.address, group_id="g",
                      max_poll_records=5)
    decoded = []
    c.subscribe(["q"])
    f = c._fetcher
    orig = f._decode
    f._decode = lambda tp, buf, batches: decoded.append(len(batches)) or orig(tp, buf, batches)
    try:
        records = _poll_until(c, 40)
        assert sorted(r.offset for r in records) == list(range(40))
        assert max(decoded) <= 5 and sum(decoded) == 40  # never the 40 batches sent each time
    finally:
        c.close()
