"""Quotas on the KAFKA listener (actors/kafka_quotas.py, actors/mutation_quota.py) with a
fake broker context and clock: who a Kafka connection is, the shared rates, a throttled
Fetch taken back, the fetch size cap, controller_mutation_rate strict by version; and
Kafka's window arithmetic seen over time (why the default-suite test uses 2 windows)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from rillet.actors import kafka_quotas as KQ
from rillet.actors import mutation_quota as MQ
from rillet.actors import quotas as AQ
from rillet.actors.kafka_dispatch import Call
from rillet.actors.kafka_wire import Request
from rillet.coordinator import quotas as Q
from rillet.transport import protocol as P


class Clock:
    def __init__(self) -> None:
        self.ms = 0.0

    def __call__(self) -> float:
        return self.ms


def _ctx(quotas, clock, topics=None):
    ctx = SimpleNamespace(
        image=SimpleNamespace(client_quotas=quotas, topics=topics or {}),
        broker_configs={"quota.window.num": "2", "controller.quota.window.num": "3"},
        _count_lock=threading.Lock(), quotas=None, mutation_quotas=None)
    ctx.quotas = AQ.BrokerQuotas(lambda: ctx.image.client_quotas, num=2, window_s=1,
                                 clock=clock)
    ctx.mutation_quotas = MQ.MutationQuotas(lambda: ctx.image.client_quotas, num=3,
                                            window_s=1, clock=clock)
    return ctx


def _call(ctx, api_key=0, version=9, client_id="app", principal="User:alice", size=0):
    request = Request(api_key, version, 1, client_id, None, size)
    return Call(request, ctx, None, lambda r: None, SimpleNamespace(principal=principal))


def test_a_kafka_produce_is_measured_in_the_rate_a_native_session_shares() -> None:
    clock = Clock()
    ctx = _ctx({((Q.USER, "alice"),): {Q.PRODUCER_BYTE_RATE: 1000.0}}, clock)
    assert KQ.produced(_call(ctx, size=800)) == 0  # 800 B over a window of 1 s
    assert KQ.produced(_call(ctx, size=700)) == 500  # 1500 B/s: (1500-1000)/1000 * 1 s
    # the native session of the same user measures into the same rate
    native = AQ.SessionThrottle(ctx.quotas)
    answers = []
    native.gate(P.ProduceRequest(acks=1, client_id="other", topics=(P.ProduceTopic(
        name="t", partitions=(P.ProducePartition(partition=0, records=b"x"),)),)),
        "User:alice", answers.append)(P.ProduceResponse())
    assert answers[-1].throttle_time_ms == 501
    # another principal (SASL user) has no quota; before authentication: ANONYMOUS
    assert KQ.produced(_call(ctx, principal="User:bob", size=10**6)) == 0
    assert KQ.who(_call(ctx, principal=None, client_id=None)) == ("ANONYMOUS", "")


def test_a_throttled_fetch_is_taken_back_and_the_fetch_size_capped() -> None:
    clock = Clock()
    ctx = _ctx({((Q.CLIENT_ID, "reader"),): {Q.CONSUMER_BYTE_RATE: 1000.0}}, clock)
    call = _call(ctx, api_key=1, version=12, client_id="reader")
    assert KQ.fetch_max_bytes(call, 50 * 1024 * 1024) == 1000  # quota x (2 - 1) x 1 s
    assert KQ.fetch_max_bytes(_call(ctx, client_id="free"), 5000) == 5000
    assert KQ.fetched(call, 900) == 0
    assert KQ.fetched(call, 600) == 500  # over: answered empty, the 600 B taken back
    assert ctx.quotas.tokens(Q.CONSUMER_BYTE_RATE, "", "reader") == 100  # 1000 - 900
    clock.ms = 2000  # the window passed: the same read fits
    assert KQ.fetched(call, 600) == 0


def test_no_quota_no_cost_and_no_throttle_field() -> None:
    ctx = _ctx({}, Clock())
    assert KQ.produced(_call(ctx, size=10**9)) == 0
    assert KQ.charged(_call(ctx), 10**12) == 0
    assert KQ.throttle_ms_of(object()) == 0
    assert KQ.throttle_ms_of(SimpleNamespace(throttle_time=KQ.throttle_time(1234))) == 1234


def test_controller_mutation_rate_strict_from_kafkas_versions_permissive_before() -> None:
    clock = Clock()
    ctx = _ctx({((Q.CLIENT_ID, "ops"),): {Q.CONTROLLER_MUTATION_RATE: 5.0}}, clock,
               topics={"old": SimpleNamespace(partitions={0: None, 1: None, 2: None})})

    def create(version, *topics, validate_only=False):
        req = P.CreateTopicsRequest(validate_only=validate_only, topics=tuple(
            P.CreatableTopic(name=n, num_partitions=k, replication_factor=1)
            for n, k in topics))
        return KQ.mutations(_call(ctx, api_key=19, version=version, client_id="ops"), 19, req)

    assert create(7, ("x", 100), validate_only=True)[1] == {}  # never counted
    kept, refused, throttle = create(7, ("a", 15), ("b", 1))  # burst 10: a in, b out
    assert [t.name for t in kept.topics] == ["a"]
    assert refused["b"][0] == P.ErrorCode.THROTTLING_QUOTA_EXCEEDED
    assert "retry after 1000 ms" in refused["b"][1] and KQ.throttle_ms_of(
        SimpleNamespace(throttle_time=throttle)) == 1000
    kept, refused, throttle = create(5, ("c", 1))  # v5: permissive, admitted, throttled
    assert refused == {} and [t.name for t in kept.topics] == ["c"]
    assert throttle.total_seconds() == 1.2  # 6 partitions short at 5/s
    # DeleteTopics counts the deleted topic's partitions from the image (v5+: strict)
    delete = P.DeleteTopicsRequest(topic_names=("old",))
    call = _call(ctx, api_key=20, version=6, client_id="ops")
    kept, refused, _ = KQ.mutations(call, 20, delete)
    assert kept is None and "old" in refused
    clock.ms = 1200  # refilled to zero: admitted
    kept, refused, _ = KQ.mutations(call, 20, delete)
    assert kept == delete and refused == {}


def test_native_admin_gets_the_refusals_merged_into_the_controllers_answer() -> None:
    clock = Clock()
    ctx = _ctx({((Q.USER, None),): {Q.CONTROLLER_MUTATION_RATE: 1.0}}, clock)
    answers = []
    req = P.CreateTopicsRequest(topics=(
        P.CreatableTopic(name="a", num_partitions=3, replication_factor=1),
        P.CreatableTopic(name="b", num_partitions=1, replication_factor=1)))
    kept, respond = MQ.native_gate(ctx, "User:alice", "", req, answers.append)
    assert [t.name for t in kept.topics] == ["a"]  # burst 2: a in (to -1), b refused
    respond(P.CreateTopicsResponse(topics=(P.CreatableTopicResult(name="a"),)))
    (a, b) = answers[-1].topics
    assert a.error_code == 0 and b.error_code == P.ErrorCode.THROTTLING_QUOTA_EXCEEDED
    kept, respond = MQ.native_gate(ctx, "User:alice", "", req, answers.append)
    assert kept is None and len(answers[-1].topics) == 2  # answered at once, nothing sent


def test_kafkas_windows_let_a_greedy_client_through_in_periodic_bursts() -> None:
    """A client that sends 100 kB whenever it is not throttled, against 1 MiB/s: over whole
    periods of ``quota.window.num`` windows it holds the quota within a few percent, over a
    few seconds it can be far off (the reason the default-suite test runs 2 windows and
    measures 2 whole periods)."""

    def sends(num: int, until_ms: float) -> list[float]:
        rate, t, out = Q.Rate(num=num, window_ms=1000), 0.0, []
        while t < until_ms:
            rate.record(100_000, t)
            out.append(t)
            t += rate.throttle_ms(1 << 20, t) + 5
        return out

    def measured(at: list[float], start: float, end: float) -> float:
        return sum(1 for x in at if start <= x < end) * 100_000 / ((end - start) / 1000) / (1 << 20)

    two = sends(2, 30_000)
    assert 0.95 <= measured(two, 2000, 6000) <= 1.1  # the default suite's span
    three = sends(3, 30_000)
    assert measured(three, 3000, 7000) > 1.3  # 4 s of 3 windows: a burst's excess
    eleven = sends(11, 200_000)
    assert 0.95 <= measured(eleven, 100_000, 190_000) <= 1.1


def test_the_throttle_given_is_in_the_kafka_listeners_metrics() -> None:
    from kio.index import load_response_schema
    from rillet.actors import kafka_metrics as KM
    from rillet.actors.kafka_metadata import build
    from rillet.actors.metrics import BrokerCollector, BrokerMetrics
    from rillet.coordinator.metadata import MetadataImage

    metrics = BrokerMetrics()
    kafka = KM.register(SimpleNamespace(metrics=metrics))
    cls = load_response_schema(0, 9)
    for ms in (250, 0, 750):
        kafka.responded("Produce", build(cls, throttle_time=KQ.throttle_time(ms),
                                         responses=()), 0.001)
    ctx = SimpleNamespace(broker_id=1, image=MetadataImage(), controller_id=1,
                          broker_configs={}, describe_stats=None, counter_values=dict)
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for family in BrokerCollector(ctx, metrics).collect() for s in family.samples}
    key = ("rillet_request_throttle_time_ms_total", (("api", "Produce"), ("listener", "KAFKA")))
    assert got[key] == 1000


def test_a_request_percentage_throttle_rides_on_the_kafka_answer_as_kafkas_max() -> None:
    """Kafka answers with the larger of the byte-rate and request throttles: the handler's
    time is charged when it returns, and the answer going out after carries what is left
    of that throttle, unless it carries more already or has no throttle_time field."""
    from datetime import timedelta

    from kio.index import load_response_schema

    clock = Clock()
    ctx = _ctx({((Q.USER, "alice"),): {Q.REQUEST_PERCENTAGE: 10.0}}, clock)
    throttle = KQ.RequestThrottle(_call(ctx, api_key=18, version=3))
    assert throttle.ms() == 0  # not charged yet: an answer before the charge only mutes
    # 10 % x (2 - 1) windows: a burst of 10 percent-seconds; 0.15 s of handler time is 15
    assert throttle.charge(150_000_000) == 500
    assert 400 <= throttle.ms() <= 500
    versions = load_response_schema(18, 3)(
        error_code=0, api_keys=(), throttle_time=KQ.throttle_time(0), supported_features=(),
        finalized_features_epoch=-1, finalized_features=(), zk_migration_ready=False)
    assert 400 <= KQ.throttle_ms_of(KQ.with_throttle(versions, throttle.ms())) <= 500
    more = KQ.with_throttle(versions, 2000)  # a byte-rate throttle of 2 s: the larger stays
    assert KQ.with_throttle(more, 500).throttle_time == timedelta(seconds=2)
    no_field = SimpleNamespace(error_code=0)
    assert KQ.with_throttle(no_field, 500) is no_field
    other = KQ.RequestThrottle(_call(ctx, api_key=18, version=3, principal="User:bob"))
    assert other.charge(10**10) == 0 and other.ms() == 0  # bob has no quota
