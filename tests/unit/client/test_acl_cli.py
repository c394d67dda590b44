"""``rillet acl``'s options -> bindings and filters (rillet/cli/acl.py), without a broker:
kafka-acls.sh's names, --producer / --consumer conveniences, and usage errors."""

from __future__ import annotations

import click
import pytest

from rillet import AclBinding
from rillet.cli import acl as cli_acl


def _opts(**kw):
    base = {"topics": (), "groups": (), "txn_ids": (), "cluster": False, "pattern": None,
            "operations": (), "allow": (), "deny": (), "allow_hosts": (), "deny_hosts": ()}
    return {**base, **kw}


def test_kafka_acls_operation_names():
    assert [cli_acl._snake(op) for op in ("Read", "ClusterAction", "IdempotentWrite",
                                         "DESCRIBE_CONFIGS")] == [
        "READ", "CLUSTER_ACTION", "IDEMPOTENT_WRITE", "DESCRIBE_CONFIGS"]


def test_every_principal_host_operation_on_every_resource():
    got = cli_acl._bindings(_opts(topics=("orders",), cluster=True, operations=("Alter",),
                                  allow=("User:a",), deny=("User:b",),
                                  deny_hosts=("10.0.0.9",), pattern="prefixed"))
    assert set(got) == {
        AclBinding("TOPIC", "orders", "User:a", "ALTER", "ALLOW", "PREFIXED", "*"),
        AclBinding("TOPIC", "orders", "User:b", "ALTER", "DENY", "PREFIXED", "10.0.0.9"),
        AclBinding("CLUSTER", "kafka-cluster", "User:a", "ALTER", "ALLOW", "LITERAL", "*"),
        AclBinding("CLUSTER", "kafka-cluster", "User:b", "ALTER", "DENY", "LITERAL",
                   "10.0.0.9"),
    }


def test_producer_and_consumer_conveniences():
    producer = cli_acl._bindings(_opts(topics=("t",), txn_ids=("tx",), allow=("User:p",)),
                                 producer=True, idempotent=True)
    assert {(b.resource_type, b.operation) for b in producer} == {
        ("TOPIC", "WRITE"), ("TOPIC", "DESCRIBE"), ("TOPIC", "CREATE"),
        ("TRANSACTIONAL_ID", "WRITE"), ("TRANSACTIONAL_ID", "DESCRIBE"),
        ("CLUSTER", "IDEMPOTENT_WRITE")}
    consumer = cli_acl._bindings(_opts(topics=("t",), groups=("g",), allow=("User:c",)),
                                 consumer=True)
    assert {(b.resource_type, b.operation) for b in consumer} == {
        ("TOPIC", "READ"), ("TOPIC", "DESCRIBE"), ("GROUP", "READ")}


@pytest.mark.parametrize("opts,match", [
    (_opts(allow=("User:a",), operations=("Read",)), "name a resource"),
    (_opts(topics=("t",), operations=("Read",)), "name a principal"),
    (_opts(topics=("t",), allow=("User:a",)), "--operation"),
    (_opts(topics=("t",), allow=("User:a",), operations=("Read",), pattern="match"),
     "literal or prefixed"),
])
def test_incomplete_options_are_usage_errors(opts, match):
    with pytest.raises(click.UsageError, match=match):
        cli_acl._bindings(opts)


def test_filters_default_to_any_and_match_names_literal_cluster():
    (f,) = cli_acl._filters(_opts())
    assert (f.resource_type, f.pattern_type, f.principal, f.operation) == (
        "ANY", "ANY", None, "ANY")
    (f,) = cli_acl._filters(_opts(cluster=True), principal="User:a")
    assert (f.resource_type, f.resource_name, f.pattern_type, f.principal) == (
        "CLUSTER", "kafka-cluster", "LITERAL", "User:a")
