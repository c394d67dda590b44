"""Exactly-once mirroring (``exactly.once.support = enabled``): the mirror's progress lives on
the *target*, written in the same transaction as the records it describes.

Kafka's MirrorMaker 2 in dedicated mode with exactly-once source support (KIP-618) keeps the
source offsets of its MirrorSourceConnector in the Connect offsets topic
``mm2-offsets.<source>.internal`` on the target cluster, and each task's transactional producer
writes the copies and their offsets in one transaction. Rillet does the same, in Kafka
Connect's record layout::

    topic  mm2-offsets.A.internal on B (compacted, 1 partition)
    key    ["MirrorSourceConnector", {"cluster": "A", "partition": 0, "topic": "orders"}]
    value  {"offset": 41}        # the last record of A's orders-0 copied (resume at 42)

The transactional.id is ``mm2-<source>-><target>`` (one task per flow): a restarted mirror's
``init_transactions`` aborts the transaction the dead one left open and fences it, so a zombie
can commit nothing after that. On start the runner reads this topic with read_committed up to
its log end (the aborted tail is skipped) and resumes right after the last committed copy:
a read_committed consumer on B sees every record exactly once, whatever the kills.

Threads: one ``TargetOffsets`` per flow runner, used from the runner's thread only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from rillet import Admin, Consumer
from rillet.records import NewTopic, TopicPartition

CONNECTOR = "MirrorSourceConnector"
#: a read waits at most this long for open transactions below the log end to end (the
#: coordinator aborts a dead mirror's after transaction.timeout.ms; init_transactions sooner)
READ_TIMEOUT_S = 90.0


def offsets_topic(source_alias: str) -> str:
    return f"mm2-offsets.{source_alias}.internal"


def transactional_id(source_alias: str, target_alias: str) -> str:
    return f"mm2-{source_alias}->{target_alias}"


def offset_key(source_alias: str, tp: TopicPartition) -> bytes:
    return json.dumps([CONNECTOR, {"cluster": source_alias, "partition": tp.partition,
                                   "topic": tp.topic}], sort_keys=True,
                      separators=(",", ":")).encode()


def parse_offset(source_alias: str, key: bytes | None, value: bytes | None
                 ) -> tuple[TopicPartition, int | None] | None:
    """(source partition, last copied offset or None for a tombstone) of one record of the
    offsets topic; None for a record of another connector/cluster or one that is not ours."""
    try:
        name, part = json.loads(key) if key is not None else (None, None)
        if name != CONNECTOR or not isinstance(part, dict) or part.get("cluster") != source_alias:
            return None
        tp = TopicPartition(str(part["topic"]), int(part["partition"]))
        if value is None:
            return tp, None
        offset = json.loads(value)["offset"]
        return (tp, int(offset)) if isinstance(offset, int) else None
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None


class TargetOffsets:
    """The flow's progress in ``mm2-offsets.<source>.internal`` on the target."""

    def __init__(self, source_alias: str, target: str | Mapping[str, str]) -> None:
        """``target``: the target's bootstrap servers, or its consumer settings."""
        self.source = source_alias
        self.topic = offsets_topic(source_alias)
        self.client = ({"bootstrap.servers": target} if isinstance(target, str)
                       else dict(target))
        self.next_offsets: dict[TopicPartition, int] = {}

    def ensure_topic(self, admin: Admin) -> None:
        if self.topic not in admin.list_topics(include_internal=True):
            admin.create_topics([NewTopic(self.topic, 1, configs={"cleanup.policy": "compact"})])

    def load(self) -> dict[TopicPartition, int]:
        """Read the topic to its log end with read_committed; returns (and keeps) the next
        offset to copy per source partition. Call after init_transactions (the previous
        instance's open transaction is being aborted: the read waits for its marker)."""
        base = {**self.client, "enable.auto.commit": "false"}
        tp0 = TopicPartition(self.topic, 0)
        probe = Consumer({**base, "isolation.level": "read_uncommitted"})
        try:
            end = probe.end_offsets([tp0])[tp0]
        finally:
            probe.close()
        out: dict[TopicPartition, int] = {}
        consumer = Consumer({**base, "isolation.level": "read_committed"})
        deadline = time.monotonic() + READ_TIMEOUT_S
        try:
            consumer.assign([tp0])
            consumer.seek_to_beginning(tp0)
            # read_committed moves the position past markers and aborted records, so it
            # reaches the log end once every transaction below it has ended
            while consumer.position(tp0) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {self.topic} took more than {READ_TIMEOUT_S}"
                                       " s (a transaction still open?)")
                for records in consumer.poll(timeout_ms=200).values():
                    for r in records:
                        parsed = parse_offset(self.source, r.key, r.value)
                        if parsed is None:
                            continue
                        tp, last = parsed
                        if last is None:
                            out.pop(tp, None)
                        else:
                            out[tp] = last + 1
        finally:
            consumer.close()
        self.next_offsets = out
        return dict(out)

    def write(self, producer, commits: dict[TopicPartition, int]) -> None:
        """Send the progress records inside the producer's open transaction; ``commits``:
        source partition -> next offset to copy."""
        for tp, nxt in commits.items():
            producer.send(self.topic, json.dumps({"offset": nxt - 1}).encode(),
                          offset_key(self.source, tp))

    def committed(self, commits: dict[TopicPartition, int]) -> None:
        """The transaction holding ``commits`` committed."""
        self.next_offsets.update(commits)
