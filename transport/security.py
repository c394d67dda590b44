"""CURVE security for the inter-broker listener: the cluster key pair and its ZAP guard.

A cluster has ONE CURVE key pair (``inter.broker.curve.keyfile``, docs/cluster.md). Every
broker's inter-broker ROUTER is a CURVE server with that key pair, and a ZAP handler admits
only clients whose public key is the cluster's: the clients that hold the cluster secret
key, i.e. the other brokers (a CURVE handshake proves possession of the secret key). Brokers
use the same pair as client keys when they talk to each other. A peer without the key never
completes the handshake, so none of its requests reaches the broker.

The key file is a ZeroMQ certificate (the ``zmq.auth`` format, readable with
``zmq.auth.load_certificate``) holding both keys; it is created mode 0600.

    keys = generate_keyfile(path)            # once per cluster (the launcher does this)
    keys = load_keyfile(path)                # in every broker
    guard = ZapGuard(context, keys)          # before binding the CURVE server socket
    ...
    guard.stop()
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from rillet.frozen import frozen

from .errors import TransportError


class KeyFileError(TransportError):
    """The CURVE key file is missing, unreadable or has no secret key."""


@frozen
class CurveKeys:
    """A CURVE key pair, Z85-encoded (40 bytes each)."""

    public: bytes
    secret: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"CurveKeys(public={self.public.decode()!r})"


def curve_available() -> bool:
    return bool(zmq.has("curve"))


def generate_keyfile(path: Path) -> CurveKeys:
    """Create a new cluster key pair in ``path`` (mode 0600; refuses to overwrite)."""
    path = Path(path)
    public, secret = zmq.curve_keypair()
    text = (
        "#   rillet inter-broker CURVE key pair (ZeroMQ certificate). Keep it secret.\n"
        "metadata\n"
        "curve\n"
        f'    public-key = "{public.decode()}"\n'
        f'    secret-key = "{secret.decode()}"\n'
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return CurveKeys(public, secret)


def load_keyfile(path: Path) -> CurveKeys:
    """The key pair in ``path``; ``KeyFileError`` if it is missing or has no secret key."""
    try:
        public, secret = zmq.auth.load_certificate(Path(path))
    except (OSError, ValueError) as e:
        raise KeyFileError(f"cannot read CURVE key file {path}: {e}") from None
    if not secret or len(public) != 40 or len(secret) != 40:
        raise KeyFileError(f"CURVE key file {path} must hold a public and a secret key")
    return CurveKeys(public, secret)


class _ClusterKeyOnly:
    """The ZAP credentials provider: admits exactly the cluster's public key."""

    def __init__(self, public: bytes) -> None:
        self.public = public
        self.refused = 0
        self._lock = threading.Lock()

    def callback(self, _domain: str, key: bytes) -> bool:
        if key == self.public:
            return True
        with self._lock:
            self.refused += 1
        return False


class _KnownKeys:
    """The ZAP credentials provider of the client listener: admits a client public key
    that ``principal_of(key)`` maps to a principal (docs/security.md)."""

    def __init__(self, principal_of: Callable[[bytes], str | None]) -> None:
        self._principal_of = principal_of
        self.refused = 0
        self._lock = threading.Lock()

    def callback(self, _domain: str, key: bytes) -> bool:
        try:
            ok = self._principal_of(key) is not None
        except Exception:  # noqa: BLE001 - a lookup failure refuses, never admits
            ok = False
        if not ok:
            with self._lock:
                self.refused += 1
        return ok


class _Authenticator(ThreadAuthenticator):
    """pyzmq's ThreadAuthenticator whose ZAP User-Id of an admitted CURVE client is the
    principal ``principal_of`` maps its key to (``User:NAME``), so every message of that
    connection carries it (``zmq.Frame.get("User-Id")``); the Z85 key without one."""

    def __init__(self, context, principal_of) -> None:
        super().__init__(context)
        self._principal_of = principal_of

    def curve_user_id(self, client_public_key: bytes) -> str:
        principal = None
        if self._principal_of is not None:
            try:  # pyzmq passes the raw 32-byte key here (Z85 to the credentials callback)
                principal = self._principal_of(z85.encode(client_public_key))
            except Exception:  # noqa: BLE001 - admitted already; the key is still an id
                principal = None
        return principal or super().curve_user_id(client_public_key)


class ZapGuard:
    """A ZAP handler (pyzmq's ThreadAuthenticator) on ``context`` that admits only CURVE
    clients holding the cluster key pair, or, with ``principal_of``, only clients whose
    public key it maps to a principal. ``refused`` counts handshakes it turned away. The
    User-Id of an admitted connection is its principal (``_Authenticator``)."""

    def __init__(
        self,
        context: zmq.Context,
        keys: CurveKeys,
        principal_of: Callable[[bytes], str | None] | None = None,
    ) -> None:
        self._provider = (
            _ClusterKeyOnly(keys.public) if principal_of is None else _KnownKeys(principal_of)
        )
        self._auth = _Authenticator(context, principal_of)
        self._auth.start()
        self._auth.configure_curve_callback(domain="*", credentials_provider=self._provider)

    @property
    def refused(self) -> int:
        return self._provider.refused

    def stop(self) -> None:
        self._auth.stop()


def server_options(keys: CurveKeys) -> dict[int, object]:
    """Socket options making a socket the CURVE server of ``keys``."""
    return {zmq.CURVE_SERVER: 1, zmq.CURVE_SECRETKEY: keys.secret}


def client_options(keys: CurveKeys, server_public: bytes | None = None) -> dict[int, object]:
    """Socket options for a CURVE client with ``keys`` of a server whose public key is
    ``server_public`` (default: the same cluster ``keys``)."""
    return {
        zmq.CURVE_SERVERKEY: server_public or keys.public,
        zmq.CURVE_PUBLICKEY: keys.public,
        zmq.CURVE_SECRETKEY: keys.secret,
    }
