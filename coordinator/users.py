"""The user store: CURVE client keys of named users, kept in the cluster metadata.

A user is ``User:NAME`` (Kafka's principal form). Its CURVE public key (Z85, 40 characters)
is set with a ``SetUserKey`` metadata record, so the store is replicated through Raft and
survives restarts like every other record; ``SetUserKey(user=NAME, public_key=None)``
removes the user. Admins write it through AlterConfigs on the USER resource (type 64,
rillet's own: Kafka keeps SCRAM credentials the same way, as metadata records), config
name ``curve.public.key`` (docs/security.md). The client listener's ZAP handler calls
``principal_of`` for every handshake, on the current image.

Static users (``client.curve.bootstrap.users``, ``NAME=PUBLICKEY,...``) come from the
broker configs: they let the first admin in before any user is in the metadata.

Pure: no sockets, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

RESOURCE_USER = 64  # rillet's ConfigResource type for users (Kafka has none for configs)
CURVE_PUBLIC_KEY = "curve.public.key"
SCRAM_SHA_256 = "SCRAM-SHA-256"  # kafka-configs' name; the value: a salted credential
SCRAM_SHA_512 = "SCRAM-SHA-512"  # the same for SHA-512
USER_PREFIX = "User:"

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_Z85 = re.compile(r"^[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def validate_user_name(name: str) -> str:
    """``name`` if it is a valid user name (1-64 of ``A-Za-z0-9._-``); ValueError if not."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid user name {name!r}: 1-64 characters of letters, digits, '.', '_', '-'"
        )
    return name


def validate_public_key(key: str) -> str:
    """``key`` if it is a Z85-encoded CURVE public key (40 characters); ValueError if not."""
    if not isinstance(key, str) or not _Z85.match(key):
        raise ValueError(f"not a Z85 CURVE public key (40 characters): {key!r}")
    return key


def user_changes(name: str, changes: Sequence[tuple[str, str | None]]) -> str | None:
    """The user's new public key (None: removed) after AlterConfigs ``changes`` of the USER
    resource ``name``; ValueError on anything but ``curve.public.key``."""
    validate_user_name(name)
    key: str | None = None
    if not changes:
        raise ValueError(f"no change for user {name!r}")
    for k, v in changes:
        if k != CURVE_PUBLIC_KEY:
            raise ValueError(f"unknown user config {k!r}: a user has only {CURVE_PUBLIC_KEY}")
        key = None if v is None else validate_public_key(v)
    return key


def user_updates(name: str, changes: Sequence[tuple[str, str | None]]) -> dict[str, str | None]:
    """{config: new value or None (removed)} after AlterConfigs ``changes`` of the USER
    resource ``name``: ``curve.public.key`` (a Z85 key), ``SCRAM-SHA-256`` and
    ``SCRAM-SHA-512`` (salted credentials, coordinator/scram.py; never a password); ValueError on anything else."""
    from .scram import parse_credential

    validate_user_name(name)
    if not changes:
        raise ValueError(f"no change for user {name!r}")
    out: dict[str, str | None] = {}
    for k, v in changes:
        if k == CURVE_PUBLIC_KEY:
            out[k] = None if v is None else validate_public_key(v)
        elif k in (SCRAM_SHA_256, SCRAM_SHA_512):
            out[k] = None if v is None else parse_credential(v, k).to_text()
        else:
            raise ValueError(f"unknown user config {k!r}: a user has {CURVE_PUBLIC_KEY}, "
                             f"{SCRAM_SHA_256} and {SCRAM_SHA_512}")
    return out


def parse_bootstrap_users(value: str) -> dict[str, str]:
    """``NAME=PUBLICKEY,...`` -> {public key: name}; ValueError naming the bad entry."""
    users: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        name, sep, key = entry.partition("=")
        if not sep:
            raise ValueError(f"client.curve.bootstrap.users entry {entry!r} is not NAME=KEY")
        users[validate_public_key(key.strip())] = validate_user_name(name.strip())
    return users


def principal_of(
    users: Mapping[str, str], key: str, bootstrap: Mapping[str, str] | None = None
) -> str | None:
    """``User:NAME`` of the client public ``key`` (Z85): a static user of ``bootstrap``
    ({key: name}) or a user of ``users`` (the image's {name: key}); None if unknown."""
    if bootstrap and key in bootstrap:
        return USER_PREFIX + bootstrap[key]
    for name, public in users.items():
        if public == key:
            return USER_PREFIX + name
    return None
