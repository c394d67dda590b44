"""Per-partition log configuration, with Kafka's topic config names and defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

from rillet.frozen import frozen

from .errors import LogConfigError

DAY_MS = 24 * 3600 * 1000
LONG_MAX = 2**63 - 1  # Kafka's Long.MAX_VALUE: "never" for max.compaction.lag.ms

CLEANUP_POLICIES = ("delete", "compact", "compact,delete")
FLUSH_MODES = ("interval", "group-commit")
# Kafka's topic compression.type values ("none": rillet's older synonym of "uncompressed")
COMPRESSION_TYPES = ("producer", "uncompressed", "none", "gzip", "snappy", "lz4", "zstd")
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")


@frozen
class LogConfig:
    """Kafka's topic configs, snake_cased (``segment.bytes`` -> ``segment_bytes``).

    Sizes in bytes, durations in milliseconds; -1 means unlimited where Kafka says so.
    """

    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * DAY_MS
    index_interval_bytes: int = 4096
    max_message_bytes: int = 1048588
    retention_ms: int = 7 * DAY_MS
    retention_bytes: int = -1
    cleanup_policy: str = "delete"
    delete_retention_ms: int = DAY_MS
    min_compaction_lag_ms: int = 0
    # interval: fsync at most flush_ms after an append (acknowledged data younger than that can
    # be lost on power failure); group-commit: the owner calls flush() before acknowledging.
    flush_mode: str = "interval"
    flush_ms: int = 1000
    # the cleaner (logstore/cleaner_select.py): compact a log when the dirty part is more than
    # this fraction of the cleanable bytes, or when a dirty record is older than
    # max.compaction.lag.ms (which also rolls the active segment of a compacted log)
    min_cleanable_dirty_ratio: float = 0.5
    max_compaction_lag_ms: int = LONG_MAX
    # the leader's rewrites on append (logstore/rewrite.py): "producer" keeps the producer's
    # codec, any other value recompresses a batch of another codec; LogAppendTime stamps each
    # batch with the leader's clock (every record's timestamp becomes the append time)
    compression_type: str = "producer"
    message_timestamp_type: str = "CreateTime"
    # KIP-937 (CreateTime topics): a batch with a record timestamp more than before.max.ms
    # behind or after.max.ms ahead of the leader's clock is refused (INVALID_TIMESTAMP);
    # difference.max.ms, Kafka's older key, stands in for either one left at its default
    message_timestamp_difference_max_ms: int = LONG_MAX
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = LONG_MAX

    def __post_init__(self) -> None:
        if self.compression_type not in COMPRESSION_TYPES:
            raise LogConfigError(
                f"compression.type={self.compression_type!r}; valid: {', '.join(COMPRESSION_TYPES)}"
            )
        if self.message_timestamp_type not in TIMESTAMP_TYPES:
            raise LogConfigError(
                f"message.timestamp.type={self.message_timestamp_type!r}; valid: "
                f"{', '.join(TIMESTAMP_TYPES)}"
            )
        if self.cleanup_policy not in CLEANUP_POLICIES:
            raise LogConfigError(
                f"cleanup.policy={self.cleanup_policy!r}; valid: {', '.join(CLEANUP_POLICIES)}"
            )
        if self.flush_mode not in FLUSH_MODES:
            raise LogConfigError(f"flush.mode={self.flush_mode!r}; valid: {', '.join(FLUSH_MODES)}")
        positive = ("segment_bytes", "segment_ms", "max_message_bytes", "flush_ms")
        for name in positive:
            if getattr(self, name) <= 0:
                raise LogConfigError(f"{name.replace('_', '.')} must be > 0")
        for name in ("index_interval_bytes", "delete_retention_ms", "min_compaction_lag_ms",
                     "message_timestamp_difference_max_ms", "message_timestamp_before_max_ms",
                     "message_timestamp_after_max_ms"):
            if getattr(self, name) < 0:
                raise LogConfigError(f"{name.replace('_', '.')} must be >= 0")
        if not 0.0 <= self.min_cleanable_dirty_ratio <= 1.0:
            raise LogConfigError(
                f"min.cleanable.dirty.ratio={self.min_cleanable_dirty_ratio} must be in [0, 1]"
            )
        if self.max_compaction_lag_ms < 1:
            raise LogConfigError("max.compaction.lag.ms must be >= 1")
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms:
            raise LogConfigError(
                f"min.compaction.lag.ms={self.min_compaction_lag_ms} is above "
                f"max.compaction.lag.ms={self.max_compaction_lag_ms}"
            )

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @property
    def timestamp_before_max_ms(self) -> int:
        """How far behind the leader's clock a CreateTime record may be (Kafka's getter)."""
        before = self.message_timestamp_before_max_ms
        return before if before != LONG_MAX else self.message_timestamp_difference_max_ms

    @property
    def timestamp_after_max_ms(self) -> int:
        """How far ahead of the leader's clock a CreateTime record may be."""
        after = self.message_timestamp_after_max_ms
        return after if after != LONG_MAX else self.message_timestamp_difference_max_ms

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def roll_ms(self) -> int:
        """When the active segment rolls by age: segment.ms, or sooner on a compacted log
        with a max.compaction.lag.ms (Kafka's maxSegmentMs): records in the active segment
        are never cleaned, so it must be sealed for the lag to be kept."""
        if self.compact and self.max_compaction_lag_ms < self.segment_ms:
            return self.max_compaction_lag_ms
        return self.segment_ms

    @classmethod
    def from_topic_config(cls, configs: Mapping[str, str]) -> LogConfig:
        """Build from Kafka's dotted names ("segment.bytes": "1048576", ...).

        Keys that are not log configs (e.g. min.insync.replicas) are ignored; a bad value
        raises LogConfigError naming the key.
        """
        kwargs: dict[str, object] = {}
        known = {f.name.replace("_", "."): f for f in fields(cls)}
        for key, raw in configs.items():
            f = known.get(key)
            if f is None:
                continue
            if f.type in ("int", int):
                try:
                    kwargs[f.name] = int(str(raw).strip())
                except ValueError:
                    raise LogConfigError(f"{key}={raw!r} is not an integer") from None
            elif f.type in ("float", float):
                try:
                    kwargs[f.name] = float(str(raw).strip())
                except ValueError:
                    raise LogConfigError(f"{key}={raw!r} is not a number") from None
                if kwargs[f.name] != kwargs[f.name]:  # NaN
                    raise LogConfigError(f"{key}={raw!r} is not a number")
            else:
                kwargs[f.name] = str(raw).strip().replace(" ", "")
        return cls(**kwargs)


LOG_CONFIG_NAMES = tuple(f.name.replace("_", ".") for f in fields(LogConfig))
