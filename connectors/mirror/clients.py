"""Per-cluster client settings of the mirror (MirrorMaker 2's ``A.producer.*`` keys).

Every client the mirror opens belongs to one flow ``S->T``, one cluster (its *side*:
``source`` S or ``target`` T) and one *role* (``producer``, ``consumer``, ``admin``). Its
settings come from mm2.properties with MirrorMaker 2's precedence (``MirrorMakerConfig.
clusterProps`` and ``connectorBaseConfig``), lowest first::

    S->T.<role>.<key>           every <role> client of the flow, both clusters
    <key>                       every client of every cluster (keys all clients have)
    <cluster>.<key>             every client of that cluster (keys all clients have)
    <cluster>.<role>.<key>      the <role> clients of that cluster
    S->T.<side>.<role>.<key>    the flow's <role> clients of its source/target cluster

(MM2 quirk kept on purpose: ``A->B.producer.acks`` loses to ``B.producer.acks``; to win
over the cluster's setting in one flow use ``A->B.target.producer.acks``.) On top come the
mirror's own defaults below the user's (``acks=all`` and idempotence for its producers,
2,000 records per poll) and the settings it owns (refused if given: a group id, auto-commit,
serializers, a transactional.id ...).

"Keys all clients have" are rillet's common client keys (``request.timeout.ms``,
``security.protocol``, ``curve.client.keyfile`` ...); a role's keys are the producer's,
consumer's or admin's (:mod:`rillet.config`). A cluster without any security key in the
file is PLAINTEXT: the file says everything about how to reach a cluster, the CLI profile's
CURVE settings (``rillet cluster up --secure``) are never applied to the mirror's clients.

Pure: no I/O here (the CURVE key files are checked by :func:`check_key_files`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType

from rillet.config import (
    ADMIN_KEYS,
    COMMON_KEYS,
    CONSUMER_KEYS,
    PRODUCER_KEYS,
    admin_config,
    consumer_config,
    producer_config,
)
from rillet.errors import ConfigError
from rillet.security import SECURITY_KEYS

ROLES = ("producer", "consumer", "admin")
SIDES = ("source", "target")

#: what the mirror decides itself: a key that would be ignored is refused instead
OWNED = frozenset({
    "bootstrap.servers",  # <cluster>.bootstrap.servers
    "transactional.id", "group.id", "group.instance.id", "group.remote.assignor",
    "enable.auto.commit", "auto.commit.interval.ms", "auto.offset.reset",
    "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
    "consumer.timeout.ms", "partitioner.class", "partitioner.ignore.keys",
    "key.serializer", "value.serializer", "key.deserializer", "value.deserializer",
})

_ROLE_KEYS = {"producer": PRODUCER_KEYS, "consumer": CONSUMER_KEYS, "admin": ADMIN_KEYS}
COMMON = frozenset(k.name for k in COMMON_KEYS) - OWNED
ROLE_KEYS = {role: frozenset(k.name for k in keys) - OWNED
             for role, keys in _ROLE_KEYS.items()}
_RESOLVE = {"producer": producer_config, "consumer": consumer_config, "admin": admin_config}

#: the mirror's defaults, below the user's settings
DEFAULTS = {
    "producer": {"acks": "all", "enable.idempotence": "true"},
    "consumer": {},
    "admin": {},
}


def client_keys(clusters: tuple[str, ...]) -> set[str]:
    """Every client-setting key an mm2.properties with these aliases may hold."""
    out = set(COMMON)
    for c in clusters:
        out |= {f"{c}.{k}" for k in COMMON}
        for role, keys in ROLE_KEYS.items():
            out |= {f"{c}.{role}.{k}" for k in keys}
        for d in clusters:
            if c == d:
                continue
            for role, keys in ROLE_KEYS.items():
                out |= {f"{c}->{d}.{role}.{k}" for k in keys}
                out |= {f"{c}->{d}.{side}.{role}.{k}" for side in SIDES for k in keys}
    return out


def owned_key_error(key: str) -> str | None:
    """A message for a client key the mirror sets itself (None if ``key`` is not one)."""
    for owned in OWNED:
        if key == owned or key.endswith("." + owned):
            where = ("the cluster's <alias>.bootstrap.servers" if owned == "bootstrap.servers"
                     else "the mirror itself")
            return f"{key}: {owned} is set by {where} (docs/mirror.md, \"Client settings\")"
    return None


def top_level_role_error(key: str) -> str | None:
    """``producer.acks`` without a cluster: MM2 ignores it; rillet says where it goes."""
    role, _, rest = key.partition(".")
    if role in ROLES and rest in ROLE_KEYS[role]:
        return (f"unknown key {key!r}: client settings of a role need a cluster "
                f"(e.g. 'A.{key}') or a flow (e.g. 'A->B.{key}')")
    return None


def client_config(props: Mapping[str, str], source: str, target: str, side: str,
                  role: str) -> dict[str, str]:
    """The settings of the flow ``source->target``'s ``role`` client on its ``side``
    cluster, by MM2's precedence (module docstring), with the cluster's bootstrap.servers."""
    cluster = source if side == "source" else target
    keys = ROLE_KEYS[role]
    out = dict(DEFAULTS[role])
    flow = f"{source}->{target}"
    layers = (
        (f"{flow}.{role}.", keys),
        ("", COMMON),
        (f"{cluster}.", COMMON),
        (f"{cluster}.{role}.", keys),
        (f"{flow}.{side}.{role}.", keys),
    )
    for prefix, allowed in layers:
        for k in allowed:
            v = props.get(prefix + k)
            if v is not None:
                out[k] = v
    if not any(k in out for k in SECURITY_KEYS):
        out["security.protocol"] = "PLAINTEXT"  # never the CLI profile's (docstring)
    out["bootstrap.servers"] = props[f"{cluster}.bootstrap.servers"]
    return out


def flow_client_configs(props: Mapping[str, str], source: str, target: str,
                        exactly_once: bool) -> Mapping[tuple[str, str], Mapping[str, str]]:
    """Every (side, role) client config of the flow, each checked as its client checks it
    (types, ranges, half-configured CURVE; a transactional producer's acks/idempotence):
    a bad value is refused before anything runs."""
    out = {}
    for side in SIDES:
        for role in ROLES:
            cfg = client_config(props, source, target, side, role)
            check = dict(cfg)
            if exactly_once and side == "target" and role == "producer":
                check["transactional.id"] = f"mm2-{source}->{target}"
            try:
                _RESOLVE[role](check)
            except ConfigError as exc:
                raise ValueError(f"{source}->{target} {side} {role}: {exc} "
                                 f"(from the {_cluster(source, target, side)}.* and "
                                 f"{source}->{target}.* keys)") from None
            out[(side, role)] = MappingProxyType(cfg)
    return MappingProxyType(out)


def _cluster(source: str, target: str, side: str) -> str:
    return source if side == "source" else target


def did_you_mean(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_key_files(configs: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
    """Load every CURVE key file the configs name (a missing or bad file is a ConfigError
    now, not a flow retrying forever)."""
    from rillet.security import client_curve

    for cfg in configs.values():
        if str(cfg.get("security.protocol", "")).lower() == "curve":
            client_curve({**cfg, "security.protocol": "curve"})
