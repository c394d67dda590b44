"""SASL credentials of the KAFKA listener: SCRAM-SHA-256 (RFC 5802 / RFC 7677),
SCRAM-SHA-512 (RFC 5802 with SHA-512, as Kafka) and PLAIN (RFC 4616) over the same stored
credentials (docs/security.md, "SASL").

Only salted SCRAM credentials are stored, never a password: a credential is Kafka's
``ScramCredential`` (salt, StoredKey, ServerKey, iterations), written as Kafka writes it,
``salt=<b64>,stored_key=<b64>,server_key=<b64>,iterations=<n>``, one per mechanism (the
keys are 32 bytes for SHA-256, 64 for SHA-512; a credential's hash is told by their
length), in a ``SetUserScram`` metadata record (coordinator/metadata.py), so it is replicated through Raft like the CURVE
keys of coordinator/users.py. The admin client salts the password (rillet/_security_admin.py);
the broker never sees it, except over PLAIN, where it is checked against the same credential
(SaltedPassword recomputed with the stored salt and iterations) and then forgotten.

``ScramServer`` is one connection's server side of the exchange, as a state machine:

    START --client-first--> SENT_FIRST --client-final (proof ok)--> DONE
      any failure ------------------------------------------------> FAILED

``step(message) -> (reply, principal or None)``; a failure raises ``SaslFailed`` and leaves
the exchange FAILED (every later step fails). The server nonce is an argument (the actor
draws it): this module reads no clock and no random numbers.

Pure: stdlib only (hashlib, hmac, base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

from rillet.frozen import frozen

SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_512 = "SCRAM-SHA-512"
PLAIN = "PLAIN"
SCRAM_MECHANISMS = (SCRAM_SHA_256, SCRAM_SHA_512)
MECHANISMS = (PLAIN, *SCRAM_MECHANISMS)
HASHES = {SCRAM_SHA_256: "sha256", SCRAM_SHA_512: "sha512"}
_KEY_BYTES = {"sha256": 32, "sha512": 64}
MIN_ITERATIONS = 4096  # Kafka's minimum for SCRAM-SHA-256
MAX_ITERATIONS = 16384  # Kafka's maximum
DEFAULT_ITERATIONS = 4096
MAX_MESSAGE = 8192  # no SASL message of these mechanisms is longer


class SaslFailed(ValueError):
    """The client failed to authenticate (Kafka's SASL_AUTHENTICATION_FAILED, 58)."""


@frozen
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    @property
    def hash(self) -> str:
        """``sha256`` or ``sha512`` (by the keys' length)."""
        return "sha512" if len(self.stored_key) == 64 else "sha256"

    @property
    def mechanism(self) -> str:
        return SCRAM_SHA_512 if self.hash == "sha512" else SCRAM_SHA_256

    def to_text(self) -> str:
        """Kafka's form: ``salt=..,stored_key=..,server_key=..,iterations=..``."""
        b = base64.b64encode
        return (f"salt={b(self.salt).decode()},stored_key={b(self.stored_key).decode()},"
                f"server_key={b(self.server_key).decode()},iterations={self.iterations}")


def parse_credential(text: str, mechanism: str | None = SCRAM_SHA_256) -> ScramCredential:
    """Inverse of ``to_text`` for ``mechanism`` (None: either, by the keys' length);
    ValueError naming what is wrong."""
    if not isinstance(text, str):
        raise ValueError("a SCRAM credential is text")
    fields = dict(part.partition("=")[::2] for part in text.split(","))
    want = {"salt", "stored_key", "server_key", "iterations"}
    if set(fields) != want:
        raise ValueError(f"a SCRAM credential has exactly {sorted(want)}, got {sorted(fields)}")
    try:
        salt, stored, server = (base64.b64decode(fields[k], validate=True)
                                for k in ("salt", "stored_key", "server_key"))
        iterations = int(fields["iterations"])
    except (ValueError, TypeError) as e:
        raise ValueError(f"malformed SCRAM credential: {e}") from None
    sizes = ((_KEY_BYTES[HASHES[mechanism]],) if mechanism is not None
             else tuple(_KEY_BYTES.values()))
    if len(stored) not in sizes or len(server) != len(stored):
        name = mechanism or "SCRAM"
        raise ValueError(f"{name} keys are {' or '.join(map(str, sizes))} bytes")
    if not 8 <= len(salt) <= 256:
        raise ValueError("a SCRAM salt is 8..256 bytes")
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"SCRAM iterations must be {MIN_ITERATIONS}..{MAX_ITERATIONS}")
    return ScramCredential(salt, stored, server, iterations)


def _hmac(key: bytes, msg: bytes, hash_name: str = "sha256") -> bytes:
    return hmac.new(key, msg, hash_name).digest()


def _salted(password: str, salt: bytes, iterations: int, hash_name: str = "sha256") -> bytes:
    return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)


def make_credential(password: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS,
                    mechanism: str = SCRAM_SHA_256) -> ScramCredential:
    """The ``mechanism`` credential of ``password`` (``salt``: random bytes the caller drew)."""
    if not password:
        raise ValueError("a password is not empty")
    if mechanism not in HASHES:
        raise ValueError(f"unknown SCRAM mechanism {mechanism!r}; valid: {', '.join(HASHES)}")
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"SCRAM iterations must be {MIN_ITERATIONS}..{MAX_ITERATIONS}")
    h = HASHES[mechanism]
    salted = _salted(password, salt, iterations, h)
    client_key = _hmac(salted, b"Client Key", h)
    return ScramCredential(salt, hashlib.new(h, client_key).digest(),
                           _hmac(salted, b"Server Key", h), iterations)


Lookup = Callable[[str], ScramCredential | None]  # user name -> credential (None: unknown)
_FAILED = "authentication failed: invalid credentials"


def check_plain(message: bytes, lookup: Lookup) -> str:
    """PLAIN (RFC 4616): ``authzid NUL authcid NUL password`` -> the user name, checked
    against its SCRAM credential; SaslFailed otherwise."""
    parts = bytes(message).split(b"\0")
    if len(parts) != 3:
        raise SaslFailed("malformed PLAIN message: expected authzid NUL user NUL password")
    try:
        authzid, user, password = (p.decode() for p in parts)
    except UnicodeDecodeError:
        raise SaslFailed("malformed PLAIN message: not UTF-8") from None
    if authzid and authzid != user:
        raise SaslFailed("PLAIN authorization id must be empty or the user name")
    cred = lookup(user) if user else None
    if cred is None or not password:
        raise SaslFailed(_FAILED)
    candidate = make_credential(password, cred.salt, cred.iterations, cred.mechanism)
    if not hmac.compare_digest(candidate.stored_key, cred.stored_key):
        raise SaslFailed(_FAILED)
    return user


def _attrs(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep or len(k) != 1 or k in out:
            raise SaslFailed(f"malformed SCRAM message attribute {part[:20]!r}")
        out[k] = v
    return out


def _saslname(name: str) -> str:
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise SaslFailed("malformed SCRAM user name")
    return name.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """The server side of one SCRAM-SHA-256 or SCRAM-SHA-512 exchange (see the module
    docstring); ``lookup`` gives the credentials of ``mechanism``."""

    def __init__(self, lookup: Lookup, server_nonce: str,
                 mechanism: str = SCRAM_SHA_256) -> None:
        self._lookup = lookup
        self._hash = HASHES[mechanism]
        self._server_nonce = server_nonce
        self.state = "START"
        self.user: str | None = None
        self._cred: ScramCredential | None = None
        self._first_bare = self._server_first = self._gs2 = self._nonce = ""

    def step(self, message: bytes) -> tuple[bytes, str | None]:
        """The reply to the client's ``message`` and, once the proof is checked, the user
        name; SaslFailed (and state FAILED) on anything wrong."""
        try:
            if len(message) > MAX_MESSAGE:
                raise SaslFailed("SCRAM message too long")
            try:
                text = bytes(message).decode()
            except UnicodeDecodeError:
                raise SaslFailed("SCRAM message is not UTF-8") from None
            if self.state == "START":
                return self._first(text), None
            if self.state == "SENT_FIRST":
                return self._final(text)
            raise SaslFailed(f"SCRAM exchange is {self.state}")
        except SaslFailed:
            self.state = "FAILED"
            raise

    def _first(self, text: str) -> bytes:
        cb, _, rest = text.partition(",")
        authzid, sep, bare = rest.partition(",")
        if not sep or cb not in ("n", "y") or (authzid and not authzid.startswith("a=")):
            raise SaslFailed("malformed SCRAM client-first message (channel binding unsupported)")
        attrs = _attrs(bare)
        if "m" in attrs or "n" not in attrs or "r" not in attrs or not attrs["r"]:
            raise SaslFailed("malformed SCRAM client-first message")
        user = _saslname(attrs["n"])
        if authzid and _saslname(authzid[2:]) != user:
            raise SaslFailed("SCRAM authorization id must be the user name")
        cred = self._lookup(user) if user else None
        if cred is None or cred.hash != self._hash:
            raise SaslFailed(_FAILED)
        self.user, self._cred = user, cred
        self._gs2 = f"{cb},{authzid},"
        self._first_bare = bare
        self._nonce = attrs["r"] + self._server_nonce
        salt = base64.b64encode(cred.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={cred.iterations}"
        self.state = "SENT_FIRST"
        return self._server_first.encode()

    def _final(self, text: str) -> tuple[bytes, str]:
        without_proof, sep, proof = text.rpartition(",p=")
        if not sep:
            raise SaslFailed("malformed SCRAM client-final message")
        attrs = _attrs(without_proof)
        if attrs.get("c") != base64.b64encode(self._gs2.encode()).decode():
            raise SaslFailed("SCRAM channel binding does not match")
        # Kafka's broker checks that the nonce ENDS with the one it sent: librdkafka before
        # 1.x sends the client nonce twice (client nonce + server's r=); kcat has such one
        if not attrs.get("r", "").endswith(self._nonce):
            raise SaslFailed("SCRAM nonce does not match")
        try:
            client_proof = base64.b64decode(proof, validate=True)
        except ValueError:
            raise SaslFailed("malformed SCRAM proof") from None
        assert self._cred is not None and self.user is not None
        auth = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        h = self._hash
        signature = _hmac(self._cred.stored_key, auth, h)
        if len(client_proof) != len(signature):
            raise SaslFailed(_FAILED)
        client_key = bytes(a ^ b for a, b in zip(client_proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(h, client_key).digest(), self._cred.stored_key):
            raise SaslFailed(_FAILED)
        self.state = "DONE"
        verifier = base64.b64encode(_hmac(self._cred.server_key, auth, h)).decode()
        return f"v={verifier}".encode(), self.user


def parse_bootstrap_scram(value: str) -> dict[str, ScramCredential]:
    """``sasl.scram.bootstrap.users``: ``NAME=SALT:STORED_KEY:SERVER_KEY:ITERATIONS,...``
    (base64, salted: no password) -> {name: credential}; ValueError naming the bad entry.
    Users known from the broker configs, so the first admin gets in before any user is in
    the metadata (as ``client.curve.bootstrap.users``)."""
    out: dict[str, ScramCredential] = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        name, sep, rest = entry.partition("=")
        parts = rest.split(":")
        if not sep or not name or len(parts) != 4:
            raise ValueError(f"entry {entry[:40]!r} is not NAME=SALT:STORED_KEY:SERVER_KEY:ITERATIONS")
        salt, stored, server, iterations = parts
        out[name.strip()] = parse_credential(
            f"salt={salt},stored_key={stored},server_key={server},iterations={iterations}",
            None)
    return out


def bootstrap_entry(name: str, cred: ScramCredential) -> str:
    """One ``sasl.scram.bootstrap.users`` entry (inverse of ``parse_bootstrap_scram``)."""
    b = base64.b64encode
    return (f"{name}={b(cred.salt).decode()}:{b(cred.stored_key).decode()}:"
            f"{b(cred.server_key).decode()}:{cred.iterations}")
