"""The worker's only door to the cluster: the public client API (``rillet.Producer``,
``Consumer``, ``Admin``), behind a small factory so tests can pass in-memory fakes that follow
the same contract (tests/unit/connectors/fakes.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class Clients:
    """Classes with the contract's signatures: ``producer_cls(config_dict)`` etc."""

    producer_cls: Any
    consumer_cls: Any
    admin_cls: Any
    topic_partition: Any
    new_topic: Any

    @classmethod
    def default(cls) -> Clients:
        import rillet

        return cls(rillet.Producer, rillet.Consumer, rillet.Admin, rillet.TopicPartition,
                   rillet.NewTopic)

    def producer(self, config: Mapping[str, Any]) -> Any:
        return self.producer_cls(dict(config))

    def consumer(self, config: Mapping[str, Any]) -> Any:
        return self.consumer_cls(dict(config))

    def admin(self, config: Mapping[str, Any]) -> Any:
        return self.admin_cls(dict(config))


def client_config(worker: Mapping[str, Any], kind: str,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """bootstrap.servers plus the worker's ``producer.*`` / ``consumer.*`` / ``admin.*`` keys
    and a connector's ``producer.override.*`` / ``consumer.override.*``."""
    out: dict[str, Any] = {"bootstrap.servers": worker["bootstrap.servers"]}
    prefix = kind + "."
    out.update({k[len(prefix):]: v for k, v in worker.items() if k.startswith(prefix)})
    if overrides:
        op = f"{kind}.override."
        out.update({k[len(op):]: v for k, v in overrides.items() if k.startswith(op)})
    return out


def partition_count(admin: Any, topic: str) -> int | None:
    """Number of partitions of ``topic``, or None if it does not exist."""
    try:
        desc = admin.describe_topics([topic])
    except Exception as e:  # UnknownTopicOrPartitionError and kin
        if "UnknownTopic" in type(e).__name__ or getattr(e, "code", None) == 3:
            return None
        raise
    d = desc.get(topic) if isinstance(desc, Mapping) else None
    return len(d.partitions) if d is not None else None


def ensure_topic(clients: Clients, admin: Any, name: str, partitions: int,
                 replication_factor: int, configs: Mapping[str, str] | None = None) -> int:
    """Create the topic unless it exists; returns its partition count."""
    n = partition_count(admin, name)
    if n is not None:
        return n
    try:
        admin.create_topics([clients.new_topic(name, partitions, replication_factor,
                                               dict(configs or {}))])
    except Exception as e:
        if "AlreadyExists" not in type(e).__name__ and getattr(e, "code", None) != 36:
            raise
    n = partition_count(admin, name)
    return n if n is not None else partitions
