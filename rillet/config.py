"""Client configuration: Kafka's key names, Kafka's Java-client defaults, strict checking.

A config is given either as Kafka's dotted dict (``Producer({"bootstrap.servers": ...})``) or as
snake_case keywords (``Producer(bootstrap_servers=...)``), or both (keywords win). Keys are
normalised by replacing ``.`` with ``_``. Unknown keys raise :class:`~rillet.errors.ConfigError`
with a did-you-mean hint; values are type-checked and coerced (``"5"`` is accepted for an int,
``"true"`` for a bool, as in Java properties files).

    >>> cfg = producer_config({"linger.ms": "10"}, {"bootstrap_servers": "127.0.0.1:9092"})
    >>> cfg.linger_ms, cfg.acks, cfg.bootstrap_servers
    (10, -1, ['127.0.0.1:9092'])
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from rillet import security
from rillet.errors import ConfigError
from rillet.frozen import frozen
from rillet.profile import BROKERS_ENV, default_brokers
from rillet.security import SECURITY_KEYS, profile_security

_INT_MAX = 2**31 - 1


@frozen
class ConfigKey:
    """One accepted key: its dotted name, coercion function, default and a one-line doc."""

    name: str
    coerce: Callable[[str, Any], Any]
    default: Any
    doc: str


# --- coercions: each takes (key, raw value) and returns the typed value or raises ------------


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[str, Any], int]:
    def coerce(key: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int | str | float):
            raise ConfigError(f"{key} must be an integer, got {v!r}")
        try:
            n = int(v) if not isinstance(v, float) or v.is_integer() else None
        except ValueError:
            n = None
        if n is None:
            raise ConfigError(f"{key} must be an integer, got {v!r}")
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            bounds = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise ConfigError(f"{key} must be {bounds}, got {n}")
        return n

    return coerce


def _bool(key: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ConfigError(f"{key} must be true or false, got {v!r}")


def _str(key: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{key} must be a string, got {v!r}")
    return v


def _opt_str(key: str, v: Any) -> str | None:
    return None if v is None else _str(key, v)


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def coerce(key: str, v: Any) -> str:
        if not isinstance(v, str) or v.lower() not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {v!r}")
        return v.lower()

    return coerce


def _opt_choice(*choices: str) -> Callable[[str, Any], str | None]:
    inner = _choice(*choices)

    def coerce(key: str, v: Any) -> str | None:
        return None if v is None else inner(key, v)

    return coerce


def _acks(key: str, v: Any) -> int:
    text = str(v).lower() if not isinstance(v, bool) else ""
    if text == "all" or text == "-1":
        return -1
    if text in ("0", "1"):
        return int(text)
    raise ConfigError(f"{key} must be one of all, -1, 0, 1; got {v!r}")


def _servers(key: str, v: Any) -> list[str]:
    items = v.split(",") if isinstance(v, str) else v
    if not isinstance(items, list | tuple) or not items:
        raise ConfigError(f"{key} must be 'host:port[,host:port...]', got {v!r}")
    out = []
    for item in items:
        item = str(item).strip()
        if item.startswith("tcp://"):
            item = item[len("tcp://"):]
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{key}: {item!r} is not host:port")
        out.append(item)
    return out


def _callable(key: str, v: Any) -> Callable | None:
    if v is not None and not callable(v):
        raise ConfigError(f"{key} must be a callable, got {v!r}")
    return v


def _timeout_ms(key: str, v: Any) -> float:
    """consumer.timeout.ms: -1 (or None) means forever, as in kafka-python."""
    if v is None:
        return float("inf")
    n = _int(-1)(key, v)
    return float("inf") if n < 0 else float(n)


def _k(name: str, coerce: Callable[[str, Any], Any], default: Any, doc: str) -> ConfigKey:
    return ConfigKey(name, coerce, default, doc)


COMMON_KEYS = (
    _k("bootstrap.servers", _servers, None, "host:port list; defaults to $RILLET_BROKERS"),
    _k("client.id", _str, "", "shown by brokers and tools"),
    _k("request.timeout.ms", _int(1), 30000, "how long to wait for a response"),
    _k("retry.backoff.ms", _int(0), 100, "first backoff between retries"),
    _k("retry.backoff.max.ms", _int(0), 1000, "cap of the exponential retry backoff"),
    _k("reconnect.backoff.ms", _int(0), 50, "first backoff before reconnecting"),
    _k("reconnect.backoff.max.ms", _int(0), 1000, "cap of the reconnect backoff"),
    _k("metadata.max.age.ms", _int(0), 300000, "refresh metadata at least this often"),
    _k("socket.connection.setup.timeout.ms", _int(1), 10000, "connect timeout"),
    # docs/security.md (rillet/security.py): from the profile when none is given
    _k("security.protocol", _choice("plaintext", "curve"), "plaintext", "PLAINTEXT or CURVE"),
    _k("curve.client.keyfile", _opt_str, None, "this client's CURVE key pair (certificate)"),
    _k("curve.server.publickey", _opt_str, None, "the brokers' CURVE public key (Z85)"),
)

PRODUCER_KEYS = COMMON_KEYS + (
    _k("acks", _acks, -1, "all/-1 (all in-sync replicas), 1 (leader), 0 (no reply)"),
    _k("linger.ms", _int(0), 5, "wait this long for more records before sending a batch"),
    _k("batch.size", _int(0), 16384, "target size in bytes of one partition batch"),
    _k("compression.type", _choice("none", "gzip", "zstd", "lz4", "snappy"), "none", "batch codec"),
    _k("retries", _int(0), _INT_MAX, "retries of a failed batch (bounded by delivery.timeout.ms)"),
    _k("delivery.timeout.ms", _int(1), 120000, "upper bound from send() to success or failure"),
    _k("max.in.flight.requests.per.connection", _int(1), 5, "unanswered requests per broker"),
    _k("enable.idempotence", _bool, True, "producer id + per-partition sequences: retries never duplicate or reorder"),
    _k("buffer.memory", _int(0), 33554432, "bytes of unsent records before send() blocks"),
    _k("max.block.ms", _int(0), 60000, "how long send() may block (metadata, full buffer)"),
    _k("max.request.size", _int(1), 1048576, "largest record (and request) accepted by send()"),
    _k("partitioner.ignore.keys", _bool, False, "sticky partitioning even for keyed records"),
    _k("partitioner.class", lambda k, v: __import__("rillet._partitioner_class",
                                                    fromlist=["check"]).check(k, v), None,
       "default, round_robin (Kafka's RoundRobinPartitioner), a callable "
       "fn(key, all_partitions, available) or module:attr (rillet/_partitioner_class.py)"),
    _k("transactional.id", _opt_str, None,
       "enables transactions (init_transactions, begin/commit/abort); implies idempotence"),
    _k("transaction.timeout.ms", _int(1, _INT_MAX), 60000,
       "the coordinator aborts a transaction open longer than this"),
    _k("key.serializer", _callable, None, "callable(key) -> bytes"),
    _k("value.serializer", _callable, None, "callable(value) -> bytes"),
)

CONSUMER_KEYS = COMMON_KEYS + (
    _k("group.id", _opt_str, None, "consumer group (stored for the group protocol)"),
    _k("group.instance.id", _opt_str, None, "static membership id"),
    _k("group.remote.assignor", _opt_choice("uniform", "range"), None,
       "server-side assignor this member asks for (KIP-848): uniform or range; "
       "None: the group's group.remote.assignor"),
    _k("auto.offset.reset", _choice("earliest", "latest", "none"), "latest",
       "where to start without a valid position"),
    _k("enable.auto.commit", _bool, True, "commit positions in the background (groups)"),
    _k("auto.commit.interval.ms", _int(0), 5000, "auto-commit period"),
    _k("fetch.min.bytes", _int(0), 1, "broker waits for this many bytes"),
    _k("fetch.max.wait.ms", _int(0), 500, "... or this long"),
    _k("max.partition.fetch.bytes", _int(1), 1048576, "per-partition fetch size"),
    _k("fetch.max.bytes", _int(1), 52428800, "per-response fetch size"),
    _k("max.poll.records", _int(1), 500, "records returned by one poll()"),
    _k("max.poll.interval.ms", _int(1), 300000, "group: max time between polls"),
    _k("session.timeout.ms", _int(1), 45000, "group: session timeout"),
    _k("heartbeat.interval.ms", _int(1), 3000, "group: heartbeat period"),
    _k("isolation.level", _choice("read_uncommitted", "read_committed"), "read_uncommitted",
       "which records are visible"),
    _k("check.crcs", _bool, True, "verify batch digests on fetch"),
    _k("consumer.timeout.ms", _timeout_ms, float("inf"), "iteration stops after this idle time"),
    _k("key.deserializer", _callable, None, "callable(bytes) -> key"),
    _k("value.deserializer", _callable, None, "callable(bytes) -> value"),
)

ADMIN_KEYS = COMMON_KEYS

# The share consumer (KIP-932, docs/queues.md): no positions, no auto-commit, no offset reset
# (the group's share.auto.offset.reset decides on the broker).
SHARE_CONSUMER_KEYS = COMMON_KEYS + (
    _k("group.id", _opt_str, None, "the share group (required)"),
    _k("share.acknowledgement.mode", _choice("implicit", "explicit"), "implicit",
       "implicit: records a poll returned and the app did not acknowledge are accepted by "
       "the next poll/commit/close; explicit: every record must be acknowledged"),
    _k("fetch.min.bytes", _int(0), 1, "broker waits for this many bytes"),
    _k("fetch.max.wait.ms", _int(0), 500, "... or this long"),
    _k("fetch.max.bytes", _int(1), 52428800, "per-response fetch size"),
    _k("max.poll.records", _int(1), 500, "records one poll() returns at most"),
    _k("share.acquire.mode", _choice("batch_optimized", "record_limit"), "batch_optimized",
       "KIP-1206: batch_optimized lets the broker acquire to the end of a stored batch "
       "(max.poll.records per partition is then soft; the rest is kept for the next "
       "polls); record_limit acquires at most max.poll.records per partition"),
    _k("heartbeat.interval.ms", _int(1), 5000,
       "heartbeat period until the coordinator says otherwise"),
    _k("check.crcs", _bool, True, "verify batch digests on fetch"),
    _k("key.deserializer", _callable, None, "callable(bytes) -> key"),
    _k("value.deserializer", _callable, None, "callable(bytes) -> value"),
)


class ClientConfig(Mapping[str, Any]):
    """Resolved configuration: attribute access by snake_case name, mapping by dotted name."""

    def __init__(self, keys: tuple[ConfigKey, ...], values: dict[str, Any]) -> None:
        self._keys = keys
        self._values = values
        for k, v in values.items():
            object.__setattr__(self, k.replace(".", "_"), v)

    def __getitem__(self, name: str) -> Any:
        return self._values[name.replace("_", ".") if name not in self._values else name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._values.items() if not callable(v)}
        return f"ClientConfig({shown})"


def resolve(keys: tuple[ConfigKey, ...], config: Mapping[str, Any] | None,
            kwargs: Mapping[str, Any]) -> ClientConfig:
    """Merge a dotted dict and snake_case keywords, reject unknown keys, coerce values."""
    by_norm = {k.name.replace(".", "_"): k for k in keys}
    given: dict[str, Any] = {}
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(f"config must be a dict of Kafka keys, got {type(config).__name__}")
    for source in (config or {}, kwargs):
        for raw, value in source.items():
            if not isinstance(raw, str):
                raise ConfigError(f"config keys must be strings, got {raw!r}")
            norm = raw.replace(".", "_").replace("-", "_")
            key = by_norm.get(norm)
            if key is None:
                raise ConfigError(_unknown(raw, keys))
            given[key.name] = value
    if not any(k in given for k in SECURITY_KEYS) and "security.protocol" in {
            k.name for k in keys}:
        given.update(profile_security())
    values: dict[str, Any] = {}
    for key in keys:
        if key.name in given:
            values[key.name] = key.coerce(key.name, given[key.name])
        else:
            values[key.name] = key.default
    security.check(values)
    if values.get("bootstrap.servers") is None:
        found = default_brokers()
        if found is None:
            raise ConfigError(
                f"bootstrap.servers is required (or set ${BROKERS_ENV}, or start a local "
                "cluster with `rillet cluster up`)")
        values["bootstrap.servers"] = _servers(*found)
        if found[0].startswith("the profile"):
            from rillet._profile_check import client_note

            client_note()
    return ClientConfig(keys, values)


def _unknown(raw: str, keys: tuple[ConfigKey, ...]) -> str:
    dotted = raw.replace("_", ".")
    names = [k.name for k in keys]
    close = difflib.get_close_matches(dotted, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown config key {raw!r}{hint}"


def producer_config(config: Mapping[str, Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None) -> ClientConfig:
    cfg = resolve(PRODUCER_KEYS, config, kwargs or {})
    if cfg.transactional_id is not None:
        # Kafka's checks (ProducerConfig): a transactional producer is idempotent, and an
        # explicit setting that contradicts it is refused rather than silently overridden
        if cfg.transactional_id == "":
            raise ConfigError("transactional.id must not be empty")
        if not cfg.enable_idempotence:
            raise ConfigError("transactional.id requires enable.idempotence=true "
                              "(a transactional producer is idempotent)")
        if cfg.acks != -1:
            raise ConfigError(f"transactional.id requires acks=all (got acks={cfg.acks}): "
                              "a transaction's records must be on every in-sync replica")
    return cfg


def consumer_config(config: Mapping[str, Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None) -> ClientConfig:
    return resolve(CONSUMER_KEYS, config, kwargs or {})


def share_consumer_config(config: Mapping[str, Any] | None = None,
                          kwargs: Mapping[str, Any] | None = None) -> ClientConfig:
    cfg = resolve(SHARE_CONSUMER_KEYS, config, kwargs or {})
    if not cfg.group_id:
        raise ConfigError("a share consumer needs group.id (the share group)")
    return cfg


def admin_config(config: Mapping[str, Any] | None = None,
                 kwargs: Mapping[str, Any] | None = None) -> ClientConfig:
    return resolve(ADMIN_KEYS, config, kwargs or {})
