"""What one broker must do when the metadata image changes (Kafka's
``TopicsDelta.localChanges(brokerId)``): a pure diff of two images for the replicas a broker
hosts.

``local_changes(old, new, broker_id, hosted)`` returns, in the order the broker carries them
out:

- ``deletes``: hosted (or possibly left-over) replicas to remove: every partition of a topic
  that is gone or was re-created under a new id (``reason`` = the old topic id), and the
  replicas reassigned away from this broker (``reason`` = "moved"); the broker renames the
  directory to ``<dir>.<reason>-delete`` before removing it, so a new topic of the same name
  starts clean;
- ``changed``: hosted replicas whose partition state (leader, ISR, epochs, replicas...)
  changed, or whose topic's configs changed (their ``min.insync.replicas`` may have);
- ``reconfigured``: topics whose configs changed (their hosted logs reopen with the new
  config);
- ``creates``: replicas this broker must start hosting.
"""

from __future__ import annotations

from collections.abc import Collection

from rillet.coordinator.metadata import MetadataImage, PartitionInfo

from rillet.frozen import frozen

MOVED = "moved"

TopicPartition = tuple[str, int]


@frozen
class LocalChanges:
    deletes: tuple[tuple[str, int, str], ...] = ()  # (topic, partition, reason)
    changed: tuple[tuple[str, int, PartitionInfo], ...] = ()
    reconfigured: tuple[str, ...] = ()
    creates: tuple[tuple[str, int, PartitionInfo], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.deletes or self.changed or self.reconfigured or self.creates)


def local_changes(
    old: MetadataImage,
    new: MetadataImage,
    broker_id: int,
    hosted: Collection[TopicPartition],
) -> LocalChanges:
    hosted_after = set(hosted)
    deletes: list[tuple[str, int, str]] = []
    changed: list[tuple[str, int, PartitionInfo]] = []
    reconfigured: list[str] = []
    for name, topic in old.topics.items():
        current = new.topics.get(name)
        if current is None or current.topic_id != topic.topic_id:
            for p in topic.partitions:  # the topic is gone (or a new one has its name)
                deletes.append((name, p, topic.topic_id))
                hosted_after.discard((name, p))
            continue
        config_changed = current.configs != topic.configs
        for p, info in current.partitions.items():
            if (name, p) not in hosted_after:
                continue
            if broker_id not in info.replicas:  # reassigned away: the data is elsewhere now
                deletes.append((name, p, MOVED))
                hosted_after.discard((name, p))
            elif topic.partitions.get(p) != info or config_changed:
                changed.append((name, p, info))
        if config_changed:
            reconfigured.append(name)
    creates = [
        (name, p, info)
        for name, topic in new.topics.items()
        for p, info in topic.partitions.items()
        if broker_id in info.replicas and (name, p) not in hosted_after
    ]
    return LocalChanges(tuple(deletes), tuple(changed), tuple(reconfigured), tuple(creates))
