"""Topic and broker configs: Kafka's names and defaults, validation with did-you-mean hints.

Topic configs are stored in the metadata image only when set explicitly; everything else
comes from the broker's defaults (``log.retention.ms`` and friends, settable with
``--config``) and then from Kafka's defaults below.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from rillet.coordinator.share import config as share_config
from rillet.logstore.config import COMPRESSION_TYPES, TIMESTAMP_TYPES, LogConfig
from rillet.logstore.errors import LogStoreError

DAY_MS = 24 * 3600 * 1000

# topic config -> Kafka's default (as the string DescribeConfigs shows)
TOPIC_DEFAULTS: dict[str, str] = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "delete.retention.ms": str(DAY_MS),
    "flush.mode": "interval",
    "flush.ms": "1000",
    "index.interval.bytes": "4096",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "retention.bytes": "-1",
    "retention.ms": str(7 * DAY_MS),
    "segment.bytes": str(1 << 30),
    "segment.ms": str(7 * DAY_MS),
    "unclean.leader.election.enable": "false",
    # the cleaner (issue #21, logstore/cleaner_select.py): Kafka's names and defaults
    "min.cleanable.dirty.ratio": "0.5",
    "max.compaction.lag.ms": str(2**63 - 1),
    # record timestamps of CreateTime topics (KIP-937; issue #21, logstore/validator.py)
    "message.timestamp.difference.max.ms": str(2**63 - 1),
    "message.timestamp.before.max.ms": str(2**63 - 1),
    "message.timestamp.after.max.ms": str(2**63 - 1),
}

# broker config -> the topic config it supplies the default for (Kafka's synonyms)
BROKER_TOPIC_SYNONYMS: dict[str, str] = {
    "log.cleanup.policy": "cleanup.policy",
    "compression.type": "compression.type",
    "log.cleaner.delete.retention.ms": "delete.retention.ms",
    "log.flush.mode": "flush.mode",
    "log.flush.interval.ms": "flush.ms",
    "log.index.interval.bytes": "index.interval.bytes",
    "message.max.bytes": "max.message.bytes",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.cleaner.min.compaction.lag.ms": "min.compaction.lag.ms",
    "min.insync.replicas": "min.insync.replicas",
    "log.retention.bytes": "retention.bytes",
    "log.retention.ms": "retention.ms",
    "log.segment.bytes": "segment.bytes",
    "log.roll.ms": "segment.ms",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
    # the cleaner (issue #21)
    "log.cleaner.min.cleanable.ratio": "min.cleanable.dirty.ratio",
    "log.cleaner.max.compaction.lag.ms": "max.compaction.lag.ms",
    # record timestamps (KIP-937)
    "log.message.timestamp.difference.max.ms": "message.timestamp.difference.max.ms",
    "log.message.timestamp.before.max.ms": "message.timestamp.before.max.ms",
    "log.message.timestamp.after.max.ms": "message.timestamp.after.max.ms",
}

# broker-only configs and their defaults
BROKER_DEFAULTS: dict[str, str] = {
    "num.partitions": "1",
    "default.replication.factor": "1",
    "log.retention.check.interval.ms": "300000",
    "log.flush.scheduler.interval.ms": "200",
    "socket.request.max.bytes": str(100 << 20),
    # bytes of requests read and not yet answered, per broker (-1: unbounded, Kafka's
    # default). 256 MiB: two requests of the largest size (socket.request.max.bytes) fit,
    # and a 1-2 GiB broker process cannot be pushed out of memory by clients' request bursts
    "queued.max.request.bytes": str(256 << 20),
    "auto.create.topics.enable": "false",
    "connections.max.idle.ms": "600000",
    # NAME://HOST:PORT,... (actors/listeners.py): CLIENT (native), BROKER (inter-broker),
    # KAFKA (Kafka's wire protocol). Empty: the broker's --listen / --internal-listen.
    "listeners": "",
    # the addresses clients and other brokers are told to use; empty: the bound ones
    "advertised.listeners": "",
    "cluster.id": "rillet",
    # the actor runtime (actors/runtime.py): pool threads of the request lane (sessions,
    # coordinators, the controller) and of the I/O lane (partition replicas)
    "num.network.threads": "3",
    "num.io.threads": "8",
    # the controller quorum and broker liveness (docs/cluster.md)
    "controller.quorum.voters": "",  # ID@HOST:PORT,...; empty: this broker alone
    "controller.quorum.election.timeout.ms": "1000",
    # a follower's wait for its leader before a pre-vote; a leader resigns after 1.5x it
    # without a majority (KRaft's check-quorum). coordinator/raft/config.py
    "controller.quorum.fetch.timeout.ms": "2000",
    "broker.heartbeat.interval.ms": "2000",
    "broker.session.timeout.ms": "9000",
    "metadata.snapshot.threshold.entries": "1000",
    # the inter-broker listener's CURVE key pair (a ZeroMQ certificate file holding the
    # cluster's public and secret key; docs/cluster.md). Empty: that listener is plain TCP
    # and anyone who can reach it may speak Raft to the quorum (a warning at start).
    "inter.broker.curve.keyfile": "",
    # replication (docs/replication.md)
    "replica.lag.time.max.ms": "30000",
    "replica.fetch.wait.max.ms": "500",
    "replica.fetch.max.bytes": "1048576",
    "replica.high.watermark.checkpoint.interval.ms": "5000",
    "auto.leader.rebalance.enable": "true",
    "leader.imbalance.check.interval.seconds": "300",
    # idempotent producers: a producer id whose last batch is older than this is forgotten by
    # each partition (its next batch with a sequence > 0 gets UNKNOWN_PRODUCER_ID)
    "producer.id.expiration.ms": "86400000",
    "producer.id.expiration.check.interval.ms": "600000",
    # the background scrub of stored batches (actors/scrubber.py; not in Kafka)
    "log.scrub.enable": "true",
    "log.scrub.bytes.per.second": str(32 << 20),
    "log.scrub.interval.ms": str(7 * DAY_MS),
    # consumer groups (actors/group_coordinator.py, docs/consumer-groups.md)
    "offsets.topic.num.partitions": "10",
    "offsets.topic.replication.factor": "3",
    "offsets.topic.segment.bytes": str(100 << 20),
    "group.consumer.session.timeout.ms": "45000",
    "group.consumer.heartbeat.interval.ms": "5000",
    "group.consumer.max.size": str(2**31 - 1),
    "group.remote.assignor": "uniform",
    "offsets.retention.minutes": "10080",
    "offset.metadata.max.bytes": "4096",
    # transactions: the coordinator (actors/txn_coordinator.py, docs/transactions.md)
    "transaction.state.log.num.partitions": "50",
    "transaction.state.log.replication.factor": "3",  # capped at the live brokers
    "transaction.state.log.min.isr": "2",  # capped at the replication factor
    "transaction.state.log.segment.bytes": str(100 << 20),
    "transaction.max.timeout.ms": "900000",
    "transactional.id.expiration.ms": "604800000",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "10000",
    "transaction.remove.expired.transaction.cleanup.interval.ms": "3600000",
    # share groups (KIP-932; docs/queues.md): the group.share.* defaults of the GROUP
    # config resource's keys, and the share-state topic (coordinator/share/config.py)
    **share_config.BROKER_DEFAULTS,
    # the share-state coordinator's topic (actors/share_state.py)
    "share.coordinator.state.topic.min.isr": "2",  # capped at the replication factor
    "share.coordinator.state.topic.segment.bytes": str(100 << 20),
    **{k: TOPIC_DEFAULTS[v] for k, v in BROKER_TOPIC_SYNONYMS.items()},
    # operations (docs/operations.md): on SIGTERM, move this broker's leaderships away before
    # it exits (actors/controlled_shutdown.py)
    "controlled.shutdown.enable": "true",
    # security (docs/security.md). client.curve.keyfile: the client listener's CURVE key pair
    # (a zmq.auth certificate); set, the listener admits only CURVE clients whose public key
    # the user store (metadata, coordinator/users.py) or client.curve.bootstrap.users
    # (NAME=PUBLICKEY,...: the first admin) maps to a principal User:NAME
    "client.curve.keyfile": "",
    "client.curve.bootstrap.users": "",
    # Prometheus metrics (actors/metrics.py, docs/metrics.md): GET /metrics on
    # metrics.host:metrics.port; -1: off (nothing counted on the hot path), 0: a free port
    "metrics.port": "-1",
    "metrics.host": "127.0.0.1",
    # authorization (docs/security.md, "Authorization"; actors/authorize.py): ACLs kept in the
    # metadata log checked in the client session. authorizer.class.name: "" off, "rillet"
    # (or Kafka's StandardAuthorizer class name) on; super.users: User:a;User:b are allowed
    # everything; allow.everyone.if.no.acl.found: a resource no ACL names is open (Kafka: false)
    "authorizer.class.name": "",
    "super.users": "",
    "allow.everyone.if.no.acl.found": "false",
    # classic consumer groups (JoinGroup/SyncGroup clients on the KAFKA listener;
    # actors/group_classic.py, docs/groups.md): Kafka's names and defaults
    "group.min.session.timeout.ms": "6000",
    "group.max.session.timeout.ms": "1800000",
    "group.initial.rebalance.delay.ms": "3000",
    "group.max.size": str(2**31 - 1),
    # SASL on the KAFKA listener (docs/security.md, "SASL"; actors/kafka_sasl.py): Kafka's
    # names. A map entry KAFKA:SASL_PLAINTEXT makes Kafka clients authenticate (PLAIN or
    # SCRAM-SHA-256 over the user store's SCRAM credentials); KAFKA:PLAINTEXT (or no entry)
    # does not. sasl.enabled.mechanisms: Kafka's default is GSSAPI, which rillet lacks.
    "listener.security.protocol.map": (
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
    "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
    # rillet's: NAME=SALT:STORED_KEY:SERVER_KEY:ITERATIONS,... salted SCRAM credentials known
    # from the configs (the first admin; cluster up --secure sets it), never passwords
    "sasl.scram.bootstrap.users": "",
    # a failed authentication's connection is closed this long after its answer (Kafka's)
    "connection.failed.authentication.delay.ms": "100",
    # client quotas (docs/security.md, "Quotas"; coordinator/quotas.py): the rates are
    # measured over quota.window.num samples of quota.window.size.seconds (Kafka's defaults)
    "quota.window.num": "11",
    "quota.window.size.seconds": "1",
    # connection limits of the client listener (docs/runtime.md, "Connection limits";
    # transport/conn_limits.py): a connection over either is closed at once
    "max.connections": str(2**31 - 1),
    "max.connections.per.ip": str(2**31 - 1),
    # controller_mutation_rate quotas (KIP-599; docs/security.md "Controller mutation rate";
    # actors/mutation_quota.py): a token bucket of (num - 1) x size seconds of the rate
    "controller.quota.window.num": "11",
    "controller.quota.window.size.seconds": "1",
    # consumer fetch sessions on the KAFKA listener (KIP-227; actors/kafka_fetch_sessions.py):
    # at most this many sessions per broker (Kafka's default); 0: full fetches only
    "max.incremental.fetch.session.cache.slots": "1000",
    # feature levels (docs/operations.md, "Upgrades"; coordinator/features.py): the
    # metadata.version a NEW cluster starts at (0: the latest this broker knows), read once
    # by the first active controller of an empty metadata log; rillet's stand-in for
    # `kafka-storage format --release-version`. Later: `rillet features upgrade`.
    "bootstrap.metadata.version": "0",
    # connection security (docs/security.md, "Handshake timeout", "SASL_SSL";
    # actors/kafka_secure_io.py). handshake.timeout.ms is rillet's (Kafka has no such key):
    # the CURVE/ZMTP handshake of the native listeners (ZMQ_HANDSHAKE_IVL) and the TLS + SASL
    # handshake of an SSL/SASL KAFKA listener must finish this long after the connection,
    # else it is closed. TLS on the KAFKA listener (listener.security.protocol.map
    # KAFKA:SSL or KAFKA:SASL_SSL): Kafka's key names, PEM key stores only (Kafka 2.7+):
    # ssl.keystore.location is a PEM file with the private key and the certificate chain
    "handshake.timeout.ms": "10000",
    "ssl.keystore.type": "JKS",
    "ssl.keystore.location": "",
    "ssl.key.password": "",
}

_CHOICES = {
    # the leader recompresses and stamps batches (logstore/rewrite.py, docs/configs.md)
    "compression.type": COMPRESSION_TYPES,
    "message.timestamp.type": TIMESTAMP_TYPES,
    "unclean.leader.election.enable": ("true", "false"),
    "log.scrub.enable": ("true", "false"),
}
# broker configs that must be integers >= 1
_POSITIVE = (
    "log.scrub.bytes.per.second",
    "log.scrub.interval.ms",
    "num.network.threads",
    "num.io.threads",
    "producer.id.expiration.ms",
    "producer.id.expiration.check.interval.ms",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.state.log.segment.bytes",
    "transaction.max.timeout.ms",
    "transactional.id.expiration.ms",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "share.coordinator.state.topic.num.partitions",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "share.coordinator.state.topic.segment.bytes",
    "quota.window.num",
    "quota.window.size.seconds",
    "max.connections",
    "max.connections.per.ip",
    "controller.quota.window.num",
    "controller.quota.window.size.seconds",
)


class ConfigError(ValueError):
    """An unknown key or a bad value (wire: INVALID_CONFIG)."""


def _hint(key: str, known: Mapping[str, str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _value_hint(value: str, choices) -> str:
    """'; did you mean X?' for a near miss ('LogAppendtime', 'zstandard', 'gzip ')."""
    by_folded = {c.lower(): c for c in choices}
    folded = value.strip().lower()
    if folded in by_folded:
        return f"; did you mean {by_folded[folded]!r}?"
    close = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=0.6)
    return f"; did you mean {by_folded[close[0]]!r}?" if close else ""


_CODEC_MODULES = {"zstd": ("zstandard", "zstd"), "lz4": ("lz4.frame", "lz4")}


def _check_codec_installed(value: str) -> None:
    """A topic codec this broker cannot compress with is refused now, not at every produce."""
    if value in _CODEC_MODULES:
        module, extra = _CODEC_MODULES[value]
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"compression.type={value}: this broker lacks the {module} "
                              f"module (pip install 'rillet[{extra}]')") from None


def validate_topic_configs(configs: Mapping[str, str | None]) -> None:
    """Raise ``ConfigError`` for an unknown key (with a did-you-mean hint) or a bad value.
    A ``None`` value (delete) only needs a known key."""
    for key, value in configs.items():
        if key not in TOPIC_DEFAULTS:
            raise ConfigError(f"unknown topic config {key!r}{_hint(key, TOPIC_DEFAULTS)}")
        if value is None:
            continue
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"{key}={value!r}{_value_hint(value, _CHOICES[key])}; valid "
                              f"values: {', '.join(_CHOICES[key])}")
        if key == "compression.type":
            _check_codec_installed(value)
        if key == "min.insync.replicas":
            if not value.strip().lstrip("-").isdigit() or int(value) < 1:
                raise ConfigError(f"{key}={value!r} must be an integer >= 1")
    present = {k: v for k, v in configs.items() if v is not None}
    try:
        LogConfig.from_topic_config(present)
    except (LogStoreError, ValueError) as e:
        raise ConfigError(str(e)) from None


class BrokerConfig(dict):
    """The broker's configs: every key of ``BROKER_DEFAULTS``, the defaults written once
    (here), read typed: ``config.int("replica.lag.time.max.ms")``,
    ``config.flag("auto.leader.rebalance.enable")``; a key that is not a broker config is a
    ``KeyError`` naming the closest one. Built by ``validate_broker_configs`` (or
    ``BrokerConfig.of`` for a partial mapping, as tests pass)."""

    @classmethod
    def of(cls, configs: Mapping[str, str]) -> BrokerConfig:
        return configs if isinstance(configs, BrokerConfig) else validate_broker_configs(configs)

    def __missing__(self, key: str) -> str:
        raise KeyError(f"{key!r} is not a broker config{_hint(key, BROKER_DEFAULTS)}")

    def int(self, key: str) -> int:
        return int(self[key])

    def flag(self, key: str) -> bool:
        return self[key] == "true"


_BOOLEAN = ("true", "false")


def validate_broker_configs(configs: Mapping[str, str]) -> BrokerConfig:
    """Broker ``--config`` pairs merged over the defaults; ``ConfigError`` for unknown keys
    and for values of the wrong kind (integers, true/false, the listed choices)."""
    for key, value in configs.items():
        if key not in BROKER_DEFAULTS:
            raise ConfigError(f"unknown broker config {key!r}{_hint(key, BROKER_DEFAULTS)}")
        value = str(value)
        if BROKER_DEFAULTS[key].lstrip("-").isdigit() and not value.lstrip("-").isdigit():
            raise ConfigError(f"{key}={value!r} is not an integer")
        if BROKER_DEFAULTS[key] in _BOOLEAN and value not in _BOOLEAN:
            raise ConfigError(f"{key}={value!r}; valid values: true, false")
        if key in _CHOICES and key not in TOPIC_DEFAULTS and value not in _CHOICES[key]:
            raise ConfigError(f"{key}={value!r}; valid values: {', '.join(_CHOICES[key])}")
        if key in _POSITIVE and int(value) < 1:
            raise ConfigError(f"{key}={value!r} must be an integer >= 1")
    merged = BrokerConfig({**BROKER_DEFAULTS, **{k: str(v) for k, v in configs.items()}})
    queued = int(merged["queued.max.request.bytes"])
    if queued != -1 and queued < 1:
        raise ConfigError(f"queued.max.request.bytes={queued} must be -1 (unbounded) or >= 1")
    _validate_quorum_timeouts(merged)
    metrics_port = int(merged["metrics.port"])
    if not -1 <= metrics_port <= 65535:
        raise ConfigError(f"metrics.port={metrics_port} must be -1 (off), 0 (a free port) or a port")
    if int(merged["max.incremental.fetch.session.cache.slots"]) < 0:
        raise ConfigError("max.incremental.fetch.session.cache.slots must be >= 0")
    idle = int(merged["connections.max.idle.ms"])
    if idle != -1 and idle < 1:
        raise ConfigError(f"connections.max.idle.ms={idle} must be -1 (never) or >= 1")
    from rillet.coordinator import features

    level = int(merged["bootstrap.metadata.version"])
    if not 0 <= level <= features.LATEST_LEVEL:
        raise ConfigError(f"bootstrap.metadata.version={level} must be 0 (the latest) or a "
                          f"level {features.MIN_LEVEL}-{features.LATEST_LEVEL}")
    _validate_security(merged)
    _validate_sasl(merged)
    _validate_authorizer(merged)
    _validate_classic_groups(merged)
    from rillet.actors.listeners import parse_listeners

    parse_listeners(merged["listeners"])
    parse_listeners(merged["advertised.listeners"], "advertised.listeners")
    validate_topic_configs({t: merged[b] for b, t in BROKER_TOPIC_SYNONYMS.items()})
    try:
        share_config.validate_broker_share_configs(merged)
    except share_config.GroupConfigError as e:
        raise ConfigError(str(e)) from None
    return merged


def raft_heartbeat_ms(election_timeout_ms: int) -> int:
    """The Raft leader's heartbeat interval (actors/controller.py): the election timeout / 5,
    at least 10 ms."""
    return max(10, election_timeout_ms // 5)


def _validate_quorum_timeouts(merged: Mapping[str, str]) -> None:
    """The Raft timers the controller derives: both timeouts must exceed the heartbeat
    interval (``raft_heartbeat_ms``)."""
    election = int(merged["controller.quorum.election.timeout.ms"])
    fetch = int(merged["controller.quorum.fetch.timeout.ms"])
    if election < 20:
        raise ConfigError(f"controller.quorum.election.timeout.ms={election} must be >= 20")
    heartbeat = raft_heartbeat_ms(election)
    if fetch <= heartbeat:
        raise ConfigError(f"controller.quorum.fetch.timeout.ms={fetch} must be above the Raft "
                          f"heartbeat interval ({heartbeat} ms: the election timeout / 5)")


def _validate_classic_groups(merged: Mapping[str, str]) -> None:
    low, high = int(merged["group.min.session.timeout.ms"]), int(merged["group.max.session.timeout.ms"])
    if not 1 <= low <= high:
        raise ConfigError(f"group.min.session.timeout.ms={low} must be >= 1 and at most "
                          f"group.max.session.timeout.ms={high}")
    if int(merged["group.initial.rebalance.delay.ms"]) < 0:
        raise ConfigError("group.initial.rebalance.delay.ms must be >= 0")
    if int(merged["group.max.size"]) < 1:
        raise ConfigError("group.max.size must be >= 1")


def _validate_security(merged: Mapping[str, str]) -> None:
    """client.curve.*: a user list that parses, and never a CURVE listener nobody can log
    in to (an empty key store would deny everyone, silently)."""
    from rillet.coordinator.users import parse_bootstrap_users

    try:
        users = parse_bootstrap_users(merged["client.curve.bootstrap.users"])
    except ValueError as e:
        raise ConfigError(f"client.curve.bootstrap.users: {e}") from None
    if merged["client.curve.keyfile"] and not users:
        raise ConfigError(
            "client.curve.keyfile is set but client.curve.bootstrap.users is empty: no "
            "client could ever connect to add a user (rillet cluster up --secure sets both)"
        )
    if users and not merged["client.curve.keyfile"]:
        raise ConfigError("client.curve.bootstrap.users needs client.curve.keyfile")


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def listener_protocols(merged: Mapping[str, str]) -> dict[str, str]:
    """listener.security.protocol.map as {LISTENER: PROTOCOL}; ConfigError if malformed."""
    out: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in merged["listener.security.protocol.map"].split(","))):
        name, sep, proto = entry.partition(":")
        name, proto = name.strip().upper(), proto.strip().upper()
        if not sep or not name or proto not in _KAFKA_PROTOCOLS:
            raise ConfigError(f"listener.security.protocol.map: {entry!r} is not "
                              f"NAME:PROTOCOL with PROTOCOL one of {', '.join(_KAFKA_PROTOCOLS)}")
        out[name] = proto
    for name in ("CLIENT", "BROKER"):
        if name in out:
            raise ConfigError(f"listener.security.protocol.map: the {name} listener is secured "
                              "with CURVE (client.curve.keyfile / inter.broker.curve.keyfile)")
    return out


def kafka_protocol(merged: Mapping[str, str]) -> str:
    """The KAFKA listener's security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    return listener_protocols(merged).get("KAFKA", "PLAINTEXT")


def kafka_sasl_enabled(merged: Mapping[str, str]) -> bool:
    return kafka_protocol(merged) in ("SASL_PLAINTEXT", "SASL_SSL")


def sasl_mechanisms(merged: Mapping[str, str]) -> tuple[str, ...]:
    """sasl.enabled.mechanisms, validated (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."""
    names = tuple(m.strip().upper() for m in merged["sasl.enabled.mechanisms"].split(",") if m.strip())
    for m in names:
        if m not in SASL_MECHANISMS:
            raise ConfigError(f"sasl.enabled.mechanisms: {m} is not supported; valid: "
                              f"{', '.join(SASL_MECHANISMS)}")
    if kafka_sasl_enabled(merged) and not names:
        raise ConfigError("sasl.enabled.mechanisms is empty but the KAFKA listener is SASL")
    return names


def _validate_sasl(merged: Mapping[str, str]) -> None:
    from rillet.coordinator.scram import parse_bootstrap_scram

    listener_protocols(merged)
    sasl_mechanisms(merged)
    _validate_kafka_security_io(merged)
    try:
        parse_bootstrap_scram(merged["sasl.scram.bootstrap.users"])
    except ValueError as e:
        raise ConfigError(f"sasl.scram.bootstrap.users: {e}") from None


def _validate_kafka_security_io(merged: Mapping[str, str]) -> None:
    """handshake.timeout.ms >= 1; an SSL / SASL_SSL KAFKA listener's PEM key store loads."""
    if int(merged["handshake.timeout.ms"]) < 1:
        raise ConfigError(f"handshake.timeout.ms={merged['handshake.timeout.ms']} must be >= 1")
    if kafka_protocol(merged).endswith("SSL"):
        from rillet.actors.kafka_secure_io import TlsError, server_context

        try:
            server_context(merged)
        except TlsError as e:
            raise ConfigError(str(e)) from None


AUTHORIZERS = ("", "rillet", "org.apache.kafka.metadata.authorizer.StandardAuthorizer")


def _validate_authorizer(merged: Mapping[str, str]) -> None:
    """authorizer.class.name: off or rillet's; super.users: ``User:NAME;...``."""
    if merged["authorizer.class.name"] not in AUTHORIZERS:
        raise ConfigError(
            f"authorizer.class.name={merged['authorizer.class.name']!r}: rillet has one "
            "authorizer; valid values: '' (off), 'rillet' (or Kafka's StandardAuthorizer name)"
        )
    # A KAFKA listener beside the authorizer: its requests are checked too (actors/kafka_auth.py),
    # as User:ANONYMOUS on a PLAINTEXT one and User:NAME on a SASL_PLAINTEXT one.
    for user in filter(None, (u.strip() for u in merged["super.users"].split(";"))):
        kind, sep, name = user.partition(":")
        if not sep or not kind or not name:
            raise ConfigError(
                f"super.users: {user!r} is not TYPE:NAME (e.g. User:admin; ';' separates)"
            )


def topic_defaults(broker_configs: Mapping[str, str]) -> dict[str, str]:
    """Each topic config's default on this broker (the broker's synonym, else Kafka's)."""
    out = dict(TOPIC_DEFAULTS)
    for broker_key, topic_key in BROKER_TOPIC_SYNONYMS.items():
        if broker_key in broker_configs:
            out[topic_key] = broker_configs[broker_key]
    return out


def effective_topic_configs(
    overrides: Mapping[str, str], broker_configs: Mapping[str, str]
) -> dict[str, str]:
    return {**topic_defaults(broker_configs), **overrides}


def log_config(overrides: Mapping[str, str], broker_configs: Mapping[str, str]) -> LogConfig:
    """The LogConfig of a partition of a topic with these explicit ``overrides``."""
    return LogConfig.from_topic_config(effective_topic_configs(overrides, broker_configs))
