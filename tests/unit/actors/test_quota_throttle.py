"""actors/quotas.py with a fake clock: what a session's throttle records, the throttle
carried by the answer, the hold, and the held requests handled in order once it passes."""

from __future__ import annotations

from rillet.actors import quotas as AQ
from rillet.coordinator import quotas as Q
from rillet.transport import protocol as P


class Clock:
    def __init__(self) -> None:
        self.ms = 0.0

    def __call__(self) -> float:
        return self.ms


def _broker(quotas, clock) -> AQ.BrokerQuotas:
    return AQ.BrokerQuotas(lambda: quotas, num=3, window_s=1, clock=clock)


def _produce(size: int, client_id: str = "app") -> P.ProduceRequest:
    return P.ProduceRequest(acks=1, client_id=client_id, topics=(P.ProduceTopic(
        name="t", partitions=(P.ProducePartition(partition=0, records=b"x" * size),)),))


def test_a_produce_over_the_quota_is_answered_with_its_throttle_and_holds() -> None:
    clock = Clock()
    quotas = {((Q.USER, "alice"),): {Q.PRODUCER_BYTE_RATE: 1000.0}}
    throttle = AQ.SessionThrottle(_broker(quotas, clock))
    answers = []
    respond = throttle.gate(_produce(1500), "User:alice", answers.append)
    respond(P.ProduceResponse())
    # 1500 B over 3 windows of 1 s, padded to 2 s: 750 B/s, within the quota
    assert answers[-1].throttle_time_ms == 0 and throttle.held_for() <= 0
    respond = throttle.gate(_produce(1500), "User:alice", answers.append)
    respond(P.ProduceResponse())
    # 3000 B: 1500 B/s, (1500 - 1000) / 1000 * 2000 ms
    assert answers[-1].throttle_time_ms == 1000 and throttle.held_for() == 1000
    # another user has no quota: never throttled
    other = AQ.SessionThrottle(throttle.broker)
    other.gate(_produce(10**6), "User:bob", answers.append)(P.ProduceResponse())
    assert answers[-1].throttle_time_ms == 0 and other.held_for() <= 0


def test_a_fetch_is_charged_its_response_bytes_and_followers_never() -> None:
    clock = Clock()
    quotas = {((Q.CLIENT_ID, None),): {Q.CONSUMER_BYTE_RATE: 1000.0}}
    throttle = AQ.SessionThrottle(_broker(quotas, clock))
    answers = []
    big = P.FetchResponse(topics=(P.FetchTopicResponse(name="t", partitions=(
        P.FetchPartitionResponse(partition=0, records=b"x" * 4000),)),))
    req = P.FetchRequest(topics=(), client_id="c1")
    throttle.gate(req, "User:ANONYMOUS", answers.append)(big)
    assert answers[-1].throttle_time_ms == 2000  # (2000 - 1000) / 1000 * 2000
    follower = P.FetchRequest(topics=(), replica_id=2)
    respond = answers.append
    assert throttle.gate(follower, "User:ANONYMOUS", respond) is respond


def test_request_percentage_charges_session_time_with_kafkas_cap() -> None:
    clock = Clock()
    quotas = {((Q.USER, "alice"),): {Q.REQUEST_PERCENTAGE: 10.0}}
    throttle = AQ.SessionThrottle(_broker(quotas, clock))
    throttle.charge("User:alice", 100_000_000)  # 0.1 s: 10 (percent-seconds)
    assert throttle.held_for() <= 0  # 10 over 2 s is 5 %/s
    throttle.charge("User:alice", 10_000_000_000)  # 10 s of one thread: capped at a window
    assert throttle.held_for() == 1000


def test_held_requests_wait_in_order_and_resume_when_the_hold_passes() -> None:
    clock = Clock()
    throttle = AQ.SessionThrottle(_broker({}, clock))
    timers = []
    held = AQ.HeldRequests(throttle, lambda delay, fn: timers.append((delay, fn)) or _Timer(),
                           wake=lambda: None)
    assert not held.hold("first")  # not held: handled at once
    throttle.hold_until = 500.0
    assert held.hold("a") and held.hold("b")
    assert [d for d, _ in timers] == [0.5]  # one timer for the queue
    handled = []
    clock.ms = 200.0
    held.resume(handled.append)  # early (a late timer of an earlier hold): still held
    assert handled == [] and len(timers) == 2
    clock.ms = 500.0
    held.resume(handled.append)
    assert handled == ["a", "b"] and not held.queue
    throttle.hold_until = 900.0
    held.hold("c")
    assert held.drop() == ["c"]


class _Timer:
    def cancel(self) -> None:
        pass


class Nanos:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


def test_a_request_percentage_throttle_rides_on_the_answer_as_kafkas_max() -> None:
    """Kafka answers with the larger of the byte-rate and request throttles: an answer
    given while its request is in hand charges the session's time so far and carries its
    throttle; one given later carries what is left of it; the session's time is charged
    once."""
    clock, nanos = Clock(), Nanos()
    quotas = {((Q.USER, "alice"),): {Q.REQUEST_PERCENTAGE: 10.0,
                                     Q.PRODUCER_BYTE_RATE: 1000.0}}
    throttle = AQ.SessionThrottle(_broker(quotas, clock), nanos)
    answers = []
    # a burst of 20 percent-seconds (10 % x 2 windows); 0.3 s of session time is 30
    throttle.begin()
    respond = throttle.gate(_produce(100), "User:alice", answers.append)  # bytes: no throttle
    nanos.ns += 300_000_000
    respond(P.ProduceResponse())  # answered at once
    assert answers[-1].throttle_time_ms == 1000  # 10 short at 10 %/s, capped at a window
    throttle.end("User:alice")  # charged already: not twice
    assert throttle.held_for() == 1000
    clock.ms = 1000  # the hold has passed: 10 % x 1 s refilled, the bucket at zero
    throttle.begin()
    respond = throttle.gate(_produce(2400), "User:alice", answers.append)
    nanos.ns += 80_000_000  # 8 percent-seconds: 800 ms
    throttle.end("User:alice")  # the answer comes later (the partition appends first)
    clock.ms = 1200
    respond(P.ProduceResponse())
    # bytes: 2400 against a burst of 2000 B at 1000 B/s, 400 ms; what is left of the
    # request throttle, 600 ms: the larger
    assert answers[-1].throttle_time_ms == 600
    clock.ms = 1300
    throttle.begin()
    respond = throttle.gate(P.ApiVersionsRequest(), "User:alice", answers.append)
    respond(P.ApiVersionsResponse())  # no throttle field: unchanged
    throttle.end("User:alice")
    assert answers[-1] == P.ApiVersionsResponse()


def test_with_no_quota_a_request_s_session_time_is_not_measured() -> None:
    """Issue #12: every client request read the clock twice and recorded its time with
    the quotas for nothing; with no quota in the cluster it is not measured, and a quota
    set later measures the requests after it."""
    clock, quotas, reads = Clock(), {}, []

    def nanos() -> int:
        reads.append(1)
        return 0

    broker = AQ.BrokerQuotas(lambda: quotas, num=3, window_s=1, clock=clock)
    throttle = AQ.SessionThrottle(broker, nanos)
    throttle.begin()
    throttle.end("User:alice")
    assert reads == [] and not broker._buckets
    quotas[((Q.USER, "alice"),)] = {Q.REQUEST_PERCENTAGE: 10.0}
    throttle.begin()
    throttle.end("User:alice")
    assert len(reads) == 2 and broker._buckets
