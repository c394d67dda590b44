"""The settings of one share-partition, from the group's configs (the GROUP config resource,
coordinator/share/config.py ``group_config``) and the broker's ``group.share.*`` defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rillet.coordinator.share.partition import SharePartitionConfig

try:  # share-group's config module (GROUP configs in the metadata image)
    from rillet.coordinator.share.config import group_config
except ImportError:  # pragma: no cover - until it is merged: the broker's defaults
    group_config = None

_DEFAULTS = {
    "group.share.record.lock.duration.ms": "30000",
    "group.share.delivery.count.limit": "5",
    "group.share.partition.max.record.locks": "2000",
    "group.share.retry.backoff.ms": "1000",
    "group.share.retry.backoff.multiplier": "2.0",
    "group.share.retry.backoff.max.ms": "60000",
}


def partition_config(
    image: Any, group_id: str, topic: str, broker_configs: Mapping[str, str]
) -> tuple[SharePartitionConfig, str]:
    """(the core's config, ``share.auto.offset.reset``) of ``group_id``'s share-partitions of
    ``topic``. The dead-letter topic is ``errors.deadletterqueue.topic.name`` or
    ``<topic>.dlq``; a record of a dead-letter topic is never dead-lettered again."""
    if group_config is not None:
        g = group_config(image, group_id, broker_configs)
        dlq = g.dead_letter_topic(topic)
        config = SharePartitionConfig(
            record_lock_duration_ms=g.record_lock_duration_ms,
            delivery_count_limit=g.delivery_count_limit,
            max_record_locks=g.partition_max_record_locks,
            retry_backoff_ms=g.retry_backoff_ms,
            retry_backoff_multiplier=g.retry_backoff_multiplier,
            retry_backoff_max_ms=g.retry_backoff_max_ms,
            dead_letter_topic="" if dlq == topic else dlq,
        )
        return config, g.auto_offset_reset

    def get(key: str) -> str:
        return str(broker_configs.get(key, _DEFAULTS[key]))

    config = SharePartitionConfig(
        record_lock_duration_ms=int(get("group.share.record.lock.duration.ms")),
        delivery_count_limit=int(get("group.share.delivery.count.limit")),
        max_record_locks=int(get("group.share.partition.max.record.locks")),
        retry_backoff_ms=int(get("group.share.retry.backoff.ms")),
        retry_backoff_multiplier=float(get("group.share.retry.backoff.multiplier")),
        retry_backoff_max_ms=int(get("group.share.retry.backoff.max.ms")),
        dead_letter_topic=f"{topic}.dlq",
    )
    return config, "latest"
