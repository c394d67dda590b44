"""What a controller handler returns: records to commit, a response, notes for the log."""

from __future__ import annotations

from dataclasses import field
from typing import Generic, TypeVar

from rillet.frozen import frozen

T = TypeVar("T")

OK = "NONE"  # the error name of success (Kafka's ErrorCode NONE)


@frozen
class Note:
    """A line for the controller's log: ``level`` is "info" or "warning"."""

    level: str
    text: str


@frozen
class ControllerResult(Generic[T]):
    """Kafka's ``ControllerResult``: ``records`` are proposed as one Raft entry and
    ``response`` is sent once that entry is committed (at once if there are no records)."""

    records: list[object]
    response: T
    notes: tuple[Note, ...] = field(default=())


@frozen
class Outcome:
    """The answer to a single-item request: an error name (``"NONE"`` on success)."""

    error: str = OK
    message: str | None = None


@frozen
class TopicOutcome:
    """One topic of a CreateTopics / DeleteTopics / CreatePartitions answer."""

    name: str
    error: str = OK
    message: str | None = None
    topic_id: str = ""
    num_partitions: int = -1
    replication_factor: int = -1


@frozen
class ConfigOutcome:
    """One resource of an AlterConfigs answer."""

    resource_type: int
    resource_name: str
    error: str = OK
    message: str | None = None


@frozen
class PartitionOutcome:
    """One partition of an ElectLeaders / AlterPartitionReassignments answer."""

    topic: str
    partition: int
    error: str = OK
    message: str | None = None


@frozen
class ProducerIdOutcome:
    producer_id: int
    producer_epoch: int = 0


def unclean_notes(decisions) -> tuple[Note, ...]:
    """Warnings for leader elections that chose an out-of-sync replica."""
    out = []
    for d in decisions:
        r = d.record
        if d.unclean and r is not None:
            out.append(
                Note(
                    "warning",
                    f"UNCLEAN leader election for {r.topic}-{r.partition}: broker {r.leader} "
                    "was not in sync; records acknowledged by the old ISR may be lost "
                    "(unclean.leader.election.enable)",
                )
            )
    return tuple(out)
