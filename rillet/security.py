"""Client security settings (docs/security.md): which keys a client presents to a broker.

Client config keys (every client: producer, consumer, admin, the CLI):

* ``security.protocol``: ``PLAINTEXT`` (default) or ``CURVE``;
* ``curve.client.keyfile``: this client's CURVE key pair, a ZeroMQ certificate holding the
  public and the secret key (``rillet user add`` writes one);
* ``curve.server.publickey``: the broker client listener's public key (Z85, 40 chars).

None of the three given: they come from the profile's ``security`` entry (written by
``rillet cluster up --secure``), so CLI commands and Python clients of the local cluster
need no flags, as ``bootstrap.servers`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rillet.errors import ConfigError
from rillet.profile import read_profile

SECURITY_KEYS = ("security.protocol", "curve.client.keyfile", "curve.server.publickey")


def profile_security() -> dict[str, str]:
    """The profile's security settings (empty without a secure profile)."""
    sec = read_profile().get("security")
    if not isinstance(sec, dict):
        return {}
    return {k: str(v) for k, v in sec.items() if k in SECURITY_KEYS and v is not None}


def check(values: dict[str, Any]) -> None:
    """Refuse a half-configured CURVE client with a message naming what is missing."""
    if values.get("security.protocol") != "curve":
        if values.get("curve.client.keyfile") or values.get("curve.server.publickey"):
            raise ConfigError(
                "curve.client.keyfile / curve.server.publickey are set but "
                "security.protocol is PLAINTEXT: set security.protocol=CURVE")
        return
    if not values.get("curve.client.keyfile"):
        raise ConfigError("security.protocol=CURVE needs curve.client.keyfile")
    key = values.get("curve.server.publickey") or ""
    if len(key) != 40:
        raise ConfigError(
            "security.protocol=CURVE needs curve.server.publickey, the broker's Z85 public "
            f"key (40 characters); got {key!r}")


def client_curve(config) -> dict[str, Any]:
    """Keyword arguments for ``ClientEndpoint`` from a resolved client config."""
    if config["security.protocol"] != "curve":
        return {}
    from rillet.transport.security import KeyFileError, load_keyfile

    try:
        keys = load_keyfile(Path(config["curve.client.keyfile"]))
    except KeyFileError as e:
        raise ConfigError(f"curve.client.keyfile: {e}") from None
    return {"curve": keys, "curve_server_key": config["curve.server.publickey"].encode()}


# -- a secure local cluster (rillet cluster up --secure) ----------------------------------

SERVER_KEY_FILE = "client.curve"  # the client listener's key pair, in the cluster data dir
ADMIN_USER = "admin"
ADMIN_KEY_FILE = "admin.curve"  # the bootstrap admin's client key pair
ADMIN_PASSWORD_FILE = "admin.password"  # the admin's SASL password (Kafka clients), 0600


def secure_cluster_configs(data_dir: Path) -> dict[str, str]:
    """Broker configs for a CURVE client listener, making the key files once in
    ``data_dir``: the listener's key pair and the bootstrap user ``admin``'s."""
    from rillet.transport.security import generate_keyfile, load_keyfile

    paths = {}
    for name in (SERVER_KEY_FILE, ADMIN_KEY_FILE):
        path = Path(data_dir) / name
        if not path.exists():
            generate_keyfile(path)
        paths[name] = path
    admin = load_keyfile(paths[ADMIN_KEY_FILE])
    return {
        **sasl_cluster_configs(data_dir),
        "client.curve.keyfile": str(paths[SERVER_KEY_FILE]),
        "client.curve.bootstrap.users": f"{ADMIN_USER}={admin.public.decode()}",
        # the admin manages ACLs once an authorizer is on (-c authorizer.class.name=rillet)
        "super.users": f"User:{ADMIN_USER}",
    }


def admin_password(data_dir: Path) -> str:
    """The bootstrap admin's SASL password, made once (mode 0600) in ``data_dir``."""
    import os
    import secrets

    path = Path(data_dir) / ADMIN_PASSWORD_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def sasl_cluster_configs(data_dir: Path) -> dict[str, str]:
    """Broker configs for a SASL_PLAINTEXT KAFKA listener whose bootstrap user ``admin`` has
    the password of ``admin_password`` (only its salted SCRAM credential is in the configs)."""
    import hashlib

    from rillet.coordinator.scram import bootstrap_entry, make_credential

    password = admin_password(data_dir)
    # the salt is derived from the password file so the configs stay the same across ups
    salt = hashlib.sha256(b"rillet-admin-salt" + password.encode()).digest()[:24]
    return {
        "listener.security.protocol.map": "KAFKA:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "sasl.scram.bootstrap.users": bootstrap_entry(ADMIN_USER, make_credential(password, salt)),
    }


def kafka_client_settings(configs: dict[str, str], data_dir: Path) -> dict[str, str]:
    """The admin's settings for Kafka clients of a SASL or TLS KAFKA listener (empty
    otherwise); with TLS, ``ssl.ca.location`` is the cluster's CA (rillet/tls_certs.py) when
    the brokers use its certificates."""
    from rillet.tls_certs import CA_FILE

    mapping = configs.get("listener.security.protocol.map", "").upper()
    protocol = next((p for p in ("SASL_PLAINTEXT", "SASL_SSL", "SSL")
                     if f"KAFKA:{p}" in mapping.replace(" ", "").split(",")), None)
    if protocol is None:
        return {}
    out = {"security.protocol": protocol}
    if protocol.startswith("SASL"):
        out.update({"sasl.mechanism": "SCRAM-SHA-256", "sasl.username": ADMIN_USER,
                    "sasl.password": admin_password(data_dir)})
    if protocol.endswith("SSL") and (Path(data_dir) / CA_FILE).exists():
        out["ssl.ca.location"] = str(Path(data_dir) / CA_FILE)
    return out


def admin_client_settings(configs: dict[str, str], data_dir: Path) -> dict[str, str]:
    """The client settings of the bootstrap admin of a cluster run with ``configs`` (empty
    for a plaintext client listener): what the profile's ``security`` entry holds."""
    keyfile = configs.get("client.curve.keyfile")
    if not keyfile:
        return {}
    from rillet.transport.security import load_keyfile

    return {
        "security.protocol": "CURVE",
        "curve.client.keyfile": str(Path(data_dir) / ADMIN_KEY_FILE),
        "curve.server.publickey": load_keyfile(Path(keyfile)).public.decode(),
    }


def endpoint_options(settings: dict[str, str]) -> dict[str, Any]:
    """``ClientEndpoint`` keyword arguments for ``admin_client_settings``."""
    if not settings:
        return {}
    return client_curve({**settings, "security.protocol": "curve"})
