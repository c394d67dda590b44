"""Authorization on the KAFKA listener (issue #19, docs/security.md "SASL"): every API a
handler module registers has an authorization decision (actors/kafka_auth.py DECISIONS);
an API without one needs ALTER on the CLUSTER; FindCoordinator and DescribeCluster answer
Kafka's error codes to a principal without DESCRIBE on the GROUP / TRANSACTIONAL_ID /
CLUSTER. The handlers run for real over a BrokerContext with an image of ACLs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kio.schema.describe_cluster.v1.request import DescribeClusterRequest
from kio.schema.errors import ErrorCode
from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest as FindV3
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest as FindV4
from rillet.actors import group_classic as CL
from rillet.actors import kafka_admin, kafka_configs, kafka_groups
from rillet.actors.kafka_auth import DECISIONS, cluster_check_fails, gate_group
from rillet.actors.kafka_dispatch import Call, KafkaEndpoint, load_handlers
from rillet.actors.kafka_sasl import KafkaSession
from rillet.actors.kafka_wire import Request
from rillet.actors.session import BrokerContext
from rillet.coordinator import acl_store
from rillet.coordinator import metadata as md
from rillet.coordinator.acl import AclBinding

ON = {"authorizer.class.name": "rillet", "super.users": "User:admin"}


def _b(rt, name, principal, op, pattern="LITERAL"):
    return AclBinding(resource_type=rt, resource_name=name, pattern_type=pattern,
                      principal=principal, host="*", operation=op, permission="ALLOW")


ACLS = (_b("GROUP", "billing", "User:alice", "READ"),
        _b("TOPIC", "orders", "User:alice", "DESCRIBE_CONFIGS"),
        _b("TRANSACTIONAL_ID", "tx-", "User:alice", "WRITE", "PREFIXED"),
        _b("CLUSTER", "kafka-cluster", "User:carol", "DESCRIBE"))


def test_every_kafka_api_has_an_authorization_decision():
    """A handler module that registers an API must say in DECISIONS how it is authorized."""
    missing = sorted(set(load_handlers()) - set(DECISIONS))
    assert missing == [], f"KAFKA APIs without an authorization decision: {missing}"


@pytest.fixture(scope="module")
def ctx():
    image = md.replay([md.CreateTopic(name="orders", topic_id="t1"),
                       *(acl_store.add_record(b) for b in ACLS)])
    return BrokerContext(broker_id=1, host="h", port=1, cluster_id="c", broker_configs=ON,
                         send=lambda peer, f: None, ticker=None, image=image)


def _call(ctx, principal: str, key: int, version: int, body) -> Call:
    session = KafkaSession("10.0.0.1", True, ("SCRAM-SHA-256",))
    session.principal = principal
    return Call(Request(key, version, 1, "t", body, 10), ctx, KafkaEndpoint("h", 9092),
                lambda r: None, session)


def test_an_api_without_a_decision_needs_alter_on_the_cluster(ctx):
    unknown = SimpleNamespace(api_key=999)
    call = SimpleNamespace(request=unknown, broker=ctx,
                           session=SimpleNamespace(principal="User:alice", host="10.0.0.1"))
    assert "may not ALTER on the CLUSTER" in cluster_check_fails(call)
    call.session.principal = "User:admin"
    assert cluster_check_fails(call) is None


def test_find_coordinator_needs_describe_on_the_group_or_transactional_id(ctx):
    body = FindV4(key_type=0, coordinator_keys=("billing", "other"))
    r = kafka_groups.find_coordinator(_call(ctx, "User:alice", 10, 4, body))
    codes = {c.key: c.error_code for c in r.coordinators}
    assert codes["other"] == ErrorCode.group_authorization_failed
    # billing is allowed (READ implies DESCRIBE): past the ACLs, it is looked up (no
    # coordinator actor here, so not an authorization error)
    assert codes["billing"] != ErrorCode.group_authorization_failed
    r = kafka_groups.find_coordinator(_call(ctx, "User:bob", 10, 3, FindV3(key="tx-1", key_type=1)))
    assert r.error_code == ErrorCode.transactional_id_authorization_failed
    assert "User:bob" in r.error_message
    r = kafka_groups.find_coordinator(_call(ctx, "User:alice", 10, 3, FindV3(key="tx-1", key_type=1)))
    assert r.error_code != ErrorCode.transactional_id_authorization_failed


def test_describe_cluster_needs_describe_on_the_cluster(ctx):
    r = kafka_admin.describe_cluster(_call(ctx, "User:alice", 60, 1, DescribeClusterRequest(include_cluster_authorized_operations=False)))
    assert r.error_code == ErrorCode.cluster_authorization_failed and r.brokers == ()
    r = kafka_admin.describe_cluster(_call(ctx, "User:carol", 60, 1, DescribeClusterRequest(include_cluster_authorized_operations=False)))
    assert r.error_code == ErrorCode.none


def test_list_groups_lists_only_describable_groups_without_describe_on_the_cluster(ctx):
    rows = [("billing", "consumer", "Stable", "classic"), ("other", "consumer", "Empty", "classic")]
    for principal, want in (("User:alice", ["billing"]), ("User:carol", ["billing", "other"])):
        got: list = []
        message, respond = gate_group(_call(ctx, principal, 16, 4, None), CL.ClassicList(),
                                      got.append)
        assert isinstance(message, CL.ClassicList)
        respond(rows)
        assert [r[0] for r in got[0]] == want


def test_describe_configs_is_answered_per_resource(ctx):
    """DESCRIBE_CONFIGS on the topic / group, on the CLUSTER for a broker; refused resources
    carry their error, the others their configs (the connection is not closed)."""
    from kio.schema.describe_configs.v4.request import (
        DescribeConfigsRequest,
        DescribeConfigsResource,
    )

    body = DescribeConfigsRequest(resources=(
        DescribeConfigsResource(resource_type=2, resource_name="orders", configuration_keys=None),
        DescribeConfigsResource(resource_type=2, resource_name="secret", configuration_keys=None),
        DescribeConfigsResource(resource_type=32, resource_name="billing", configuration_keys=None),
        DescribeConfigsResource(resource_type=4, resource_name="1", configuration_keys=None)))
    r = kafka_configs.describe_configs(_call(ctx, "User:alice", 32, 4, body))
    codes = {x.resource_name: x.error_code for x in r.results}
    assert codes == {"orders": ErrorCode.none,
                     "secret": ErrorCode.topic_authorization_failed,
                     "billing": ErrorCode.group_authorization_failed,
                     "1": ErrorCode.cluster_authorization_failed}
    assert next(x for x in r.results if x.resource_name == "orders").configs


def test_list_partition_reassignments_needs_describe_on_the_cluster(ctx):
    from kio.schema.list_partition_reassignments.v0.request import ListPartitionReassignmentsRequest

    body = ListPartitionReassignmentsRequest(topics=None)
    r = kafka_admin.list_partition_reassignments(_call(ctx, "User:alice", 46, 0, body))
    assert r.error_code == ErrorCode.cluster_authorization_failed
    r = kafka_admin.list_partition_reassignments(_call(ctx, "User:carol", 46, 0, body))
    assert r.error_code == ErrorCode.none


def test_describe_groups_refuses_per_group(ctx):
    sent: list = []
    got: list = []
    message, respond = gate_group(_call(ctx, "User:alice", 15, 5, None),
                                  CL.ClassicDescribe(group_ids=("x", "billing", "y")), got.append)
    assert message.group_ids == ("billing",)  # only it reaches the coordinator
    respond([{"state": "Stable"}])
    codes = [getattr(d, "code", 0) for d in got[0]]
    assert codes == [30, 0, 30] and got[0][1] == {"state": "Stable"}
    message, respond = gate_group(_call(ctx, "User:bob", 15, 5, None),
                                  CL.ClassicDescribe(group_ids=("billing",)), sent.append)
    assert message is None and [d.code for d in sent[0]] == [30]
