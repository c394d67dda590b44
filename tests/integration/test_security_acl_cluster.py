"""ACLs on a three-broker CURVE cluster (issue #19, docs/security.md "Authorization"): a
CreateAcls sent to a broker that is not the controller is forwarded and committed once, and
every broker enforces the binding from the replicated metadata log, also after a full
restart of the cluster. Slow (a three-broker cluster started twice)."""

from __future__ import annotations

import time

import pytest
import zmq
from conftest import FAST_CLUSTER_CONFIGS, TEST_BROKER_CONFIGS
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import AuthenticationFailedError
from rillet.transport.security import CurveKeys, curve_available, generate_keyfile

from rillet import Admin, NewTopic
from rillet.launcher import LocalCluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE"),
]

GRANT = P.AclEntry(resource_type="TOPIC", resource_name="orders", pattern_type="PREFIXED",
                   principal="User:alice", operation="WRITE")


def _visible(alice: dict, address: str) -> list[str] | None:
    """The topics alice sees on one broker; None while it does not know her key yet (a new
    connection each time: a refused handshake is not retried on the same one)."""
    with ClientEndpoint(**alice) as endpoint:
        try:
            response = endpoint.request(address, P.MetadataRequest(), 5000).result(10)
        except AuthenticationFailedError:  # the user record is still on its way there
            return None
    return [t.name for t in response.topics]


def _wait_everywhere(cluster, alice: dict, want: list[str]) -> None:
    for broker_id in cluster.ports:
        deadline = time.monotonic() + 30
        while (seen := _visible(alice, cluster.address(broker_id))) != want:
            assert time.monotonic() < deadline, f"broker {broker_id} shows alice {seen}"
            time.sleep(0.05)


def test_acls_are_forwarded_replicated_and_enforced_by_every_broker(tmp_path):
    configs = {**TEST_BROKER_CONFIGS, **FAST_CLUSTER_CONFIGS, "authorizer.class.name": "rillet"}
    cluster = LocalCluster(tmp_path, 3, configs, secure=True)
    try:
        cluster.start(timeout_s=90)
        keys = generate_keyfile(tmp_path / "alice.curve")
        settings = {**cluster.client_security, "bootstrap.servers": cluster.bootstrap_servers}
        with Admin(settings) as admin:
            admin.create_topics([NewTopic("orders-eu", 3, 3), NewTopic("payments", 3, 3)])
            admin.set_user_key("alice", keys.public)
        server = cluster.client_security["curve.server.publickey"].encode()
        alice = {"curve": CurveKeys(*zmq.auth.load_certificate(tmp_path / "alice.curve")),
                 "curve_server_key": server}
        _wait_everywhere(cluster, alice, [])  # no ACL: alice sees nothing anywhere
        with cluster._client_endpoint() as admin:
            controller = admin.request(cluster.address(1), P.MetadataRequest(), 5000).result(
                10).controller_id
            other = next(b for b in cluster.ports if b != controller)
            created = admin.request(cluster.address(other), P.CreateAclsRequest(
                creations=(GRANT,)), 10_000).result(15)
            assert [r.error_code for r in created.results] == [0]
            _wait_everywhere(cluster, alice, ["orders-eu"])
            described = admin.request(cluster.address(other), P.DescribeAclsRequest(),
                                      5000).result(10)
            assert described.bindings == (GRANT,)  # once, though forwarded
        cluster.stop(timeout_s=30)
        cluster.start(timeout_s=90)
        _wait_everywhere(cluster, alice, ["orders-eu"])
    finally:
        cluster.stop(timeout_s=15)
