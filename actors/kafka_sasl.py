"""SASL on the KAFKA listener: SaslHandshake (17, v0-1) and SaslAuthenticate (36, v0-2).

With ``listener.security.protocol.map`` naming ``KAFKA:SASL_PLAINTEXT`` (or ``KAFKA:SASL_SSL``,
over TLS: actors/kafka_secure_io.py) a Kafka client must
authenticate before anything but ApiVersions, SaslHandshake and SaslAuthenticate is served
(the listener closes a connection that sends another request first, as Kafka's broker
does). The mechanisms are ``sasl.enabled.mechanisms``: PLAIN, SCRAM-SHA-256 and
SCRAM-SHA-512, all checked against the user store's salted SCRAM credentials (SCRAM-SHA-x
against the user's credential of that mechanism; PLAIN against either) (coordinator/scram.py decides;
the credentials are the metadata image's, plus ``sasl.scram.bootstrap.users``). A failed
authentication is answered SASL_AUTHENTICATION_FAILED and the connection is closed after
that answer. An authenticated connection's principal is ``User:NAME`` for every later
request (actors/kafka_auth.py checks the ACLs with it); a PLAINTEXT KAFKA listener's
connections are ``User:ANONYMOUS``.

SaslHandshake v0 is advertised (librdkafka looks for it before it looks for v1) but a v0
handshake, which announces raw SASL tokens without Kafka framing, is refused
(UNSUPPORTED_SASL_MECHANISM, then closed): every client that speaks SaslAuthenticate (Kafka
1.0+: librdkafka, the Java client, kafka-python) uses v1.
"""

from __future__ import annotations

import functools
import secrets
import sys

from kio.schema.errors import ErrorCode
from loguru import logger
from rillet.coordinator import scram as S

from .authorize import ANONYMOUS
from .configs import kafka_sasl_enabled, sasl_mechanisms
from .kafka_dispatch import Call, api
from .kafka_schemas import load_response_schema

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
PRE_AUTH_APIS = frozenset({18, SASL_HANDSHAKE, SASL_AUTHENTICATE})


class KafkaSession:
    """One Kafka connection's security state: its peer host and principal. Touched by one
    request at a time (the listener handles a connection's requests in order)."""

    __slots__ = ("host", "sasl", "mechanisms", "mechanism", "principal", "scram", "close")

    def __init__(self, host: str, sasl: bool, mechanisms: tuple[str, ...] = ()) -> None:
        self.host = host
        self.sasl = sasl
        self.mechanisms = mechanisms
        self.mechanism: str | None = None  # chosen by SaslHandshake
        self.principal: str | None = None if sasl else ANONYMOUS
        self.scram: S.ScramServer | None = None
        self.close = False  # close the connection once the current answer is written

    @property
    def authenticated(self) -> bool:
        return self.principal is not None

    def may_serve(self, api_key: int) -> bool:
        return self.authenticated or api_key in PRE_AUTH_APIS


def session_for(configs, host: str) -> KafkaSession:
    """The session of a new connection to a broker run with ``configs``."""
    from .configs import BROKER_DEFAULTS

    configs = {**BROKER_DEFAULTS, **configs}
    if kafka_sasl_enabled(configs):
        return KafkaSession(host, True, sasl_mechanisms(configs))
    return KafkaSession(host, False)


@functools.lru_cache(maxsize=4)
def _bootstrap(value: str) -> dict[str, S.ScramCredential]:
    return S.parse_bootstrap_scram(value)


def credential_lookup(ctx, mechanism: str = S.SCRAM_SHA_256):
    """user name -> its ``mechanism`` SCRAM credential from the broker's image (then its
    bootstrap users); ``PLAIN``: the SCRAM-SHA-256 one, else the SCRAM-SHA-512 one."""
    if mechanism == S.PLAIN:
        first, second = credential_lookup(ctx), credential_lookup(ctx, S.SCRAM_SHA_512)
        return lambda user: first(user) or second(user)

    def lookup(user: str) -> S.ScramCredential | None:
        image = ctx.image
        stored = image.scram_sha512 if mechanism == S.SCRAM_SHA_512 else image.scram
        text = stored.get(user)
        if text is not None:
            try:
                return S.parse_credential(text, mechanism)
            except ValueError:
                return None
        cred = _bootstrap(ctx.broker_configs.get("sasl.scram.bootstrap.users", "")).get(user)
        return cred if cred is not None and cred.mechanism == mechanism else None

    return lookup


def _schema(call: Call, key: int):
    cls = load_response_schema(key, call.request.api_version)
    return cls, sys.modules[cls.__module__]


@api(SASL_HANDSHAKE, 0, 1)
def sasl_handshake(call: Call):
    cls, _ = _schema(call, SASL_HANDSHAKE)
    session: KafkaSession | None = call.session
    mechanism = call.request.body.mechanism
    if session is None or not session.sasl:
        return cls(error_code=ErrorCode.illegal_sasl_state, mechanisms=())
    offered = tuple(session.mechanisms)
    if call.request.api_version == 0:  # unframed tokens would follow: not served
        session.close = True
        return cls(error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=offered)
    if session.authenticated or session.mechanism is not None:
        session.close = True
        return cls(error_code=ErrorCode.illegal_sasl_state, mechanisms=offered)
    if mechanism not in offered:
        return cls(error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=offered)
    session.mechanism = mechanism
    if mechanism in S.SCRAM_MECHANISMS:  # the nonce: [0-9a-f], as Kafka's base-36
        session.scram = S.ScramServer(credential_lookup(call.broker, mechanism),
                                      secrets.token_hex(16), mechanism)
    return cls(error_code=ErrorCode.none, mechanisms=offered)


@api(SASL_AUTHENTICATE, 0, 2)
def sasl_authenticate(call: Call):
    cls, _ = _schema(call, SASL_AUTHENTICATE)
    session: KafkaSession | None = call.session

    def refuse(code: ErrorCode, message: str):
        if session is not None:
            session.close = True
        return cls(error_code=code, error_message=message, auth_bytes=b"")

    if session is None or not session.sasl or session.authenticated or session.mechanism is None:
        return refuse(ErrorCode.illegal_sasl_state,
                      "SaslAuthenticate without a SaslHandshake on a SASL listener")
    token = bytes(call.request.body.auth_bytes)
    try:
        if session.mechanism == S.PLAIN:
            user, reply = S.check_plain(token, credential_lookup(call.broker, S.PLAIN)), b""
        else:
            assert session.scram is not None
            reply, user = session.scram.step(token)
    except S.SaslFailed as e:
        logger.info("kafka listener: SASL {} from {} failed: {}", session.mechanism,
                    session.host, e)
        return refuse(ErrorCode.sasl_authentication_failed,
                      f"Authentication failed during authentication due to invalid "
                      f"credentials with SASL mechanism {session.mechanism}")
    if user is not None:
        session.principal = "User:" + user
        session.scram = None
    return cls(error_code=ErrorCode.none, error_message=None, auth_bytes=reply)
