"""Client quotas on a real broker process (issue #19, docs/security.md "Quotas"): quotas
set and listed through the Admin API and the CLI, a malformed one refused without effect,
and a greedy producer held to its producer_byte_rate while a well-behaved producer beside
it keeps going at its own pace.

One module-scoped broker with ``quota.window.num=3`` (Kafka's key; 3 windows of 1 s):
with Kafka's default 11 a new client may burst 10 s worth of its quota first, which a
10 s test cannot average out. The 60 s test under ``slow`` runs Kafka's defaults."""

from __future__ import annotations

import time

import pytest
from cli_helpers import cli_env, run
from cluster_helpers import rate_beside_trickle
from conftest import TEST_BROKER_CONFIGS
from rillet.transport.security import curve_available, generate_keyfile

from rillet import Admin, ClientQuotaAlteration, NewTopic, Producer
from rillet.errors import InvalidRequestError
from rillet.launcher import LocalCluster
from rillet.records import TopicPartition

pytestmark = pytest.mark.timeout(120)

QUOTA = 1 << 20  # 1 MiB/s
VALUE = 10_000  # bytes per record: the batch framing is under 1% of it


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("quotas"), 1,
                     {**TEST_BROKER_CONFIGS, "quota.window.num": "3"})
    try:
        c.start(timeout_s=60)
        yield c
    finally:
        c.stop(timeout_s=10)


def _admin(cluster) -> Admin:
    return Admin({"bootstrap.servers": cluster.bootstrap_servers})


def test_quotas_are_set_listed_and_removed_and_a_malformed_one_changes_nothing(
        cluster, tmp_path) -> None:
    with _admin(cluster) as admin:
        admin.alter_client_quotas([
            ClientQuotaAlteration({"user": "alice"}, {"producer_byte_rate": 2048,
                                                      "request_percentage": 12.5}),
            ClientQuotaAlteration({"user": None, "client-id": "etl"},
                                  {"consumer_byte_rate": 4096}),
        ])
        with pytest.raises(InvalidRequestError, match="must be positive"):
            admin.alter_client_quotas([ClientQuotaAlteration(
                {"user": "alice"}, {"consumer_byte_rate": 100, "producer_byte_rate": -5})])
        with pytest.raises(InvalidRequestError, match="unknown entity type"):
            admin.alter_client_quotas([ClientQuotaAlteration({"group": "g"},
                                                             {"producer_byte_rate": 1})])
        assert admin.describe_client_quotas({"user": "alice"}, strict=True) == [
            ({"user": "alice"}, {"producer_byte_rate": 2048.0, "request_percentage": 12.5})]
        assert admin.describe_client_quotas({"client-id": "etl"}) == [
            ({"client-id": "etl", "user": None}, {"consumer_byte_rate": 4096.0})]

    env = {**cli_env(tmp_path), "RILLET_BROKERS": cluster.bootstrap_servers}
    out = run(["quota", "set", "--entity-type", "clients", "--entity-default",
               "--add-config", "producer_byte_rate=8192", "--delete-config",
               "request_percentage"], env).stdout.decode()
    assert "client-id=<default>: producer_byte_rate = 8192" in out
    listed = run(["quota", "list"], env).stdout.decode().splitlines()
    assert sorted(listed) == [
        "client-id=<default>: producer_byte_rate=8192",
        "user=<default> client-id=etl: consumer_byte_rate=4096",
        "user=alice: producer_byte_rate=2048, request_percentage=12.5",
    ]
    with _admin(cluster) as admin:  # clean up: the next test's clients have no quota
        admin.alter_client_quotas([
            ClientQuotaAlteration({"user": "alice"}, {"producer_byte_rate": None,
                                                      "request_percentage": None}),
            ClientQuotaAlteration({"user": None, "client-id": "etl"},
                                  {"consumer_byte_rate": None}),
            ClientQuotaAlteration({"client-id": None}, {"producer_byte_rate": None})])
        assert admin.describe_client_quotas() == []


def _greedy_beside_polite(cluster, topic: str, marks: tuple[float, ...]):
    """A greedy producer (client id ``greedy``, quota QUOTA) sending as fast as it can and a
    polite one (no quota) sending one record every 20 ms and waiting for each. Returns the
    greedy rate between each two ``marks`` (seconds from the start; from the log end
    offset), the polite latencies (ms) from the first mark to the last, and both
    producers' metrics."""
    tp = TopicPartition(topic, 0)
    greedy = Producer({"bootstrap.servers": cluster.bootstrap_servers, "client.id": "greedy",
                       "acks": 1, "buffer.memory": 1 << 20, "linger.ms": 5})
    polite = Producer({"bootstrap.servers": cluster.bootstrap_servers, "client.id": "polite",
                       "acks": 1, "linger.ms": 0})

    def flood() -> None:
        greedy.send(topic, b"g" * VALUE, partition=0)

    def send_one() -> None:
        polite.send(topic, b"p" * 100, partition=1).get(timeout=30)

    # the greedy records all go to partition 0: its log end offset counts them
    rates, window, errors = rate_beside_trickle(cluster, tp, marks, flood, send_one, VALUE)
    metrics = greedy.metrics()["producer-metrics"], polite.metrics()["producer-metrics"]
    greedy.close(timeout=0)
    polite.close(timeout=10)
    assert not errors, errors
    return rates, window, metrics


def test_a_greedy_producer_is_held_to_its_quota_beside_a_well_behaved_one(cluster) -> None:
    with _admin(cluster) as admin:
        admin.create_topics([NewTopic("flood", 2, 1)])
        admin.alter_client_quotas([ClientQuotaAlteration({"client-id": "greedy"},
                                                         {"producer_byte_rate": QUOTA})])
    [rate], polite, (greedy_m, polite_m) = _greedy_beside_polite(cluster, "flood", (2.0, 9.0))
    print(f"greedy rate {rate / QUOTA:.3f}x the quota; polite p99 "
          f"{sorted(polite)[int(len(polite) * 0.99) - 1]:.1f} ms over {len(polite)} sends")
    # the token bucket holds a client to its quota once its first burst is spent (Kafka's
    # sampled rate let it burst again each time a sample expired: 1.13-1.21x over 7 s)
    assert 0.85 * QUOTA <= rate <= 1.15 * QUOTA, f"greedy rate {rate / QUOTA:.2f}x the quota"
    assert greedy_m["produce-throttle-time-max"] > 0  # told, and shown in its metrics
    # the polite producer kept going: about one record per 20 ms, never throttled
    assert len(polite) >= 100, len(polite)
    assert polite_m["produce-throttle-time-max"] == 0
    polite.sort()
    assert polite[int(len(polite) * 0.99) - 1] < 1000, polite[-10:]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_greedy_producer_holds_to_its_quota_for_a_minute_with_kafkas_windows(
        tmp_path) -> None:
    """Kafka's defaults (11 windows of 1 s): past the first burst (10 windows of the quota,
    spent in the first second), the greedy rate in each 30 s half of the next minute is
    within 10% of the quota (the issue's bound; Kafka's sampled rate alone swings
    0.75-1.15x per 30 s with a client this fast: tests/unit/coordinator/test_quota_core.py)."""
    c = LocalCluster(tmp_path / "c", 1, dict(TEST_BROKER_CONFIGS))
    try:
        c.start(timeout_s=60)
        with _admin(c) as admin:
            admin.create_topics([NewTopic("flood", 2, 1)])
            admin.alter_client_quotas([ClientQuotaAlteration({"client-id": "greedy"},
                                                             {"producer_byte_rate": QUOTA})])
        rates, polite, (greedy_m, polite_m) = _greedy_beside_polite(c, "flood", (12, 42, 72))
    finally:
        c.stop(timeout_s=10)
    print("greedy rate per 30 s: " + ", ".join(f"{r / QUOTA:.3f}x" for r in rates)
          + f" the quota; polite p99 {sorted(polite)[int(len(polite) * 0.99) - 1]:.1f} ms")
    assert all(0.9 * QUOTA <= r <= 1.1 * QUOTA for r in rates), [r / QUOTA for r in rates]
    assert len(polite) >= 1000 and polite_m["produce-throttle-time-max"] == 0


def test_the_broker_holds_a_connection_that_ignores_its_throttle(cluster) -> None:
    """A raw client (no rillet client code) pipelines a Produce over its quota and then an
    ApiVersions on the same connection: the Produce is answered at once with
    ``throttle_time_ms`` and the ApiVersions only after that time, while another
    connection is answered meanwhile."""
    from conftest import Wire
    from rillet.logstore.batch import BatchBuilder
    from rillet.transport import protocol as P

    with _admin(cluster) as admin:
        admin.create_topics([NewTopic("held", 1, 1)])
        admin.alter_client_quotas([ClientQuotaAlteration({"client-id": "raw"},
                                                         {"producer_byte_rate": 100_000})])
    b = BatchBuilder()
    for _ in range(30):
        b.append(int(time.time() * 1000), None, b"r" * VALUE)
    # 300 kB against 100 kB/s over 3 windows (padded to 2 s): a throttle of about 1 s
    produce = P.ProduceRequest(acks=1, client_id="raw", topics=(P.ProduceTopic(
        name="held", partitions=(P.ProducePartition(partition=0, records=b.build()),)),))
    raw, other = Wire(cluster.bootstrap_servers), Wire(cluster.bootstrap_servers)
    try:
        raw.call(P.ApiVersionsRequest())  # connected
        sent = time.monotonic()
        first = raw.endpoint.request(raw.address, produce, 30_000)
        second = raw.endpoint.request(raw.address, P.ApiVersionsRequest(), 30_000)
        answer = first.result(30)
        produced = time.monotonic() - sent
        assert answer.topics[0].partitions[0].error_code == 0
        assert 500 <= answer.throttle_time_ms <= 2000, answer.throttle_time_ms
        assert other.call(P.ApiVersionsRequest()).api_versions  # not held: its own connection
        assert not second.done()
        second.result(30)
        held = time.monotonic() - sent
        assert held >= answer.throttle_time_ms / 1000 * 0.9, (held, answer.throttle_time_ms)
        assert produced < answer.throttle_time_ms / 1000  # answered first, then held
    finally:
        raw.close()
        other.close()
        with _admin(cluster) as admin:
            admin.alter_client_quotas([ClientQuotaAlteration({"client-id": "raw"},
                                                             {"producer_byte_rate": None})])


def test_a_consumer_over_its_byte_rate_is_told_to_wait(cluster) -> None:
    """consumer_byte_rate counts the bytes a Fetch returns: 300 kB read against 100 kB/s
    answers with a throttle; a client id without a quota is never throttled."""
    from conftest import Wire
    from rillet.logstore.batch import BatchBuilder
    from rillet.transport import protocol as P

    with _admin(cluster) as admin:
        admin.create_topics([NewTopic("readback", 1, 1)])
        admin.alter_client_quotas([ClientQuotaAlteration({"client-id": "reader"},
                                                         {"consumer_byte_rate": 100_000})])
    b = BatchBuilder()
    for _ in range(30):
        b.append(int(time.time() * 1000), None, b"r" * VALUE)
    w = Wire(cluster.bootstrap_servers)
    try:
        assert w.produce("readback", 0, b.build()).error_code == 0

        def fetch(client_id: str) -> P.FetchResponse:
            return w.call(P.FetchRequest(max_wait_ms=0, client_id=client_id, topics=(
                P.FetchTopic(name="readback", partitions=(P.FetchPartition(
                    partition=0, fetch_offset=0),)),)))

        free = fetch("unlimited")
        assert len(free.topics[0].partitions[0].records) > 300_000 and not free.throttle_time_ms
        throttled = fetch("reader")
        assert len(throttled.topics[0].partitions[0].records) > 300_000  # answered whole
        assert 500 <= throttled.throttle_time_ms <= 2000, throttled.throttle_time_ms
    finally:
        w.close()
        with _admin(cluster) as admin:
            admin.alter_client_quotas([ClientQuotaAlteration({"client-id": "reader"},
                                                             {"consumer_byte_rate": None})])


@pytest.mark.slow  # CI time (a secure cluster of its own); the quota rules by user are
# unit-tested (tests/unit/coordinator/test_quota_core.py), CURVE principals by test_security_acl
@pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE")
def test_a_users_quota_applies_to_its_curve_connections_only(tmp_path) -> None:
    """On a CURVE listener (no authorizer) a user quota follows the principal of the
    client's key: alice (quota) is throttled, bob (none) is not, whatever their client ids."""
    c = LocalCluster(tmp_path / "s", 1, dict(TEST_BROKER_CONFIGS), secure=True)
    try:
        c.start(timeout_s=60)
        keys = {n: generate_keyfile(tmp_path / f"{n}.curve") for n in ("alice", "bob")}
        with Admin({**c.client_security, "bootstrap.servers": c.bootstrap_servers}) as admin:
            admin.create_topics([NewTopic("t", 1, 1)])
            for name, k in keys.items():
                admin.set_user_key(name, k.public)
            admin.alter_client_quotas([ClientQuotaAlteration({"user": "alice"},
                                                             {"producer_byte_rate": 10_000})])
        throttles = {}
        for name in ("alice", "bob"):
            p = Producer({**c.client_security, "bootstrap.servers": c.bootstrap_servers,
                          "curve.client.keyfile": str(tmp_path / f"{name}.curve"),
                          "client.id": "same", "acks": 1, "linger.ms": 0})
            try:
                # 200 kB against 10 kB/s over 10 s (the padded window): the second is
                # answered at once with a throttle (of 10 s, which nobody waits for here)
                for _ in range(2):
                    p.send("t", b"v" * 100_000).get(30)
                throttles[name] = p.metrics()["producer-metrics"]["produce-throttle-time-max"]
            finally:
                p.close(timeout=0)
    finally:
        c.stop(timeout_s=10)
    assert throttles["alice"] > 0 and throttles["bob"] == 0, throttles
