"""TLS and the handshake deadline of the KAFKA listener (issue #19, docs/security.md
"SASL_SSL", "Handshake timeout"), on an in-process listener over real TCP sockets: a TLS
client (Python's ssl, verifying the CA of rillet/tls_certs.py) authenticates with SASL
PLAIN over SASL_SSL; a plaintext request on the TLS port closes that connection only; a
connection that authenticates in time stays open while one that does not is closed at
handshake.timeout.ms; the PEM key store configs are validated."""

from __future__ import annotations

import socket
import ssl
import time
from types import SimpleNamespace

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_authenticate.v2.response import SaslAuthenticateResponse
from rillet.actors.configs import BROKER_DEFAULTS, ConfigError, validate_broker_configs
from rillet.actors.kafka_listener import KafkaListener, kafka_tls_context
from rillet.actors.kafka_secure_io import HandshakeDeadlines
from rillet.coordinator import metadata as md
from rillet.coordinator import scram as S

from tests.unit.test_kafka_sasl import _closed, _handshake, _recv, _send

pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    from rillet.tls_certs import ensure_certificates

    return ensure_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_listener(certs):
    cred = S.make_credential("pencil", b"0123456789abcdef")
    configs = {**BROKER_DEFAULTS, "listener.security.protocol.map": "KAFKA:SASL_SSL",
               "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs[1]),
               "sasl.scram.bootstrap.users": S.bootstrap_entry("admin", cred)}
    broker = SimpleNamespace(broker_configs=configs, image=md.MetadataImage(), broker_id=1,
                             incarnation=0, cluster_id="c", controller_id=-1)
    lst = KafkaListener("127.0.0.1", 0, broker, workers=1, handshake_timeout_ms=800,
                        tls=kafka_tls_context(configs)).start()
    yield lst
    lst.stop()


def _tls(certs, port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(certs[0]))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def test_sasl_ssl_authenticates_and_a_late_handshake_is_closed(certs, tls_listener):
    late = socket.create_connection(("127.0.0.1", tls_listener.port), timeout=10)  # no TLS
    with _tls(certs, tls_listener.port) as sock:
        assert _handshake(sock).error_code == ErrorCode.none
        _send(sock, SaslAuthenticateRequest(auth_bytes=b"\0admin\0pencil"), 36, 2)
        assert _recv(sock, SaslAuthenticateResponse).error_code == ErrorCode.none
        opened = time.monotonic()
        assert _closed(late)  # at handshake.timeout.ms
        waited = time.monotonic() - opened
        late.close()
        # the authenticated one is still served after the deadline
        _send(sock, SaslAuthenticateRequest(auth_bytes=b"\0admin\0pencil"), 36, 2)
        assert _recv(sock, SaslAuthenticateResponse).error_code == ErrorCode.illegal_sasl_state
    assert tls_listener.handshakes.expired == 1 and waited < 30


def test_a_plaintext_request_on_the_tls_port_closes_that_connection(certs, tls_listener):
    with socket.create_connection(("127.0.0.1", tls_listener.port), timeout=10) as sock:
        _send(sock, SaslAuthenticateRequest(auth_bytes=b"x"), 36, 2)
        assert _closed(sock)
    with _tls(certs, tls_listener.port) as sock:  # the listener serves the next one
        assert _handshake(sock).error_code == ErrorCode.none
    assert tls_listener.closed_bad >= 1


def test_handshake_deadlines_close_only_the_unfinished_in_order():
    d = HandshakeDeadlines(1000)
    finished = {"b"}
    for i, conn in enumerate("abc"):
        d.add(conn, now=float(i))
    assert d.wait(0.0, 5.0) == 1.0
    assert d.due(0.5, finished.__contains__) == []
    assert d.due(2.0, finished.__contains__) == ["a"]  # b finished: dropped, not closed
    assert d.due(3.0, finished.__contains__) == ["c"] and d.expired == 2
    assert d.wait(3.0, 5.0) == 5.0


@pytest.mark.parametrize("extra,match", [
    ({}, "ssl.keystore.type=JKS: rillet reads PEM"),
    ({"ssl.keystore.type": "PEM"}, "needs ssl.keystore.location"),
    ({"ssl.keystore.type": "PEM", "ssl.keystore.location": "/nonexistent.pem"},
     "ssl.keystore.location=/nonexistent.pem"),
    ({"handshake.timeout.ms": "0"}, "handshake.timeout.ms=0"),
])
def test_tls_configs_are_validated(extra, match):
    with pytest.raises(ConfigError, match=match):
        validate_broker_configs({"listener.security.protocol.map": "KAFKA:SSL", **extra})
