"""Pure decisions of the mirror: topic naming, filters, loop rule, offset translation, config.

Nothing here does I/O, reads the clock or sleeps.

Replication policies (MirrorMaker 2's ``ReplicationPolicy``)::

    >>> p = DefaultReplicationPolicy(".")
    >>> p.format_remote_topic("A", "orders")
    'A.orders'
    >>> p.topic_source("A.orders"), p.upstream_topic("A.orders")
    ('A', 'orders')
    >>> should_replicate_topic(p, "B", "A", "B.orders", re.compile(".*"))   # loop rule
    False

Offset translation (MM2's ``OffsetSyncStore``): an offset sync ``(upstream u, downstream d)``
says record ``u`` on A landed at ``d`` on B. A consumer committed at ``c`` on A resumes on B
at ``d + 1`` of the latest sync with ``u < c`` (or at ``d`` when ``u == c``): it may reread a
few records, never skip one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import field

from rillet.connectors.mirror.clients import (
    client_keys,
    flow_client_configs,
    owned_key_error,
    top_level_role_error,
)

from rillet.frozen import frozen

INTERNAL_SUFFIX = ".internal"
HEARTBEATS_TOPIC = "heartbeats"


class MirrorConfigError(ValueError):
    """A mirror properties file that cannot be run; the message names the key."""


# -- replication policies ------------------------------------------------------------------


@frozen
class DefaultReplicationPolicy:
    """Remote topics are ``<source alias><separator><topic>``: ``A.orders`` on B."""

    separator: str = "."

    def format_remote_topic(self, source_alias: str, topic: str) -> str:
        return f"{source_alias}{self.separator}{topic}"

    def topic_source(self, topic: str) -> str | None:
        """The alias of the cluster ``topic`` was mirrored from, None for a local topic."""
        if self.separator not in topic or is_internal_topic(topic):
            return None
        return topic.split(self.separator, 1)[0]

    def upstream_topic(self, topic: str) -> str | None:
        if self.topic_source(topic) is None:
            return None
        return topic.split(self.separator, 1)[1]

    def offset_syncs_topic(self, target_alias: str) -> str:
        return f"mm2-offset-syncs{self.separator}{target_alias}{INTERNAL_SUFFIX}"

    def checkpoints_topic(self, source_alias: str) -> str:
        return f"{source_alias}{self.separator}checkpoints{INTERNAL_SUFFIX}"


@frozen
class IdentityReplicationPolicy(DefaultReplicationPolicy):
    """Remote topics keep their names (one-way mirroring only: it cannot tell a remote topic
    from a local one, so active-active with it would loop; ``parse_mirror_config`` refuses)."""

    def format_remote_topic(self, source_alias: str, topic: str) -> str:
        return topic

    def topic_source(self, topic: str) -> str | None:
        return None

    def upstream_topic(self, topic: str) -> str | None:
        return topic


POLICIES = {
    "DefaultReplicationPolicy": DefaultReplicationPolicy,
    "org.apache.kafka.connect.mirror.DefaultReplicationPolicy": DefaultReplicationPolicy,
    "IdentityReplicationPolicy": IdentityReplicationPolicy,
    "org.apache.kafka.connect.mirror.IdentityReplicationPolicy": IdentityReplicationPolicy,
}


def is_internal_topic(topic: str) -> bool:
    return (topic.startswith(("__", "_")) or topic.endswith(INTERNAL_SUFFIX)
            or topic.startswith("mm2-"))


def should_replicate_topic(policy: DefaultReplicationPolicy, source_alias: str,
                           target_alias: str, topic: str, topics: re.Pattern) -> bool:
    """Mirror ``topic`` of ``source_alias`` to ``target_alias``? Not internal topics, not
    heartbeats' own cycle, and never a topic that came from the target (the loop rule)."""
    if is_internal_topic(topic) or not topics.fullmatch(topic):
        return False
    if topic == HEARTBEATS_TOPIC:
        return True
    origin = policy.topic_source(topic)
    # A topic that is already remote for the target (B.x mirrored into A) goes no further
    # back, and neither does anything that passed through the target on a longer cycle.
    while origin is not None:
        if origin == target_alias:
            return False
        topic = policy.upstream_topic(topic) or ""
        origin = policy.topic_source(topic)
    return True


# -- offset translation --------------------------------------------------------------------


@frozen
class OffsetSync:
    """Record ``upstream_offset`` of ``topic``/``partition`` on the source is
    ``downstream_offset`` of the remote topic on the target."""

    topic: str
    partition: int
    upstream_offset: int
    downstream_offset: int


def translate_offset(syncs: Iterable[OffsetSync], committed: int) -> int | None:
    """Where a group committed at ``committed`` (the next record to read) on the source
    resumes on the target, from the syncs of one partition; None without a usable sync.

    >>> translate_offset([OffsetSync("t", 0, 0, 0), OffsetSync("t", 0, 10, 12)], 15)
    13
    >>> translate_offset([OffsetSync("t", 0, 10, 12)], 10)
    12
    >>> translate_offset([OffsetSync("t", 0, 10, 12)], 5) is None
    True
    """
    best: OffsetSync | None = None
    for sync in syncs:
        if sync.upstream_offset <= committed and (
                best is None or sync.upstream_offset > best.upstream_offset):
            best = sync
    if best is None:
        return None
    if best.upstream_offset == committed:
        return best.downstream_offset
    return best.downstream_offset + 1


def should_emit_sync(last: OffsetSync | None, upstream: int, downstream: int,
                     max_lag: int) -> bool:
    """Emit a new offset sync when none exists, the offsets drifted apart (a gap on the
    source: compaction, transactions markers), or ``max_lag`` records passed since the last."""
    if last is None:
        return True
    if downstream - last.downstream_offset != upstream - last.upstream_offset:
        return True
    return upstream - last.upstream_offset >= max_lag


def sync_points(last: OffsetSync | None, upstream_first: int, downstream_first: int,
                count: int, max_lag: int) -> list[tuple[int, int]]:
    """The ``(upstream, downstream)`` syncs that :func:`should_emit_sync`, asked record by
    record, emits for a run of ``count`` records whose offsets are contiguous on both sides
    (record ``i`` is ``upstream_first + i`` on the source, ``downstream_first + i`` on the
    target), computed without visiting each record (the mirror's per-record cost).

    Within such a run the offsets never drift apart, so after the first record only
    ``max_lag`` matters::

        >>> sync_points(None, 10, 50, 250, 100)
        [(10, 50), (110, 150), (210, 250)]
        >>> sync_points(OffsetSync("t", 0, 0, 40), 10, 50, 95, 100)   # same drift: lag only
        [(100, 140)]
    """
    if count <= 0:
        return []
    out: list[tuple[int, int]] = []
    if max_lag <= 0:  # a sync per record, but a re-copy behind the last sync emits none
        for i in range(count):
            if should_emit_sync(last, upstream_first + i, downstream_first + i, max_lag):
                out.append((upstream_first + i, downstream_first + i))
                last = OffsetSync("", 0, upstream_first + i, downstream_first + i)
        return out
    if should_emit_sync(last, upstream_first, downstream_first, max_lag):
        out.append((upstream_first, downstream_first))
        next_u = upstream_first + max_lag
    else:
        next_u = last.upstream_offset + max_lag
    shift = downstream_first - upstream_first
    end = upstream_first + count
    while next_u < end:
        out.append((next_u, next_u + shift))
        next_u += max_lag
    return out


# -- configuration (MirrorMaker 2's mm2.properties) ----------------------------------------

FLOW_KEYS = {"enabled", "topics", "groups", "topics.exclude", "groups.exclude"}
GLOBAL_KEYS = {
    "clusters", "replication.policy.class", "replication.policy.separator",
    "sync.topic.configs.enabled", "emit.checkpoints.interval.seconds",
    "emit.heartbeats.interval.seconds", "sync.group.offsets.enabled",
    "sync.group.offsets.interval.seconds", "refresh.topics.interval.seconds",
    "refresh.groups.interval.seconds", "exactly.once.support", "offset.lag.max",
    "tasks.max", "replication.factor", "emit.checkpoints.enabled", "emit.heartbeats.enabled",
    "listeners",  # the read-only Connect REST view (connectors/mirror/rest_view.py)
}
FLOW_OVERRIDABLE = GLOBAL_KEYS - {"clusters", "replication.policy.class",
                                  "replication.policy.separator", "listeners"}
CLUSTER_KEYS = {"bootstrap.servers"}
EOS_VALUES = {"enabled", "disabled", "requested"}


@frozen
class Flow:
    """One replication flow ``source->target`` and its effective settings."""

    source: str
    target: str
    source_bootstrap: str
    target_bootstrap: str
    topics: re.Pattern
    groups: re.Pattern
    topics_exclude: re.Pattern | None
    groups_exclude: re.Pattern | None
    sync_topic_configs: bool = True
    emit_checkpoints_interval_s: float = 60.0
    emit_heartbeats_interval_s: float = 1.0
    sync_group_offsets: bool = False
    refresh_topics_interval_s: float = 600.0
    exactly_once: bool = False
    offset_lag_max: int = 100
    #: (side, role) -> that client's settings (connectors/mirror/clients.py)
    clients: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict,
                                                                 compare=False)

    def client(self, side: str, role: str, **fixed: str) -> dict[str, str]:
        """The settings of the flow's ``role`` client on ``side`` (source/target), plus the
        ones the mirror fixes for this use (``fixed``, with ``.`` written ``_``)."""
        cfg = dict(self.clients.get((side, role)) or {
            "bootstrap.servers": self.source_bootstrap if side == "source"
            else self.target_bootstrap})
        cfg.update({k.replace("_", "."): v for k, v in fixed.items()})
        return cfg

    def wants_topic(self, policy: DefaultReplicationPolicy, topic: str) -> bool:
        if self.topics_exclude is not None and self.topics_exclude.fullmatch(topic):
            return False
        return should_replicate_topic(policy, self.source, self.target, topic, self.topics)

    def wants_group(self, group: str) -> bool:
        if self.groups_exclude is not None and self.groups_exclude.fullmatch(group):
            return False
        return bool(self.groups.fullmatch(group))


@frozen
class MirrorConfig:
    clusters: tuple[str, ...]
    policy: DefaultReplicationPolicy
    flows: tuple[Flow, ...] = field(default=())
    #: ``http://HOST:PORT`` of the read-only Connect REST view, None: no view
    listeners: str | None = None


def parse_properties(text: str) -> dict[str, str]:
    """Java-properties subset: ``key = value`` / ``key: value`` lines, ``#``/``!`` comments."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"([^=:\s]+(?:->[^=:\s]+)?)\s*[=:]\s*(.*)$", line)
        if m is None:
            raise MirrorConfigError(f"line {n}: expected 'key = value', got {raw!r}")
        out[m.group(1)] = m.group(2).strip()
    return out


def _bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "false"):
        return v == "true"
    raise MirrorConfigError(f"{key} must be true or false, got {value!r}")


def _number(key: str, value: str, kind=float):
    try:
        n = kind(value)
    except ValueError:
        raise MirrorConfigError(f"{key} must be a number, got {value!r}") from None
    if n < 0:
        raise MirrorConfigError(f"{key} must be >= 0, got {value!r}")
    return n


def _regex(key: str, value: str) -> re.Pattern:
    pattern = "|".join(p.strip() for p in value.split(",") if p.strip()) or "(?!)"
    try:
        return re.compile(pattern)
    except re.error as e:
        raise MirrorConfigError(f"{key}: bad regex {value!r}: {e}") from None


def _unknown(key: str, known: Iterable[str]) -> MirrorConfigError:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return MirrorConfigError(f"unknown key {key!r}{hint}")


def parse_mirror_config(props: Mapping[str, str]) -> MirrorConfig:
    """Validate MM2 properties and return the clusters, policy and enabled flows."""
    if "clusters" not in props:
        raise MirrorConfigError("clusters is required (e.g. 'clusters = A, B')")
    clusters = tuple(c.strip() for c in props["clusters"].split(",") if c.strip())
    if len(clusters) < 2 or len(set(clusters)) != len(clusters):
        raise MirrorConfigError(f"clusters must name at least two distinct aliases, got "
                                f"{props['clusters']!r}")
    known = set(GLOBAL_KEYS)
    for c in clusters:
        known |= {f"{c}.{k}" for k in CLUSTER_KEYS}
        for d in clusters:
            if c != d:
                known |= {f"{c}->{d}.{k}" for k in FLOW_KEYS | FLOW_OVERRIDABLE}
    known |= client_keys(clusters)
    for key in props:
        if key not in known:
            message = owned_key_error(key) or top_level_role_error(key)
            if message:
                raise MirrorConfigError(message)
            raise _unknown(key, known)
    for c in clusters:
        if not props.get(f"{c}.bootstrap.servers"):
            raise MirrorConfigError(f"{c}.bootstrap.servers is required")
    cls_name = props.get("replication.policy.class", "DefaultReplicationPolicy")
    short = cls_name.rsplit(".", 1)[-1]
    if cls_name not in POLICIES and short not in POLICIES:
        raise _unknown(cls_name, POLICIES) from None
    separator = props.get("replication.policy.separator", ".")
    if not separator:
        raise MirrorConfigError("replication.policy.separator must not be empty")
    policy = POLICIES.get(cls_name, POLICIES.get(short))(separator)

    def setting(prefix: str, key: str, default: str) -> str:
        return props.get(f"{prefix}.{key}", props.get(key, default))

    flows = []
    for s in clusters:
        for t in clusters:
            if s == t:
                continue
            p = f"{s}->{t}"
            if not _bool(f"{p}.enabled", props.get(f"{p}.enabled", "false")):
                continue
            eos = setting(p, "exactly.once.support", "disabled").lower()
            if eos not in EOS_VALUES:
                raise MirrorConfigError(f"exactly.once.support must be one of "
                                        f"{sorted(EOS_VALUES)}, got {eos!r}")
            # "requested" asks for it where the cluster supports transactions: every rillet
            # cluster does, so it is "enabled" (docs/mirror.md)
            ex_t, ex_g = props.get(f"{p}.topics.exclude"), props.get(f"{p}.groups.exclude")
            try:
                clients = flow_client_configs(props, s, t, eos != "disabled")
            except ValueError as exc:
                raise MirrorConfigError(str(exc)) from None
            flows.append(Flow(
                source=s, target=t,
                source_bootstrap=props[f"{s}.bootstrap.servers"],
                target_bootstrap=props[f"{t}.bootstrap.servers"],
                topics=_regex(f"{p}.topics", props.get(f"{p}.topics", ".*")),
                groups=_regex(f"{p}.groups", props.get(f"{p}.groups", ".*")),
                topics_exclude=_regex(f"{p}.topics.exclude", ex_t) if ex_t else None,
                groups_exclude=_regex(f"{p}.groups.exclude", ex_g) if ex_g else None,
                sync_topic_configs=_bool("sync.topic.configs.enabled",
                                         setting(p, "sync.topic.configs.enabled", "true")),
                emit_checkpoints_interval_s=_number(
                    "emit.checkpoints.interval.seconds",
                    setting(p, "emit.checkpoints.interval.seconds", "60")),
                emit_heartbeats_interval_s=_number(
                    "emit.heartbeats.interval.seconds",
                    setting(p, "emit.heartbeats.interval.seconds", "1")),
                sync_group_offsets=_bool("sync.group.offsets.enabled",
                                         setting(p, "sync.group.offsets.enabled", "false")),
                refresh_topics_interval_s=_number(
                    "refresh.topics.interval.seconds",
                    setting(p, "refresh.topics.interval.seconds", "600")),
                exactly_once=eos != "disabled",
                offset_lag_max=_number("offset.lag.max", setting(p, "offset.lag.max", "100"),
                                       int),
                clients=clients,
            ))
    if not flows:
        raise MirrorConfigError("no flow enabled: set e.g. 'A->B.enabled = true'")
    if isinstance(policy, IdentityReplicationPolicy):
        pairs = {(f.source, f.target) for f in flows}
        if any((t, s) in pairs for s, t in pairs):
            raise MirrorConfigError("IdentityReplicationPolicy cannot run active-active "
                                    "(A->B and B->A): records would loop")
    listeners = props.get("listeners") or None
    if listeners is not None and not re.fullmatch(r"http://[^/:\s]+:\d{1,5}/?", listeners):
        raise MirrorConfigError(f"listeners must be http://HOST:PORT, got {listeners!r}")
    return MirrorConfig(clusters=clusters, policy=policy, flows=tuple(flows),
                        listeners=listeners)


# Topic configs never copied to the target (they describe the source cluster's placement).
CONFIGS_NOT_SYNCED = frozenset({"min.insync.replicas", "follower.replication.throttled.replicas",
                                "leader.replication.throttled.replicas",
                                "message.timestamp.type", "unclean.leader.election.enable"})


def configs_to_sync(source: Mapping[str, str], target: Mapping[str, str]) -> dict[str, str]:
    """The topic config changes that make ``target`` match ``source`` (MM2's
    ``sync.topic.configs``), leaving out placement-specific keys."""
    return {k: v for k, v in source.items()
            if k not in CONFIGS_NOT_SYNCED and target.get(k) != v}
