"""Dynamic broker configs on the broker (docs/operations.md, "Dynamic broker configs"): which
keys may change without a restart, their validation (the controller's), applying them when
the metadata image changes, and describing a broker's configs with their sources.

The records and the layering are coordinator/broker_configs.py. A key is dynamic here only
if a running broker really applies a new value:

* the topic-default synonyms that are log configs (``log.retention.ms``,
  ``log.segment.bytes``, ``log.cleanup.policy``, ``message.max.bytes``,
  ``log.flush.interval.ms``, ...): the new default reaches every hosted partition of a topic
  that has no override of its own (its log is reopened with the new LogConfig, as for a
  topic's AlterConfigs);
* ``min.insync.replicas``: hosted partitions get it with their partition state;
* the thread pools ``num.io.threads`` (the ``io`` lane: partition replicas) and
  ``num.network.threads`` (the ``default`` lane: sessions, coordinators, the controller):
  the lane is resized while it runs (actors/runtime.py ``Dispatcher.resize``: a shrinking
  lane retires workers after their current turn). The KAFKA listener's own handler pool
  (actors/kafka_listener.py) is sized from ``num.network.threads`` at start only.

Every other broker config is static (listeners, thread pools, quorum and timeouts are read
once at start): AlterConfigs on it is refused with INVALID_CONFIG naming the reason. Threads:
the image is applied on the controller thread (``LiveBrokerConfigs.update``); the shared
``BrokerConfig`` mapping is updated key by key in place, so every reader holding it (sessions,
the KAFKA listener, the controller) sees the new value on its next read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from rillet.coordinator import broker_configs as bc
from rillet.coordinator.control.delta import LocalChanges
from rillet.logstore.config import LOG_CONFIG_NAMES
from rillet.transport import protocol as P

from .configs import (
    BROKER_DEFAULTS,
    BROKER_TOPIC_SYNONYMS,
    BrokerConfig,
    ConfigError,
    _hint,
    validate_broker_configs,
)

# broker key -> the topic config it is the default of, for the log configs a partition's log
# is reopened with (logstore/config.py LogConfig)
LOG_DEFAULT_KEYS: dict[str, str] = {
    b: t for b, t in BROKER_TOPIC_SYNONYMS.items() if t in LOG_CONFIG_NAMES
}
# handed to hosted partitions with their partition state (PartitionChanged)
PARTITION_STATE_KEYS = ("min.insync.replicas",)
# thread pools resized on the running broker: broker key -> dispatcher lane (actors/runtime.py)
THREAD_LANES = {"num.io.threads": "io", "num.network.threads": "default"}
DYNAMIC_BROKER_CONFIGS = (
    frozenset(LOG_DEFAULT_KEYS) | frozenset(PARTITION_STATE_KEYS) | frozenset(THREAD_LANES)
)


def is_dynamic(name: str) -> bool:
    return name in DYNAMIC_BROKER_CONFIGS


def validate(resource: str, values: Mapping[str, str | None]) -> None:
    """The controller's check of a BROKER resource's new dynamic values (``resource``: ``""``
    or a broker id): ``ConfigError`` (a ValueError) for an unknown key, a static key, or a
    bad value. ``None`` values are removals: only their key is checked."""
    for name in values:
        if name not in BROKER_DEFAULTS:
            raise ConfigError(f"unknown broker config {name!r}{_hint(name, BROKER_DEFAULTS)}")
        if not is_dynamic(name):
            raise ConfigError(
                f"{name} is a static broker config: a running broker reads it only at start. "
                "Change it in server.properties (or -c) and restart the broker (a rolling "
                "restart, docs/operations.md). Dynamic broker configs: "
                + ", ".join(sorted(DYNAMIC_BROKER_CONFIGS))
            )
    validate_broker_configs({k: v for k, v in values.items() if v is not None})


class LiveBrokerConfigs:
    """This broker's configs as the metadata image makes them: ``configs`` (the shared
    ``BrokerConfig``) holds the static values until ``update`` lays the image's dynamic values
    over them. Owned by the controller thread (``update``); readers anywhere."""

    def __init__(self, broker_id: int, configs: BrokerConfig) -> None:
        self.broker_id = broker_id
        self.configs = configs
        self.static = dict(configs)  # server.properties over the defaults, as started
        self._seen: object = None  # the image's broker_configs last applied

    def on_image(self, image, log) -> set[str]:
        """``update``, logging what changed; a set of values this broker cannot take (which the
        controller's validation should have refused) is logged and not applied."""
        if image.broker_configs is self._seen:  # replaced, never edited: unchanged
            return set()
        try:
            changed = self.update(image)
        except ConfigError as e:
            log.warning("dynamic broker configs not applied: {}", e)
            return set()
        finally:
            self._seen = image.broker_configs
        for k in sorted(changed):
            log.info("dynamic broker config {}={} ({})", k, self.configs[k],
                     _SOURCE_NAMES[self.source(image, k)])
        resize_lanes(self.configs, changed)
        return changed

    def update(self, image) -> set[str]:
        """Apply ``image``'s dynamic configs; the keys whose value changed. A value the image
        holds for a key this broker does not treat as dynamic is ignored."""
        layered = bc.effective(self.static, image.broker_configs, self.broker_id)
        wanted = {
            k: (layered[k] if is_dynamic(k) else self.static[k])
            for k in self.static
        }
        changed = {k for k, v in wanted.items() if self.configs.get(k) != v}
        if changed:
            validate_broker_configs(wanted)  # ConfigError: the caller keeps the old values
            for k in changed:
                self.configs[k] = wanted[k]
        return changed

    def source(self, image, name: str) -> int:
        layers = image.broker_configs if is_dynamic(name) else {}  # as ``update`` applies them
        return bc.source_of(name, self.static, BROKER_DEFAULTS, layers, self.broker_id)

    def synonyms(self, image, name: str) -> tuple[tuple[str, str, int], ...]:
        """``(name, value, source)`` of each layer that holds ``name``, most specific first
        (Kafka's DescribeConfigs synonyms of a broker config)."""
        cluster, own = bc.dynamic_layers(image.broker_configs, self.broker_id)
        out = [(name, layer[name], src) for layer, src in (
            (own, bc.DYNAMIC_BROKER), (cluster, bc.DYNAMIC_DEFAULT_BROKER)) if name in layer]
        default = BROKER_DEFAULTS.get(name, "")
        if self.static.get(name, default) != default:
            out.append((name, self.static[name], bc.STATIC_BROKER))
        out.append((name, default, bc.DEFAULT))
        return tuple(out)

    def entries(self, image) -> list[tuple[str, str, int, bool]]:
        """``(name, value, source, read_only)`` of every config of this broker, by name."""
        return [
            (k, v, self.source(image, k), not is_dynamic(k))
            for k, v in sorted(self.configs.items())
        ]


def resize_lanes(configs: Mapping[str, str], changed: Collection[str]) -> None:
    """Resize the dispatcher lane of each thread-pool key in ``changed`` to its new value."""
    from . import runtime

    for key in sorted(set(changed) & set(THREAD_LANES)):
        runtime.configure(THREAD_LANES[key], int(configs[key]))


_SOURCE_NAMES = {
    bc.DYNAMIC_BROKER: "per-broker",
    bc.DYNAMIC_DEFAULT_BROKER: "cluster-wide default",
    bc.STATIC_BROKER: "static",
    bc.DEFAULT: "default",
}


def widen(changes: LocalChanges, keys: Collection[str], image,
          hosted: Collection[tuple[str, int]]) -> LocalChanges:
    """The broker's local changes plus what the dynamic config ``keys`` that just changed ask
    of its hosted partitions: a new log default reopens every hosted log (a partition whose
    topic overrides the key gets an equal LogConfig, which it ignores); a new
    min.insync.replicas goes to every hosted partition with its state."""
    keys = set(keys)
    if not keys & DYNAMIC_BROKER_CONFIGS:
        return changes
    gone = {(n, p) for n, p, _ in changes.deletes}
    live = sorted(
        (n, p) for n, p in hosted
        if (n, p) not in gone and p in getattr(image.topics.get(n), "partitions", {})
    )
    reconfigured, changed = changes.reconfigured, changes.changed
    if keys & set(LOG_DEFAULT_KEYS):
        reconfigured = tuple(sorted(set(reconfigured) | {n for n, _ in live}))
    if keys & set(PARTITION_STATE_KEYS):
        seen = {(n, p) for n, p, _ in changed}
        changed = changed + tuple(
            (n, p, image.topics[n].partitions[p]) for n, p in live if (n, p) not in seen
        )
    return replace(changes, reconfigured=reconfigured, changed=changed)


def default_entries(image) -> list[tuple[str, str, int, bool]]:
    """The cluster-wide dynamic defaults (the BROKER resource ``""``), as Kafka describes its
    ``<default>`` entity: only the keys set there."""
    values = image.broker_configs.get(bc.DEFAULT_RESOURCE, {})
    return [(k, v, bc.DYNAMIC_DEFAULT_BROKER, False) for k, v in sorted(values.items())]


def topic_synonym_source(live: LiveBrokerConfigs | None, image, broker_key: str) -> int | None:
    """Where this broker's value of a topic config's broker synonym comes from, or None when
    it is Kafka's default (then the topic shows DEFAULT_CONFIG)."""
    if live is None:
        return None
    source = live.source(image, broker_key)
    return None if source == bc.DEFAULT else source


_TOPIC_SYNONYM = {t: b for b, t in BROKER_TOPIC_SYNONYMS.items()}


def topic_default_source(ctx, topic_key: str) -> int:
    """The native DescribeConfigs source of a topic config the topic does not override: the
    dynamic broker layer its broker synonym comes from, else DEFAULT_CONFIG (as before)."""
    live = getattr(ctx, "live_configs", None)
    broker_key = _TOPIC_SYNONYM.get(topic_key)
    if live is None or broker_key is None:
        return bc.DEFAULT
    source = live.source(ctx.image, broker_key)
    return source if source in (bc.DYNAMIC_BROKER, bc.DYNAMIC_DEFAULT_BROKER) else bc.DEFAULT


def broker_resource(ctx, resource_name: str) -> tuple[list[tuple[str, str, int, bool]], str | None]:
    """DescribeConfigs of a BROKER resource on this broker: ``""`` (the cluster-wide dynamic
    defaults) or this broker's id (all its configs); ``(entries, None)`` or ``([], error)``
    for another broker's id (only that broker knows its static configs: ask it)."""
    live = getattr(ctx, "live_configs", None)
    try:
        key = bc.resource_key(resource_name)
    except ValueError as e:
        return [], str(e)
    if key == bc.DEFAULT_RESOURCE:
        return default_entries(ctx.image), None
    if key != str(ctx.broker_id):
        return [], f"broker {resource_name!r}: ask that broker (this is broker {ctx.broker_id})"
    if live is None:  # a context without the node (tests): the static configs
        return [(k, v, bc.STATIC_BROKER if v != BROKER_DEFAULTS.get(k) else bc.DEFAULT,
                 not is_dynamic(k)) for k, v in sorted(ctx.broker_configs.items())], None
    return live.entries(ctx.image), None


def native_broker_entries(ctx, resource_name: str):
    """``broker_resource`` as native ``ConfigEntry``s."""
    entries, error = broker_resource(ctx, resource_name)
    return [
        P.ConfigEntry(name=k, value=v, read_only=ro, is_default=src == bc.DEFAULT, source=src)
        for k, v, src, ro in entries
    ], error
