"""The plugin API: what a connector author implements (mirrors Kafka Connect's Java SPI).

A *connector* turns its configuration into task configurations; *tasks* move the data.

Source side::

    class MySource(SourceConnector):
        def task_configs(self, max_tasks):          # one dict per task, at most max_tasks
            return [dict(self.config)]
        def task_class(self):
            return MySourceTask

    class MySourceTask(SourceTask):
        def start(self, config):
            last = self.context.offset_storage_reader.offset({"table": "t"})  # None at first
        def poll(self):                             # a list, possibly empty; never block long
            return [SourceRecord({"table": "t"}, {"id": 7}, "my-topic", value={"id": 7})]

Sink side::

    class MySinkTask(SinkTask):
        def put(self, records): ...                 # list[SinkRecord], already converted
        def flush(self, offsets): ...               # make everything put so far durable

In a connector config, ``connector.class`` names the connector as ``package.module:Class``
(or ``package.module.Class``), or by one of the built-in short names ``file-source``,
``file-sink``, ``sqlite-source``, ``sqlite-sink``.

Threading: the worker runs each connector and each task in its own pykka actor, so a task
object is only ever called from one thread, one call at a time; it needs no locking.
Values: sources emit Python values (str, bytes, dict, list, numbers, None) that the
``value.converter`` turns into bytes; sinks receive what the converter decoded.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from rillet.frozen import frozen

Headers = tuple[tuple[str, bytes | None], ...]


class TopicPartition(NamedTuple):
    """A partition of a topic, as sink tasks see it (equal to a ``(topic, partition)`` tuple)."""

    topic: str
    partition: int


@frozen
class SourceRecord:
    """A record emitted by a source task.

    ``source_partition`` names where it came from (``{"filename": "/x.log"}``) and
    ``source_offset`` how far that source has been read once this record is delivered
    (``{"position": 1234}``); both are small JSON-able dicts. The worker stores the latest
    offset per source partition and hands it back on restart. ``partition`` None lets the
    producer choose; ``timestamp`` is ms since the epoch (None: now).
    """

    source_partition: Mapping[str, Any]
    source_offset: Mapping[str, Any]
    topic: str
    partition: int | None = None
    key: Any = None
    value: Any = None
    headers: Headers = ()
    timestamp: int | None = None


@frozen
class SinkRecord:
    """A record consumed from ``topic``/``partition`` at ``offset``, key and value converted."""

    topic: str
    partition: int
    offset: int
    key: Any = None
    value: Any = None
    headers: Headers = ()
    timestamp: int | None = None


class OffsetStorageReader(Protocol):
    """Reads the stored source offsets of this connector (a snapshot taken at task start)."""

    def offset(self, partition: Mapping[str, Any]) -> dict[str, Any] | None: ...

    def offsets(self, partitions: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Keyed by the canonical JSON of each partition that has an offset."""
        ...


class ConnectorContext(Protocol):
    """What the worker offers a connector."""

    connector_name: str

    def request_task_reconfiguration(self) -> None: ...


@dataclass
class SourceTaskContext:
    """What the worker offers a source task."""

    connector_name: str
    task_id: int
    offset_storage_reader: OffsetStorageReader


class ErrantRecordReporter(Protocol):
    def report(self, record: SinkRecord, error: BaseException) -> None:
        """Send ``record`` to the dead-letter topic (errors.tolerance=all) or fail the task
        (errors.tolerance=none, by raising)."""
        ...


@dataclass
class SinkTaskContext:
    """What the worker offers a sink task.

    ``offset({tp: n})`` asks the worker to start consuming ``tp`` at ``n`` (call it from
    ``open()``: a sink that stores its own offsets resumes from them this way).
    ``errant_record_reporter`` sends one bad record to the dead-letter topic.
    """

    connector_name: str
    task_id: int
    errant_record_reporter: ErrantRecordReporter | None = None
    requested_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    commit_requested: bool = False
    assigned: frozenset[TopicPartition] = frozenset()

    def offset(self, offsets: Mapping[tuple[str, int], int]) -> None:
        for tp, off in offsets.items():
            self.requested_offsets[TopicPartition(*tp)] = int(off)

    def assignment(self) -> frozenset[TopicPartition]:
        return self.assigned

    def request_commit(self) -> None:
        self.commit_requested = True


class Connector:
    """Base of both connector kinds. ``config`` is the connector's config, values as given
    (strings from .properties files, typed values from JSON/TOML)."""

    #: Optional: a :class:`rillet.connectors.config.ConfigDef` of the connector's own keys;
    #: when set, unknown keys are rejected with a did-you-mean hint and values are typed.
    config_def: Any = None

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.context: ConnectorContext | None = None

    def version(self) -> str:
        return "0.1.0"

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        """Problems with a config whose keys already passed ``config_def`` (keys that only
        make sense together, ...); checked before the connector starts. Default: none."""
        return []

    def start(self, config: dict[str, Any]) -> None:
        """Called once with the validated config. Raise to fail the connector."""
        self.config = dict(config)

    def task_class(self) -> type[Task]:
        raise NotImplementedError

    def task_configs(self, max_tasks: int) -> list[dict[str, Any]]:
        """One config per task (at most ``max_tasks``). Default: a single task."""
        return [dict(self.config)]

    def stop(self) -> None:
        """Release resources; called once."""


class ExactlyOnceSupport(enum.Enum):
    """Kafka's ``ExactlyOnceSupport`` (KIP-618): what a source connector answers to
    :meth:`SourceConnector.exactly_once_support`."""

    SUPPORTED = "SUPPORTED"
    UNSUPPORTED = "UNSUPPORTED"


class ConnectorTransactionBoundaries(enum.Enum):
    """Kafka's ``ConnectorTransactionBoundaries``: whether a connector can define its own
    transaction boundaries (``transaction.boundary=connector``; not implemented here)."""

    SUPPORTED = "SUPPORTED"
    UNSUPPORTED = "UNSUPPORTED"


class SourceConnector(Connector):
    """A connector whose tasks read from outside and produce into topics."""

    def exactly_once_support(self, config: Mapping[str, Any] | None = None
                             ) -> ExactlyOnceSupport | None:
        """KIP-618: SUPPORTED if, when the worker writes each batch of records and their
        source offsets in one transaction, a task restarted from the committed offsets
        re-reads exactly what follows them (its source offsets identify a position it can
        resume from). None (Kafka's null: unknown) or UNSUPPORTED: a connector config with
        ``exactly.once.support=required`` is refused. Called on a fresh instance (not
        started) with the connector config."""
        return None

    def can_define_transaction_boundaries(self, config: Mapping[str, Any] | None = None
                                          ) -> ConnectorTransactionBoundaries:
        return ConnectorTransactionBoundaries.UNSUPPORTED

    def alter_offsets(self, config: dict[str, Any],
                      offsets: Mapping[str, dict[str, Any] | None]) -> bool:
        """Called (connector stopped) when a user alters offsets; return True to accept."""
        return True


class SinkConnector(Connector):
    """A connector whose tasks consume topics (``topics`` or ``topics.regex``) and write out.
    The worker deals the topics' partitions over the tasks."""

    def task_configs(self, max_tasks: int) -> list[dict[str, Any]]:
        """Default: ``max_tasks`` copies of the config."""
        return [dict(self.config) for _ in range(max_tasks)]

    def alter_offsets(self, config: dict[str, Any],
                      offsets: Mapping[TopicPartition, int | None]) -> bool:
        """Called (connector stopped) when a user alters or resets (None) consumed offsets.
        A sink that stores its own offsets (like the SQLite sink) updates them here."""
        return True


class Task:
    def __init__(self) -> None:
        self.context: Any = None

    def version(self) -> str:
        return "0.1.0"

    def start(self, config: dict[str, Any]) -> None:
        """Called once before any other method, from the task's actor thread."""

    def stop(self) -> None:
        """Called once; release files, connections."""


class SourceTask(Task):
    context: SourceTaskContext

    def poll(self) -> list[SourceRecord]:
        """New records, possibly none. Must not block for more than about a second: when it
        returns an empty list the worker calls it again after :meth:`idle_wait_ms`."""
        raise NotImplementedError

    def idle_wait_ms(self) -> int:
        """How long the worker waits after an empty poll (ms)."""
        return 1000

    def commit(self) -> None:
        """Every record returned so far is acknowledged and its offset stored."""

    def commit_record(self, record: SourceRecord, metadata: Any) -> None:
        """``record`` was acknowledged (``metadata`` is the producer's RecordMetadata, or None
        if the record was filtered by a transform or sent to the dead-letter topic)."""


class SinkTask(Task):
    context: SinkTaskContext

    def open(self, partitions: Sequence[TopicPartition]) -> None:
        """These partitions are now assigned; call ``self.context.offset(...)`` to resume."""

    def put(self, records: list[SinkRecord]) -> None:
        """Write (or buffer) records. Raise an error with ``retriable = True`` to have the same
        batch put again after a backoff; any other error fails the task."""
        raise NotImplementedError

    def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Make everything put so far durable; ``offsets`` are the next offsets to consume."""

    def pre_commit(self, offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Called before the worker stores consumed offsets; returns the offsets safe to store.
        The default flushes and returns ``offsets``."""
        self.flush(offsets)
        return dict(offsets)

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        """These partitions are no longer assigned (stop, or a later rebalance)."""
