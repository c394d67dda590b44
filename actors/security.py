"""The broker's side of client authentication (docs/security.md): loading the client
listener's CURVE key pair and mapping a handshaking client's public key to its principal.
The user store itself is pure: coordinator/users.py."""

from __future__ import annotations

from pathlib import Path

from rillet.coordinator import users
from rillet.coordinator.metadata import MetadataImage
from rillet.transport.security import CurveKeys, KeyFileError, curve_available, load_keyfile

from .configs import ConfigError


def client_security(configs) -> tuple[CurveKeys | None, dict[str, str]]:
    """(the client listener's key pair or None for plain TCP, {public key: static user})
    from validated broker configs; ``ConfigError`` if the key file is unusable."""
    keyfile = configs["client.curve.keyfile"]
    if not keyfile:
        return None, {}
    if not curve_available():
        raise ConfigError("client.curve.keyfile is set but this libzmq has no CURVE support")
    try:
        keys = load_keyfile(Path(keyfile))
    except KeyFileError as e:
        raise ConfigError(f"client.curve.keyfile: {e}") from None
    return keys, users.parse_bootstrap_users(configs["client.curve.bootstrap.users"])


def principal_of_key(
    image: MetadataImage | None, key: bytes, bootstrap: dict[str, str]
) -> str | None:
    """``User:NAME`` of a client's public key (Z85, as pyzmq's ZAP handler passes it)."""
    text = key.decode("ascii", "replace")
    return users.principal_of(image.users if image is not None else {}, text, bootstrap)
