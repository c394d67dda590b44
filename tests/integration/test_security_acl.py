"""ACLs on a real CURVE-secured broker process (issue #19, docs/security.md "Authorization"):
alice may write ``orders*`` but not ``payments``, bob may read but not write, a denied
produce appends nothing, Metadata hides what a principal may not describe, a group needs
READ, the CLI adds, lists and removes bindings, and the ACLs survive a full restart.

One module-scoped cluster (one broker: a full restart is one broker's restart); the tests
run in file order and the last one restarts it."""

from __future__ import annotations

import json
import time

import pytest
from cli_helpers import cli_env, run
from conftest import TEST_BROKER_CONFIGS
from rillet.transport.security import curve_available, generate_keyfile

from rillet import (
    AclBinding,
    AclBindingFilter,
    Admin,
    Consumer,
    NewTopic,
    Producer,
    ShareConsumer,
)
from rillet.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
from rillet.launcher import LocalCluster
from rillet.records import TopicPartition

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE"),
]

AUTHORIZER = {
    "authorizer.class.name": "rillet",  # --secure makes User:admin a super user
    # a metadata snapshot every few entries: the restart reads users and ACLs from one
    "metadata.snapshot.threshold.entries": "5",
}
ALICE = AclBinding("TOPIC", "orders", "User:alice", "WRITE", pattern_type="PREFIXED")
BOB = [AclBinding("TOPIC", "orders", "User:bob", "READ", pattern_type="PREFIXED"),
       AclBinding("GROUP", "billing", "User:bob", "READ")]
TXN = AclBinding("TRANSACTIONAL_ID", "tx-alice", "User:alice", "WRITE")


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    data = tmp_path_factory.mktemp("acl")
    cluster = LocalCluster(data, 1, {**TEST_BROKER_CONFIGS, **AUTHORIZER}, secure=True)
    try:
        cluster.start(timeout_s=60)
        keys = {name: generate_keyfile(data / f"{name}.curve") for name in ("alice", "bob")}
        with _admin(cluster) as admin:
            admin.create_topics([NewTopic("orders-eu"), NewTopic("payments")])
            for name, k in keys.items():
                admin.set_user_key(name, k.public)
            admin.create_acls([ALICE, *BOB])
        yield cluster, data
    finally:
        cluster.stop(timeout_s=10)


def _admin(cluster) -> Admin:
    return Admin({**cluster.client_security, "bootstrap.servers": cluster.bootstrap_servers})


def _as(cluster, data, user: str, **extra) -> dict:
    return {**cluster.client_security, "curve.client.keyfile": str(data / f"{user}.curve"),
            "bootstrap.servers": cluster.bootstrap_servers, **extra}


def _end(cluster, topic: str) -> int:
    with _admin(cluster) as admin:
        return admin.list_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]


def test_alice_writes_orders_not_payments_and_bob_reads_but_cannot_write(secure):
    cluster, data = secure
    alice = Producer(_as(cluster, data, "alice", **{"max.block.ms": 10_000}))
    try:
        assert alice.send("orders-eu", b"one").get(30).offset == 0
        started = time.monotonic()
        with pytest.raises(TopicAuthorizationFailedError, match="may not describe") as denied:
            alice.send("payments", b"no").get(30)
        assert not denied.value.retriable and time.monotonic() - started < 5
    finally:
        alice.close()
    bob = Producer(_as(cluster, data, "bob"))
    try:  # an idempotent producer needs IDEMPOTENT_WRITE or WRITE on some topic (KIP-679)
        with pytest.raises(ClusterAuthorizationFailedError, match="idempotently"):
            bob.send("orders-eu", b"bob").get(30)
    finally:
        bob.close()
    bob = Producer(_as(cluster, data, "bob", acks=1, **{"enable.idempotence": False}))
    try:  # bob may describe orders-eu (READ implies it): the Produce itself is refused
        with pytest.raises(TopicAuthorizationFailedError, match="User:bob .* WRITE"):
            bob.send("orders-eu", b"bob").get(30)
    finally:
        bob.close()
    assert _end(cluster, "orders-eu") == 1 and _end(cluster, "payments") == 0  # nothing appended


def test_metadata_hides_topics_and_acl_admin_needs_the_cluster(secure):
    cluster, data = secure
    with Admin(_as(cluster, data, "alice")) as alice:
        assert alice.list_topics() == ["orders-eu"]
        with pytest.raises(ClusterAuthorizationFailedError):
            alice.create_acls([AclBinding("TOPIC", "payments", "User:alice", "WRITE")])
        with pytest.raises(ClusterAuthorizationFailedError):
            alice.describe_acls()
    with _admin(cluster) as admin:
        assert admin.list_topics() == ["orders-eu", "payments"]  # the super user sees all


def test_a_deny_for_the_clients_host_wins_at_once_and_lifts_at_once(secure):
    """The host of a binding is matched against the peer's address (ZeroMQ's
    Peer-Address); ACL changes apply to connections already open."""
    cluster, data = secure
    deny = AclBinding("TOPIC", "orders-eu", "User:alice", "WRITE", "DENY", host="127.0.0.1")
    alice = Producer(_as(cluster, data, "alice", acks=1, **{"enable.idempotence": False}))
    try:
        alice.send("orders-eu", b"before").get(30)
        with _admin(cluster) as admin:
            admin.create_acls([deny, AclBinding("TOPIC", "orders-eu", "User:alice", "WRITE",
                                                "DENY", host="10.9.9.9")])
        with pytest.raises(TopicAuthorizationFailedError):
            alice.send("orders-eu", b"denied").get(30)
        with _admin(cluster) as admin:
            admin.delete_acls([AclBindingFilter(permission="DENY")])
        alice.send("orders-eu", b"after").get(30)  # the other host's DENY never applied
    finally:
        alice.close()


def test_a_group_needs_read_on_the_group(secure):
    cluster, data = secure
    settings = _as(cluster, data, "bob", **{"auto.offset.reset": "earliest"})
    consumer = Consumer({**settings, "group.id": "billing"})
    try:
        consumer.subscribe(["orders-eu"])
        got, deadline = [], time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = [r.value for rs in consumer.poll(timeout_ms=500).values() for r in rs]
        assert got and got[0] == b"one"  # from the start: bob may read orders-eu
        consumer.commit()
    finally:
        consumer.close()
    for other in (Consumer({**settings, "group.id": "other"}),
                  ShareConsumer({**_as(cluster, data, "bob"), "group.id": "other"})):
        try:
            other.subscribe(["orders-eu"])
            with pytest.raises(GroupAuthorizationFailedError):
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    other.poll(timeout_ms=500)
        finally:
            other.close()


def test_a_transactional_producer_needs_write_on_its_transactional_id(secure):
    cluster, data = secure
    settings = _as(cluster, data, "alice", **{"transactional.id": "tx-alice"})
    denied = Producer(settings)
    try:
        with pytest.raises(TransactionalIdAuthorizationFailedError):
            denied.init_transactions(30)
    finally:
        denied.close()
    with _admin(cluster) as admin:
        admin.create_acls([TXN])
    producer = Producer(settings)
    try:
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.send("orders-eu", b"in a transaction")
        producer.commit_transaction(30)
    finally:
        producer.close()


def test_the_cli_adds_lists_and_removes_acls(secure, tmp_path, monkeypatch):
    """``add`` as a user runs it (a subprocess); list and remove in-process (the same click
    commands, against the same broker, without a second interpreter start-up)."""
    cluster, _ = secure
    env = cli_env(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "profile.json").write_text(json.dumps(
        {"brokers": cluster.bootstrap_servers, "security": cluster.client_security}))
    add = run(["acl", "add", "--allow-principal", "User:carol", "--operation", "Read",
               "--operation", "Describe", "--topic", "audit", "--resource-pattern-type",
               "prefixed"], env)
    assert "Added 2 ACL binding(s)" in add.stdout.decode()
    monkeypatch.setenv("RILLET_CONFIG_DIR", env["RILLET_CONFIG_DIR"])
    monkeypatch.delenv("RILLET_BROKERS", raising=False)
    from click.testing import CliRunner

    from rillet.cli.main import cli

    def rillet(*args):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    listed = rillet("acl", "list", "--principal", "User:carol").output
    assert "ALLOW User:carol" in listed and "READ" in listed and "prefixed:audit" in listed
    match = rillet("acl", "list", "--topic", "audit-2024", "--resource-pattern-type", "match")
    assert "prefixed:audit" in match.output  # the bindings that apply to audit-2024
    assert "Removed 2 ACL binding(s)" in rillet("acl", "remove", "--principal",
                                                "User:carol").output
    with _admin(cluster) as admin:
        assert admin.describe_acls(AclBindingFilter(principal="User:carol")) == []
    bad = CliRunner().invoke(cli, ["acl", "add", "--allow-principal", "carol", "--operation",
                                   "Read", "--topic", "x"])
    assert bad.exit_code != 0 and "TYPE:NAME" in bad.output, bad.output


def test_acls_survive_a_full_cluster_restart(secure):
    cluster, data = secure
    assert list(data.rglob("snapshot.cbor"))  # what the restart starts from
    cluster.stop_broker(1)
    cluster.start_broker(1)
    cluster.wait_ready(60)
    with _admin(cluster) as admin:
        assert set(admin.describe_acls()) == {ALICE, *BOB, TXN}
    alice = Producer(_as(cluster, data, "alice"))
    try:
        assert alice.send("orders-eu", b"two").get(30).offset > 1
        with pytest.raises(TopicAuthorizationFailedError):
            alice.send("payments", b"no").get(30)
    finally:
        alice.close()
