"""SASL on the KAFKA listener (issue #19, docs/security.md "SASL"): the SCRAM-SHA-256 and
PLAIN core against RFC 7677's worked example, the credentials in the metadata log (replay,
snapshot, AlterConfigs of a USER), the broker configs, and the listener itself over a real
TCP socket (nothing but ApiVersions/SaslHandshake/SaslAuthenticate before authentication;
a failed authentication is answered SASL_AUTHENTICATION_FAILED, then closed)."""

from __future__ import annotations

import base64
import io
import socket
import struct
import time
from types import SimpleNamespace

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_authenticate.v2.response import SaslAuthenticateResponse
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest
from kio.schema.sasl_handshake.v1.response import SaslHandshakeResponse
from kio.serial import entity_reader, entity_writer
from rillet.actors.configs import BROKER_DEFAULTS, ConfigError, validate_broker_configs
from rillet.actors.kafka_listener import KafkaListener
from rillet.coordinator import metadata as md
from rillet.coordinator import scram as S
from rillet.coordinator.control.topics import alter_configs
from rillet.coordinator.users import RESOURCE_USER

# RFC 7677 section 3: user "user", password "pencil"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SERVER_FIRST = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
RFC_CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _lookup(password="pencil", name="user"):
    cred = S.make_credential(password, RFC_SALT, 4096)
    return {name: cred}.get


def test_scram_sha_256_matches_rfc_7677() -> None:
    server = S.ScramServer(_lookup(), RFC_SERVER_NONCE)
    assert server.step(RFC_CLIENT_FIRST) == (RFC_SERVER_FIRST, None)
    assert server.step(RFC_CLIENT_FINAL) == (RFC_SERVER_FINAL, "user")
    assert server.state == "DONE"


def test_scram_takes_old_librdkafkas_doubled_nonce_as_kafka_does() -> None:
    """librdkafka 1.x (kcat) repeats the client nonce in client-final; the proof covers what
    it sent. Kafka's broker accepts a nonce that ends with the server's: so does rillet."""
    import hashlib
    import hmac

    server = S.ScramServer(_lookup(), RFC_SERVER_NONCE)
    server.step(RFC_CLIENT_FIRST)
    without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO" + RFC_SERVER_FIRST.decode()[2:].split(",")[0]
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", RFC_SALT, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,{RFC_SERVER_FIRST.decode()},{without_proof}".encode()
    sig = hmac.new(hashlib.sha256(client_key).digest(), auth, hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig, strict=True)))
    assert server.step(without_proof.encode() + b",p=" + proof)[1] == "user"


@pytest.mark.parametrize("lookup,first,final", [
    (_lookup("another password"), RFC_CLIENT_FIRST, RFC_CLIENT_FINAL),  # wrong password
    (_lookup(name="someone"), RFC_CLIENT_FIRST, None),  # unknown user
    (_lookup(), RFC_CLIENT_FIRST, RFC_CLIENT_FINAL.replace(b"r=rOpr", b"r=xOpr")),  # nonce
    (_lookup(), b"p=tls-unique,,n=user,r=abc", None),  # channel binding
    (_lookup(), b"garbage", None),
])
def test_scram_failures_fail_and_stay_failed(lookup, first, final) -> None:
    server = S.ScramServer(lookup, RFC_SERVER_NONCE)
    with pytest.raises(S.SaslFailed):
        server.step(first)
        server.step(final)
    assert server.state == "FAILED"
    with pytest.raises(S.SaslFailed):
        server.step(RFC_CLIENT_FINAL)


def test_plain_checks_the_scram_credential() -> None:
    assert S.check_plain(b"\0user\0pencil", _lookup()) == "user"
    assert S.check_plain(b"user\0user\0pencil", _lookup()) == "user"
    for bad in (b"\0user\0pencil!", b"\0nobody\0pencil", b"other\0user\0pencil", b"user\0pencil",
                b"\0user\0"):
        with pytest.raises(S.SaslFailed):
            S.check_plain(bad, _lookup())


def test_credentials_round_trip_and_refuse_bad_text() -> None:
    cred = S.make_credential("pencil", RFC_SALT)
    assert S.parse_credential(cred.to_text()) == cred
    assert S.parse_bootstrap_scram(S.bootstrap_entry("admin", cred)) == {"admin": cred}
    for bad in ("", "salt=x", cred.to_text().replace("4096", "10"),
                cred.to_text().replace("stored_key=", "stored_key=AAAA")):
        with pytest.raises(ValueError):
            S.parse_credential(bad)
    with pytest.raises(ValueError):
        S.parse_bootstrap_scram("admin=only:three:parts")


def test_credentials_live_in_the_metadata_log() -> None:
    cred = S.make_credential("pencil", RFC_SALT).to_text()
    res = alter_configs(md.MetadataImage(), [md_resource("alice", "SCRAM-SHA-256", cred)],
                        validate_only=False, validate_configs=lambda _c: None)
    assert res.response[0].error == "NONE"
    image = md.replay(res.records, md.MetadataImage())
    assert image.scram == {"alice": cred} and image.users == {}
    assert "pencil" not in str(res.records)
    rebuilt = md.replay(md.image_records(image), md.MetadataImage())  # a snapshot keeps it
    assert rebuilt.scram == image.scram
    gone = alter_configs(image, [md_resource("alice", "SCRAM-SHA-256", None)],
                         validate_only=False, validate_configs=lambda _c: None)
    assert md.replay(gone.records, image).scram == {}
    bad = alter_configs(image, [md_resource("alice", "SCRAM-SHA-256", "pencil")],
                        validate_only=False, validate_configs=lambda _c: None)
    assert bad.response[0].error == "INVALID_CONFIG" and not bad.records


def md_resource(name, key, value):
    change = SimpleNamespace(name=key, value=value, op=0 if value is not None else 1)
    return SimpleNamespace(resource_type=RESOURCE_USER, resource_name=name, configs=(change,))


@pytest.mark.parametrize("configs,match", [
    ({"listener.security.protocol.map": "KAFKA:SSL"}, "ssl.keystore.type=JKS: rillet reads PEM"),
    ({"listener.security.protocol.map": "KAFKA"}, "NAME:PROTOCOL"),
    ({"listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT"}, "CURVE"),
    ({"sasl.enabled.mechanisms": "GSSAPI"}, "GSSAPI"),
    ({"sasl.scram.bootstrap.users": "admin=pencil"}, "sasl.scram.bootstrap.users"),
])
def test_sasl_configs_are_validated(configs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        validate_broker_configs(configs)


def test_authorizer_beside_a_kafka_listener_is_served() -> None:
    validate_broker_configs({"authorizer.class.name": "rillet", "listeners": "KAFKA://127.0.0.1:0",
                             "listener.security.protocol.map": "KAFKA:SASL_PLAINTEXT"})


# ------------------------------------------------------------------- the listener, for real


@pytest.fixture
def listener():
    cred = S.make_credential("pencil", RFC_SALT)
    configs = {**BROKER_DEFAULTS, "listener.security.protocol.map": "KAFKA:SASL_PLAINTEXT",
               "sasl.scram.bootstrap.users": S.bootstrap_entry("admin", cred)}
    # enough of a BrokerContext for Metadata to be answered if it were served
    broker = SimpleNamespace(broker_configs=configs, image=md.MetadataImage(), broker_id=1,
                             incarnation=0, cluster_id="c", controller_id=-1)
    lst = KafkaListener("127.0.0.1", 0, broker, workers=1, failed_auth_delay_ms=50).start()
    yield lst
    lst.stop()


def _send(sock, body, api_key, version, cid=1) -> None:
    buf = io.BytesIO()
    header = type(body).__header_schema__  # v1 or v2 (flexible) as the API version needs
    entity_writer(header)(buf, header(
        request_api_key=api_key, request_api_version=version, correlation_id=cid, client_id="t"))
    entity_writer(type(body))(buf, body)
    sock.sendall(struct.pack(">i", len(buf.getvalue())) + buf.getvalue())


def _recv(sock, cls):
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    _header, used = entity_reader(cls.__header_schema__)(data, 4)
    return entity_reader(cls)(data, 4 + used)[0]


def _closed(sock) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    return False


def _handshake(sock, mechanism="PLAIN"):
    _send(sock, SaslHandshakeRequest(mechanism=mechanism), 17, 1)
    return _recv(sock, SaslHandshakeResponse)


def test_nothing_but_sasl_before_authentication(listener) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        _send(sock, MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                    include_topic_authorized_operations=False), 3, 12)
        assert _closed(sock)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        shake = _handshake(sock, "GSSAPI")
        assert shake.error_code == ErrorCode.unsupported_sasl_mechanism
        assert set(shake.mechanisms) == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}


def test_plain_right_password_then_wrong_one_is_answered_and_closed(listener) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        assert _handshake(sock).error_code == ErrorCode.none
        _send(sock, SaslAuthenticateRequest(auth_bytes=b"\0admin\0pencil"), 36, 2)
        assert _recv(sock, SaslAuthenticateResponse).error_code == ErrorCode.none
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        assert _handshake(sock).error_code == ErrorCode.none
        _send(sock, SaslAuthenticateRequest(auth_bytes=b"\0admin\0guess"), 36, 2)
        answer = _recv(sock, SaslAuthenticateResponse)
        assert answer.error_code == ErrorCode.sasl_authentication_failed
        assert "invalid credentials" in answer.error_message
        assert _closed(sock)
