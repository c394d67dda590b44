"""A streams application's configuration (docs/streams.md "Configuration"): Kafka Streams'
key names and defaults, strict checking, and the client configs derived from it.

    >>> cfg = streams_config("wc", {"bootstrap.servers": "127.0.0.1:9092",
    ...                             "processing.guarantee": "exactly_once"})
    >>> cfg.processing_guarantee, cfg.commit_interval_ms
    ('exactly_once_v2', 100)

Keys are the streams keys below, or any producer/consumer/admin key (given to every client
that knows it), or such a key with a ``consumer.``, ``producer.`` or ``admin.`` prefix (given
to that client only), as Kafka Streams' ``StreamsConfig``. Keys the runtime owns
(``group.id``, ``enable.auto.commit``, ``transactional.id``, ``isolation.level``) are refused:
the application id is the group, commits are the runtime's. Unknown keys raise
:class:`~rillet.errors.ConfigError` with a did-you-mean hint. Snake_case keywords
(``commit_interval_ms=100``) are accepted as with the other clients.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from rillet.config import ADMIN_KEYS, CONSUMER_KEYS, PRODUCER_KEYS, ConfigKey, _int, _servers
from rillet.errors import ConfigError
from rillet.frozen import frozen

GUARANTEES = ("at_least_once", "exactly_once_v2")
HANDLERS = ("log_and_fail", "log_and_continue", "dead_letter")
_ALIASES = {"exactly_once": "exactly_once_v2", "exactly_once_beta": "exactly_once_v2"}
_APP_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")

# keys the runtime sets itself; a user value would silently break commits or the group
_OWNED = {
    "group.id": "the group is the application.id",
    "enable.auto.commit": "the runtime commits after processing (commit.interval.ms)",
    "transactional.id": "exactly_once_v2 makes one per instance",
    "isolation.level": "read_committed under exactly_once_v2, else read_uncommitted",
    "group.remote.assignor": "streams needs the range assignor (co-partitioned tasks)",
}


def _default_state_dir() -> str:
    # Kafka's ${java.io.tmpdir}/kafka-streams
    return os.path.join(tempfile.gettempdir(), "rillet-streams")


@frozen
class StreamsKey:
    name: str
    default: Any
    doc: str


CACHE_DEFAULT_BYTES = 10 * 1024 * 1024  # Kafka's statestore.cache.max.bytes
CACHE_ENTRY_BYTES = 256  # what one cached entry is counted as (keys and values unserialized)

STREAMS_KEYS = (
    StreamsKey("bootstrap.servers", None, "host:port list; defaults to $RILLET_BROKERS"),
    StreamsKey("processing.guarantee", "at_least_once",
               "at_least_once or exactly_once_v2 (exactly_once is accepted as its alias)"),
    StreamsKey("commit.interval.ms", None,
               "how often tasks commit: 30000, or 100 under exactly_once_v2"),
    StreamsKey("state.dir", None, "where stores live: <tmp>/rillet-streams by default"),
    StreamsKey("num.standby.replicas", 0,
               "standby replicas per task: instances keeping a warm copy of its stores"),
    StreamsKey("application.server", None,
               "host:port where this instance answers interactive queries (published to "
               "the other instances: app.query_metadata_for_key)"),
    StreamsKey("default.key.serde", None, "serde of keys where none is given (bytes)"),
    StreamsKey("default.value.serde", None, "serde of values where none is given (bytes)"),
    StreamsKey("default.deserialization.exception.handler", "log_and_fail",
               "a record the serdes cannot decode: log_and_fail, log_and_continue or "
               "dead_letter (to errors.dead.letter.queue.topic.name)"),
    StreamsKey("errors.dead.letter.queue.topic.name", None,
               "the dead-letter topic (KIP-1034); required by the dead_letter handler"),
    StreamsKey("replication.factor", -1, "of internal topics; -1: the broker's default"),
    StreamsKey("poll.ms", 100, "how long a poll waits for records"),
    StreamsKey("max.task.idle.ms", 0,
               "how long a task with an empty input partition waits before processing the "
               "others (0: process what is buffered)"),
    StreamsKey("client.id", "", "prefix of the clients' ids"),
    StreamsKey("statestore.cache.max.bytes", CACHE_DEFAULT_BYTES,
               "record cache of aggregations: only a key's latest update per commit reaches "
               "the changelog and downstream (0: every update; each entry counts "
               f"{CACHE_ENTRY_BYTES} bytes)"),
)
_STREAMS_BY_NAME = {k.name: k for k in STREAMS_KEYS}
_CLIENT_KEYS: dict[str, dict[str, ConfigKey]] = {
    "consumer": {k.name: k for k in CONSUMER_KEYS},
    "producer": {k.name: k for k in PRODUCER_KEYS},
    "admin": {k.name: k for k in ADMIN_KEYS},
}
_ALL_CLIENT = {n for keys in _CLIENT_KEYS.values() for n in keys}


@frozen
class StreamsConfig:
    """The resolved configuration (attributes by snake_case name) and the client configs."""

    application_id: str
    bootstrap_servers: list[str] | None  # None: not known yet (see require_servers)
    processing_guarantee: str
    commit_interval_ms: int
    state_dir: str
    num_standby_replicas: int
    default_key_serde: Any
    default_value_serde: Any
    default_deserialization_exception_handler: str
    errors_dead_letter_queue_topic_name: str | None
    replication_factor: int
    poll_ms: int
    max_task_idle_ms: int
    client_id: str
    statestore_cache_max_bytes: int = CACHE_DEFAULT_BYTES
    application_server: str | None = None
    consumer: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    admin: dict[str, Any] = field(default_factory=dict)

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once_v2"


def _normalise(raw: str) -> str:
    """A snake_case keyword's dotted name, if it names a known key (prefixes too)."""
    if "." in raw or "_" not in raw:
        return raw
    dotted = raw.replace("_", ".")
    for prefix in ("", "consumer.", "producer.", "admin."):
        for known in (*_STREAMS_BY_NAME, *_ALL_CLIENT):
            if (prefix + known).replace(".", "_") == raw:
                return prefix + known
    return dotted


def _unknown(raw: str) -> str:
    names = [*_STREAMS_BY_NAME, *_ALL_CLIENT]
    names += [f"{p}.{n}" for p, keys in _CLIENT_KEYS.items() for n in keys]
    close = difflib.get_close_matches(raw.replace("_", "."), names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown streams config key {raw!r}{hint}"


def _resolve_serde(key: str, value: Any) -> Any:
    if value is None:
        return None
    from rillet.streams.serdes import serde_of

    try:
        return serde_of(value)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{key}: {e}") from None


def streams_config(application_id: str, config: Mapping[str, Any] | None = None,
                   kwargs: Mapping[str, Any] | None = None) -> StreamsConfig:
    """Check and resolve an App's configuration (ConfigError on anything wrong)."""
    if not isinstance(application_id, str) or not _APP_ID.match(application_id):
        raise ConfigError(f"application.id must be 1-200 of [A-Za-z0-9._-] (it names the "
                          f"group and internal topics), got {application_id!r}")
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(f"config must be a dict of Kafka keys, got {type(config).__name__}")
    given: dict[str, Any] = {}
    clients: dict[str, dict[str, Any]] = {"consumer": {}, "producer": {}, "admin": {}}
    prefixed: dict[str, dict[str, Any]] = {"consumer": {}, "producer": {}, "admin": {}}
    for source in (config or {}, kwargs or {}):
        for raw, value in source.items():
            if not isinstance(raw, str):
                raise ConfigError(f"config keys must be strings, got {raw!r}")
            name = _normalise(raw)
            if name == "application.id":
                if value != application_id:
                    raise ConfigError(f"application.id {value!r} differs from the App's "
                                      f"{application_id!r}")
                continue
            prefix, _, rest = name.partition(".")
            if name in _STREAMS_BY_NAME:
                given[name] = value
            elif prefix in prefixed and rest:
                if rest not in _CLIENT_KEYS[prefix]:
                    raise ConfigError(f"{name!r}: {rest!r} is not a {prefix} config key")
                if rest in _OWNED:
                    raise ConfigError(f"{name!r} cannot be set: {_OWNED[rest]}")
                prefixed[prefix][rest] = value
            elif name in _OWNED:
                raise ConfigError(f"{name!r} cannot be set in a streams app: {_OWNED[name]}")
            elif name in _ALL_CLIENT:
                for kind, keys in _CLIENT_KEYS.items():
                    if name in keys:
                        clients[kind][name] = value
            else:
                raise ConfigError(_unknown(raw))
    for kind in clients:
        clients[kind].update(prefixed[kind])

    guarantee = given.get("processing.guarantee", "at_least_once")
    guarantee = _ALIASES.get(str(guarantee).lower(), str(guarantee).lower())
    if guarantee not in GUARANTEES:
        raise ConfigError(f"processing.guarantee must be at_least_once or exactly_once_v2 "
                          f"(exactly_once is its alias); got {given['processing.guarantee']!r}")
    eos = guarantee == "exactly_once_v2"
    commit_ms = given.get("commit.interval.ms")
    commit_ms = (100 if eos else 30000) if commit_ms is None else _int(0)(
        "commit.interval.ms", commit_ms)
    standby = _int(0, 100)("num.standby.replicas", given.get("num.standby.replicas", 0))
    server = given.get("application.server")
    if server is not None and server != "":
        from .instances import HostInfo

        try:
            server = str(HostInfo.parse(server))
        except ValueError as e:
            raise ConfigError(f"application.server: {e}") from None
    else:
        server = None
    handler = str(given.get("default.deserialization.exception.handler",
                            "log_and_fail")).lower()
    handler = {"logandfail": "log_and_fail", "logandcontinue": "log_and_continue"}.get(
        handler.replace("_", ""), handler)
    if handler not in HANDLERS:
        raw = given.get("default.deserialization.exception.handler")
        raise ConfigError("default.deserialization.exception.handler must be one of "
                          f"{', '.join(HANDLERS)}; got {raw!r}")
    dlq = given.get("errors.dead.letter.queue.topic.name")
    if dlq is not None and (not isinstance(dlq, str) or not dlq):
        raise ConfigError(f"errors.dead.letter.queue.topic.name must be a topic name, "
                          f"got {dlq!r}")
    if handler == "dead_letter" and dlq is None:
        raise ConfigError("the dead_letter handler needs errors.dead.letter.queue.topic.name")
    servers = given.get("bootstrap.servers")
    if servers is None:
        # resolved when the app runs ($RILLET_BROKERS or the profile): an app module must be
        # importable without brokers (`rillet streams describe`, `-c bootstrap.servers=`)
        from rillet.profile import default_brokers

        found = default_brokers()
        servers = None if found is None else _servers("bootstrap.servers", found[1])
    else:
        servers = _servers("bootstrap.servers", servers)
    rf = _int(-1, 32767)("replication.factor", given.get("replication.factor", -1))
    if rf == 0:
        raise ConfigError("replication.factor must be -1 (the broker's default) or >= 1")
    state_dir = given.get("state.dir") or _default_state_dir()
    if not isinstance(state_dir, str | os.PathLike):
        raise ConfigError(f"state.dir must be a path, got {state_dir!r}")
    client_id = given.get("client.id", "")
    if not isinstance(client_id, str):
        raise ConfigError(f"client.id must be a string, got {client_id!r}")
    cfg = StreamsConfig(
        application_id=application_id,
        bootstrap_servers=servers,
        processing_guarantee=guarantee,
        commit_interval_ms=commit_ms,
        state_dir=os.fspath(state_dir),
        num_standby_replicas=standby,
        default_key_serde=_resolve_serde("default.key.serde", given.get("default.key.serde")),
        default_value_serde=_resolve_serde("default.value.serde",
                                           given.get("default.value.serde")),
        default_deserialization_exception_handler=handler,
        errors_dead_letter_queue_topic_name=dlq,
        replication_factor=rf,
        poll_ms=_int(0)("poll.ms", given.get("poll.ms", 100)),
        max_task_idle_ms=_int(-1)("max.task.idle.ms", given.get("max.task.idle.ms", 0)),
        client_id=client_id,
        statestore_cache_max_bytes=_int(0)(
            "statestore.cache.max.bytes",
            given.get("statestore.cache.max.bytes", CACHE_DEFAULT_BYTES)),
        application_server=server,
        consumer=clients["consumer"], producer=clients["producer"], admin=clients["admin"],
    )
    # the client configs must be valid on their own: fail now, not at run()
    from rillet.config import admin_config, consumer_config, producer_config

    consumer_config(consumer_client_config(cfg, "x"))
    producer_config(producer_client_config(cfg, "x"))
    admin_config(admin_client_config(cfg))
    return cfg


def require_servers(cfg: StreamsConfig) -> list[str]:
    if cfg.bootstrap_servers is None:
        raise ConfigError("bootstrap.servers is required (or set $RILLET_BROKERS, or start "
                          "a local cluster with `rillet cluster up`)")
    return cfg.bootstrap_servers


def _base(cfg: StreamsConfig, role: str) -> dict[str, Any]:
    cid = f"{cfg.client_id or cfg.application_id}-{role}"
    return {"bootstrap.servers": cfg.bootstrap_servers or ["127.0.0.1:1"], "client.id": cid}


def consumer_client_config(cfg: StreamsConfig, instance: str) -> dict[str, Any]:
    """The main consumer: the application's group, range assignor, no auto-commit."""
    out = _base(cfg, "consumer")
    out.update({"auto.offset.reset": "earliest", "max.poll.interval.ms": 300000})
    out.update(cfg.consumer)
    out.update({
        "group.id": cfg.application_id,
        "group.remote.assignor": "range",
        "enable.auto.commit": False,
        "isolation.level": "read_committed" if cfg.exactly_once else "read_uncommitted",
    })
    return out


def restore_consumer_config(cfg: StreamsConfig) -> dict[str, Any]:
    """The assign-only consumer that reads changelogs (no group)."""
    out = _base(cfg, "restore-consumer")
    out.update({k: v for k, v in cfg.consumer.items() if k not in ("auto.offset.reset",)})
    out.update({"auto.offset.reset": "earliest", "enable.auto.commit": False,
                "isolation.level": "read_committed" if cfg.exactly_once
                else "read_uncommitted"})
    return out


def producer_client_config(cfg: StreamsConfig, instance: str) -> dict[str, Any]:
    """One producer per instance; transactional under exactly_once_v2 (transactional.id from
    the application id and the instance's uuid; transaction.timeout.ms 10000 as Kafka
    Streams sets it)."""
    out = _base(cfg, "producer")
    out["linger.ms"] = 100 if not cfg.exactly_once else 5  # Kafka Streams' linger.ms=100
    if cfg.exactly_once:
        out["transaction.timeout.ms"] = 10000
    out.update(cfg.producer)
    if cfg.exactly_once:
        out.update({"transactional.id": f"{cfg.application_id}-{instance}",
                    "enable.idempotence": True, "acks": "all"})
    return out


def admin_client_config(cfg: StreamsConfig) -> dict[str, Any]:
    out = _base(cfg, "admin")
    out.update(cfg.admin)
    return out


__all__ = ["GUARANTEES", "HANDLERS", "STREAMS_KEYS", "StreamsConfig", "admin_client_config",
           "consumer_client_config", "producer_client_config", "require_servers",
           "restore_consumer_config", "streams_config"]
