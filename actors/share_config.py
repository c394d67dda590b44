"""The settings of one share-partition, from the group's configs (the GROUP config resource,
coordinator/share/config.py ``group_config``: the group's overrides in the metadata image,
else the broker's ``group.share.*`` defaults, else Kafka's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rillet.coordinator.share.config import group_config
from rillet.coordinator.share.partition import SharePartitionConfig


def partition_config(
    image: Any, group_id: str, topic: str, broker_configs: Mapping[str, str]
) -> tuple[SharePartitionConfig, str]:
    """(the core's config, ``share.auto.offset.reset``) of ``group_id``'s share-partitions of
    ``topic``. The dead-letter topic is ``errors.deadletterqueue.topic.name`` or
    ``<topic>.dlq``; a record of the dead-letter topic itself is archived, not dead-lettered
    again."""
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
