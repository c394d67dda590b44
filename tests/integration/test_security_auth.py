"""CURVE authentication of clients on a real broker process (issue #19, docs/security.md):
only keys of the user store (bootstrap admin, users added through the Admin API and kept in
the metadata log, across a restart) get in; plaintext clients, unknown keys and a wrong
server key fail with a clear error within 5 s, and none of their requests is dispatched
(the broker's session counter, BrokerStats, does not move)."""

from __future__ import annotations

import time

import pytest
import zmq
from conftest import TEST_BROKER_CONFIGS
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import AuthenticationFailedError
from rillet.transport.security import CurveKeys, curve_available, generate_keyfile

from rillet import Admin, NewTopic, Producer
from rillet.errors import AuthenticationFailedError as ClientAuthError
from rillet.errors import ConfigError
from rillet.launcher import LocalCluster

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE"),
]


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    data = tmp_path_factory.mktemp("secure")
    cluster = LocalCluster(data, 1, dict(TEST_BROKER_CONFIGS), secure=True)
    try:
        cluster.start(timeout_s=60)
        yield cluster, data
    finally:
        cluster.stop(timeout_s=10)


def _settings(cluster, keyfile) -> dict:
    return {**cluster.client_security, "curve.client.keyfile": str(keyfile),
            "bootstrap.servers": cluster.bootstrap_servers}


def test_admin_adds_a_user_who_produces_and_survives_a_restart(secure):
    cluster, data = secure
    admin_settings = {**cluster.client_security, "bootstrap.servers": cluster.bootstrap_servers}
    alice = data / "alice.curve"
    keys = generate_keyfile(alice)
    with Admin(admin_settings) as admin:
        admin.create_topics([NewTopic("orders")])
        admin.set_user_key("alice", keys.public)
    producer = Producer(_settings(cluster, alice))
    try:
        assert producer.send("orders", b"one").get(30).offset == 0
    finally:
        producer.close()
    cluster.stop_broker(1)
    cluster.start_broker(1)
    cluster.wait_ready(60)
    producer = Producer(_settings(cluster, alice))  # the user store came back from the log
    try:
        assert producer.send("orders", b"two").get(30).offset == 1
    finally:
        producer.close()
    with Admin(admin_settings) as admin:
        admin.delete_user("alice")
    refused = Producer({**_settings(cluster, alice), "max.block.ms": 5000})
    try:
        with pytest.raises(ClientAuthError, match="does not know this client"):
            refused.send("orders", b"three").get(30)
    finally:
        refused.close()


def _stats(endpoint, address) -> P.BrokerStatsResponse:
    return endpoint.request(address, P.BrokerStatsRequest(), 10_000).result(15)


@pytest.mark.parametrize("case", [  # two of three slow (CI time, ~10 s each)
    "plaintext", *(pytest.param(c, marks=pytest.mark.slow) for c in ("unknown key", "wrong server key"))])
def test_100_refused_clients_dispatch_no_request(secure, case):
    cluster, data = secure
    address = cluster.address(1)
    options = cluster._client_endpoint  # the admin's endpoint (the bootstrap user)
    server_key = cluster.client_security["curve.server.publickey"].encode()
    admin_keys = CurveKeys(*zmq.auth.load_certificate(data / "admin.curve"))
    attempt = {
        "plaintext": {},
        "unknown key": {"curve": CurveKeys(*zmq.curve_keypair()),
                        "curve_server_key": server_key},
        "wrong server key": {"curve": admin_keys,
                             "curve_server_key": zmq.curve_keypair()[0]},
    }[case]
    with options() as admin:
        before = _stats(admin, address).connection_creation_total
        for _ in range(100):
            started = time.monotonic()
            with ClientEndpoint(**attempt) as client:
                future = client.request(address, P.MetadataRequest(), timeout_ms=30_000)
                with pytest.raises(AuthenticationFailedError):
                    future.result(10)
            assert time.monotonic() - started < 5
        assert _stats(admin, address).connection_creation_total == before


def test_the_python_client_reports_a_missing_curve_setup_clearly(secure):
    cluster, _ = secure
    started = time.monotonic()
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers, "security.protocol": "PLAINTEXT"})
    try:
        with pytest.raises(ClientAuthError, match="requires CURVE"):
            admin.list_topics()
    finally:
        admin.close()
    assert time.monotonic() - started < 5
    with pytest.raises(ConfigError, match="curve.server.publickey"):
        Admin({"bootstrap.servers": cluster.bootstrap_servers, "security.protocol": "CURVE",
               "curve.client.keyfile": "x.curve"})
