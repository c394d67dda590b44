"""SASL (PLAIN, SCRAM-SHA-256) and ACLs on the KAFKA listener of a real secure broker
(issue #19, docs/security.md "SASL"). One module-scoped `--secure` cluster with the
authorizer on: the admin (bootstrap SCRAM user) and alice (added with a password through
the native admin, stored as a salted SCRAM credential in the metadata) use confluent-kafka
and kafka-python; a wrong password and no authentication fail clearly; alice's produce to a
topic she may not write appends nothing."""

from __future__ import annotations

import time

import pytest
from conftest import TEST_BROKER_CONFIGS
from rillet.transport.security import curve_available

from rillet import AclBinding, Admin, NewTopic
from rillet.launcher import LocalCluster
from rillet.records import TopicPartition

confluent_kafka = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE"),
]
ALICE_PASSWORD = "alice-secret"


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    data = tmp_path_factory.mktemp("sasl")
    cluster = LocalCluster(data, 1, {**TEST_BROKER_CONFIGS, "authorizer.class.name": "rillet"},
                           secure=True, kafka=True)
    try:
        cluster.start(timeout_s=60)
        with _admin(cluster) as admin:
            admin.create_topics([NewTopic("orders"), NewTopic("payments")])
            admin.set_user_scram("alice", ALICE_PASSWORD)
            # alice may see payments (so her client sends the Produce) but not write it
            admin.create_acls([AclBinding("TOPIC", "orders", "User:alice", "WRITE"),
                               AclBinding("TOPIC", "payments", "User:alice", "DESCRIBE")])
        deadline = time.monotonic() + 30  # the broker's image has alice's credential
        while not _kafka_ok(cluster, "alice", ALICE_PASSWORD):
            assert time.monotonic() < deadline, "alice's SCRAM credential never took effect"
            time.sleep(0.2)
        yield cluster
    finally:
        cluster.stop(timeout_s=10)


def _admin(cluster) -> Admin:
    return Admin({**cluster.client_security, "bootstrap.servers": cluster.bootstrap_servers})


def _conf(cluster, user, password, mechanism="SCRAM-SHA-256", **extra) -> dict:
    return {"bootstrap.servers": cluster.kafka_bootstrap_servers,
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password, **extra}


def _kafka_ok(cluster, user, password) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient(_conf(cluster, user, password)).list_topics(timeout=3)
        return True
    except confluent_kafka.KafkaException:
        return False


def _end(cluster, topic: str) -> int:
    with _admin(cluster) as admin:
        return admin.list_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_confluent_kafka_right_password_produces_wrong_one_fails(secure, mechanism):
    cluster = secure
    assert cluster.kafka_client_settings["security.protocol"] == "SASL_PLAINTEXT"
    before = _end(cluster, "orders")
    p = confluent_kafka.Producer(_conf(cluster, "alice", ALICE_PASSWORD, mechanism))
    p.produce("orders", b"v-" + mechanism.encode())
    assert p.flush(30) == 0
    assert _end(cluster, "orders") == before + 1
    errors: list = []
    bad = confluent_kafka.Producer(_conf(cluster, "alice", "wrong", mechanism,
                                         error_cb=errors.append, **{"message.timeout.ms": 30000}))
    bad.produce("orders", b"never")
    error = _first_error(bad, errors)
    assert error.code() == confluent_kafka.KafkaError._AUTHENTICATION, error
    assert "SASL authentication error" in error.str() and "invalid credentials" in error.str()
    assert _end(cluster, "orders") == before + 1


def _first_error(client, errors: list):
    """The first error a confluent-kafka client reports to its error_cb, within 30 s."""
    deadline = time.monotonic() + 30
    try:
        while not errors:
            assert time.monotonic() < deadline, "no error reported"
            client.poll(0.05)
        return errors[0]
    finally:  # nothing left for librdkafka to retry (its destructor would wait for it)
        client.purge()
        client.flush(0)


def test_kafka_python_scram_plain_and_no_auth(secure, caplog):
    cluster = secure
    common = {"bootstrap_servers": cluster.kafka_bootstrap_servers, "request_timeout_ms": 10000}
    for mech in ("PLAIN", "SCRAM-SHA-256"):
        admin = kafka.KafkaAdminClient(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mech,
                                       sasl_plain_username="admin",
                                       sasl_plain_password=cluster.kafka_client_settings["sasl.password"],
                                       **common)
        try:
            assert {"orders", "payments"} <= set(admin.list_topics())
        finally:
            admin.close()
    failing = {**common, "bootstrap_timeout_ms": 2000}
    caplog.set_level("ERROR", logger="kafka")
    with pytest.raises(kafka.errors.KafkaError):  # wrong password
        kafka.KafkaAdminClient(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                               sasl_plain_username="alice", sasl_plain_password="nope", **failing)
    # the client says why: the broker's SASL_AUTHENTICATION_FAILED answer
    assert "Authentication failed" in caplog.text, caplog.text[-2000:]
    with pytest.raises(kafka.errors.KafkaError):  # no authentication: the broker closes
        kafka.KafkaAdminClient(**{**failing, "bootstrap_timeout_ms": 1000})


def test_acl_denied_kafka_produce_appends_nothing(secure):
    cluster = secure
    before = _end(cluster, "payments")
    reports = []
    p = confluent_kafka.Producer(_conf(cluster, "alice", ALICE_PASSWORD,
                                       **{"message.timeout.ms": 10000}))
    p.produce("payments", b"denied", on_delivery=lambda err, _m: reports.append(err))
    p.flush(15)
    assert len(reports) == 1 and reports[0] is not None, reports
    assert reports[0].code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED, reports
    assert _end(cluster, "payments") == before


def test_cli_user_add_password_lets_a_kafka_client_in(secure, tmp_path, monkeypatch):
    """``rillet user add bob --password``: only a salted credential reaches the cluster; bob
    then logs in with SCRAM-SHA-256 (in-process click, as the ACL CLI test does)."""
    import json

    from click.testing import CliRunner

    from rillet.cli.main import cli

    cluster = secure
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "profile.json").write_text(json.dumps(
        {"brokers": cluster.bootstrap_servers, "security": cluster.client_security}))
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RILLET_BROKERS", raising=False)
    out = CliRunner().invoke(cli, ["user", "add", "bob", "--password", "bob-pw"])
    assert out.exit_code == 0, out.output
    assert "SASL_PLAINTEXT" in out.output and "bob-pw" not in out.output
    deadline = time.monotonic() + 30
    while not _kafka_ok(cluster, "bob", "bob-pw"):
        assert time.monotonic() < deadline, "bob's credential never took effect"
        time.sleep(0.2)
    errors: list = []
    wrong = confluent_kafka.Producer(_conf(cluster, "bob", "bob-wrong", error_cb=errors.append))
    assert _first_error(wrong, errors).code() == confluent_kafka.KafkaError._AUTHENTICATION


def test_a_group_alice_may_not_read_is_refused(secure):
    cluster = secure
    consumer = confluent_kafka.Consumer(_conf(cluster, "alice", ALICE_PASSWORD, **{
        "group.id": "not-alices", "auto.offset.reset": "earliest"}))
    try:
        consumer.subscribe(["orders"])
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "the join was never refused"
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is not None:
                break
        assert msg.error().code() == confluent_kafka.KafkaError.GROUP_AUTHORIZATION_FAILED, msg.error()
    finally:
        consumer.close()


def test_kcat_scram(secure):
    """kcat's librdkafka (1.x) repeats the client nonce in its SCRAM final message; Kafka's
    broker accepts that, and so must rillet's."""
    import subprocess

    from tests.support import require_tool

    kcat = require_tool("kcat")
    sasl = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=SCRAM-SHA-256",
            "-X", "sasl.username=alice", "-X", f"sasl.password={ALICE_PASSWORD}"]
    out = subprocess.run([kcat, "-b", secure.kafka_bootstrap_servers, *sasl, "-L", "-t", "orders"],
                         capture_output=True, timeout=60)
    assert out.returncode == 0 and b"topic \"orders\"" in out.stdout, out.stderr[-500:]
