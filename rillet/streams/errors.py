"""The runtime's errors (docs/streams.md "Running"). The DSL's own is
``topology.TopologyError`` (a topology that cannot be built)."""

from __future__ import annotations

from rillet.errors import RilletError


class StreamsError(RilletError):
    """A streams application cannot go on (the message says why); ``run()`` raises it."""


class MissingSourceTopicError(StreamsError):
    """A source topic of the topology does not exist (Kafka's MissingSourceTopicException)."""


class CopartitionError(StreamsError):
    """Topics that must be co-partitioned (a task's inputs, a join's sides) have different
    partition counts."""


class DeserializationError(StreamsError):
    """A record the source serdes cannot decode, under ``log_and_fail``. Fields: where the
    record is (``topic``, ``partition``, ``offset``)."""

    def __init__(self, message: str, *, topic: str, partition: int, offset: int) -> None:
        super().__init__(message)
        self.topic, self.partition, self.offset = topic, partition, offset


class TaskMigratedError(StreamsError):
    """This instance lost its tasks while committing (fenced: another instance owns them
    now). Handled inside ``run()``: tasks are closed dirty and the instance rejoins."""

    retriable = True


__all__ = ["CopartitionError", "DeserializationError", "MissingSourceTopicError",
           "StreamsError", "TaskMigratedError"]
