"""The contracts between the parts of ``rillet.streams`` (docs/streams.md): what a processor
sees, what a state store offers, what a compiled topology hands to the runtime.

Four parts meet here, each in its own modules:

* the DSL (``dsl.py``, ``topology.py``, ``serdes.py``, ``processors.py``) builds a
  :class:`Topology` of processor nodes and compiles it into :class:`CompiledTopology`:
  sub-topologies split at repartition topics, the stores each node uses, the internal
  topics (repartition and changelog) the application needs;
* windows, suppression and joins (``windows.py``, ``windowed.py``, ``joins.py``) add their
  nodes through the same :class:`TopologyBuilder` primitives;
* state stores (``stores/``): key-value, window and session stores, in memory or on SQLite,
  every change also sent to the store's changelog topic, restored from it;
* the runtime (``task.py``, ``app.py``, ``driver.py``): a task per (sub-topology, partition)
  feeding records through the nodes in timestamp order, committing (at least once, or
  exactly once through a transaction), restoring stores; ``TopologyTestDriver`` runs the same
  nodes in-process without a broker.

Kafka Streams' vocabulary throughout (``application.id``, task ``0_1``, stream time,
punctuation, ``{application.id}-{store}-changelog``, ``{application.id}-{name}-repartition``).
Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections import _tuplegetter  # type: ignore[attr-defined]  # namedtuple's
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from rillet.frozen import frozen

Headers = tuple[tuple[str, bytes], ...]


# ---------------------------------------------------------------------------------- records


class Record(tuple):
    """A record flowing between processor nodes: deserialized key and value, its event time
    (ms) and headers. Immutable (assigning a field raises ``dataclasses.
    FrozenInstanceError``), compared and hashed by its fields, never equal to a plain tuple.

    A tuple subclass with C-level field getters (as namedtuple's), not a frozen dataclass:
    every node makes one per record. ``Record(k, v, ts, h)`` runs a Python ``__new__``;
    the per-record paths call :func:`new_record` with the four fields in a tuple instead
    (tuple's own constructor, no Python frame: ~0.25 us per record less than the slotted
    class this replaced, whose ``__init__`` set four descriptors)."""

    __slots__ = ()
    __match_args__ = ("key", "value", "timestamp", "headers")
    _field_names = ("key", "value", "timestamp", "headers")

    key = _tuplegetter(0, "the deserialized key")
    value = _tuplegetter(1, "the deserialized value")
    timestamp = _tuplegetter(2, "event time, ms")
    headers = _tuplegetter(3, "((name, bytes), ...)")

    def __new__(cls, key: Any, value: Any, timestamp: int, headers: Headers = ()) -> Record:
        return _tuple_new(cls, (key, value, timestamp, headers))

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:  # (a plain tuple is never equal to one)
        return other.__class__ is self.__class__ and _tuple_eq(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return (f"Record(key={self.key!r}, value={self.value!r}, "
                f"timestamp={self.timestamp!r}, headers={self.headers!r})")

    def __reduce__(self) -> tuple:
        return (Record, tuple(self))

    def with_(self, **changes: Any) -> Record:
        """A copy with some fields replaced (``record.with_(value=v)``)."""
        unknown = set(changes) - set(self._field_names)
        if unknown:
            raise TypeError(f"Record has no field(s) {sorted(unknown)}")
        return Record(changes.get("key", self.key), changes.get("value", self.value),
                      changes.get("timestamp", self.timestamp),
                      changes.get("headers", self.headers))


_tuple_new = tuple.__new__
_tuple_eq = tuple.__eq__
#: ``new_record((key, value, timestamp, headers))``: a Record without a Python frame
new_record = functools.partial(_tuple_new, Record)


@dataclass(frozen=True, slots=True, order=True)
class TaskId:
    """Kafka's task id: sub-topology ``subtopology``, input partition ``partition``;
    printed ``0_1``."""

    subtopology: int
    partition: int

    def __str__(self) -> str:
        return f"{self.subtopology}_{self.partition}"

    @classmethod
    def parse(cls, text: str) -> TaskId:
        a, _, b = text.partition("_")
        return cls(int(a), int(b))


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A time window ``[start, end)`` in ms (a session window's end is its last record's
    timestamp, inclusive, as Kafka's)."""

    start: int
    end: int


@frozen
class Windowed:
    """The key of a windowed aggregate's result: the record key and its window."""

    key: Any
    window: Window


@frozen
class Change:
    """What flows between table nodes (Kafka's ``Change<V>``): the key's new value and the
    one it replaces (None: none / deleted). A table's downstream subtractors need ``old``;
    ``Table.to_stream()`` forwards ``new`` only."""

    new: Any
    old: Any = None


# ----------------------------------------------------------------------------------- serdes


@runtime_checkable
class Serde(Protocol):
    """Turns a key or value into bytes and back. ``None`` always maps to ``None`` (a
    tombstone), never through the serde."""

    def serialize(self, topic: str, data: Any) -> bytes: ...

    def deserialize(self, topic: str, data: bytes) -> Any: ...


# ------------------------------------------------------------------------------ processors


class PunctuationType(enum.Enum):
    """What drives a punctuation: the task's stream time (the largest record timestamp it
    has seen), or the wall clock."""

    STREAM_TIME = "stream_time"
    WALL_CLOCK_TIME = "wall_clock_time"


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class RecordCollector(Protocol):
    """Where sinks and changelogging stores send records (the runtime's producer, or the
    test driver's output lists). Bytes in: serialization happens before."""

    def send(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int,
             headers: Headers = (), partition: int | None = None) -> None: ...


class ProcessorContext(Protocol):
    """What a processor node sees of its task. One context per node instance; a task's
    nodes run on one thread, one record at a time."""

    application_id: str
    task_id: TaskId

    def forward(self, record: Record, child: str | None = None) -> None:
        """Pass ``record`` to every child node (or only to ``child``, by node name)."""

    def store(self, name: str) -> Any:
        """The store ``name`` (typed: KeyValueStore, WindowStore or SessionStore), which the
        node must have declared (``NodeSpec.stores``); KeyError otherwise."""

    def schedule(self, interval_ms: int, kind: PunctuationType,
                 callback: Callable[[int], None]) -> Cancellable:
        """Call ``callback(timestamp)`` every ``interval_ms`` of stream time or wall time."""

    def send(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int,
             headers: Headers = (), partition: int | None = None) -> None:
        """A sink's write (the task's RecordCollector)."""

    @property
    def stream_time(self) -> int:
        """The largest timestamp this task has processed (-1 before the first record)."""

    @property
    def wall_clock_ms(self) -> int:
        """The runtime's clock (the test driver's is advanced by hand)."""

    @property
    def topic(self) -> str | None:
        """The input topic of the record being processed (None in a punctuation)."""

    @property
    def partition(self) -> int | None: ...

    @property
    def offset(self) -> int | None: ...

    def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` (a real name) has: a sink's custom partitioner
        needs it (graph.py's context asks the runtime; the test driver says 1)."""


class Processor:
    """A node's behaviour. The runtime calls ``init`` once per task, then ``process`` for
    each record routed to the node, then ``close``."""

    context: ProcessorContext

    def init(self, context: ProcessorContext) -> None:
        self.context = context

    def process(self, record: Record) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------- stores

StoreKind = Literal["kv", "window", "session"]


@frozen
class StoreSpec:
    """A state store a topology needs. Changelog topic (if ``logged``):
    ``changelog_topic(application_id, name)``, compacted (window/session stores:
    ``compact,delete`` with ``retention.ms`` = ``retention_ms`` + 1 day, as Kafka's)."""

    name: str
    kind: StoreKind
    key_serde: Serde
    value_serde: Serde
    retention_ms: int | None = None  # window/session: how long windows are kept
    window_size_ms: int | None = None  # window stores
    retain_duplicates: bool = False  # window stores of stream-stream joins
    logged: bool = True
    in_memory: bool = False  # else SQLite under state.dir


class StateStore(Protocol):
    """Every store's life cycle, driven by the task (stores/ implements it). The typed
    methods (below) are what processors call."""

    name: str

    def open(self, task_dir: str | None, collector: RecordCollector | None,
             changelog: tuple[str, int] | None) -> None:
        """Open (SQLite file under ``task_dir``; in memory when None). With ``changelog``
        (topic, partition) and a collector, every change is also sent there."""

    def restore(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Apply changelog records (key bytes, value bytes or None = delete), not logged."""

    def checkpoint(self) -> int | None:
        """The changelog offset the local state includes (next offset to restore from), or
        None (restore from the start)."""

    def commit(self, changelog_offset: int | None) -> None:
        """Make the local state durable together with ``changelog_offset`` (the next
        changelog offset after this commit's writes), atomically."""

    def close(self) -> None: ...

    def wipe(self) -> None:
        """Delete the local state (after a crash under exactly_once: restore from the
        changelog instead)."""


class KeyValueStore(Protocol):
    """Typed key-value store. Iteration is in serialized-key order."""

    name: str

    def get(self, key: Any) -> Any: ...

    def put(self, key: Any, value: Any) -> None:
        """``value`` None deletes."""

    def delete(self, key: Any) -> Any: ...

    def all(self) -> Iterator[tuple[Any, Any]]: ...

    def range(self, lo: Any, hi: Any) -> Iterator[tuple[Any, Any]]:
        """Keys whose serialized form is within [ser(lo), ser(hi)]."""

    def __len__(self) -> int: ...


class WindowStore(Protocol):
    """Typed window store: values per (key, window start). Windows whose start is older
    than stream time minus ``retention_ms`` are dropped (``expire(stream_time)``)."""

    name: str

    def put(self, key: Any, value: Any, window_start: int) -> None:
        """``value`` None deletes (unless ``retain_duplicates``: then every put adds)."""

    def fetch(self, key: Any, window_start: int) -> Any: ...

    def fetch_range(self, key: Any, time_from: int, time_to: int
                    ) -> Iterator[tuple[int, Any]]:
        """``(window_start, value)`` of ``key`` with time_from <= start <= time_to, by start."""

    def fetch_all(self, time_from: int, time_to: int
                  ) -> Iterator[tuple[Windowed, Any]]: ...

    def all(self) -> Iterator[tuple[Windowed, Any]]: ...

    def expire(self, stream_time: int) -> None: ...


class SessionStore(Protocol):
    """Typed session store: values per (key, session window)."""

    name: str

    def find_sessions(self, key: Any, earliest_session_end: int, latest_session_start: int
                      ) -> Iterator[tuple[Windowed, Any]]:
        """Sessions of ``key`` with end >= earliest_session_end and start <=
        latest_session_start (the ones a new record at t with gap g merges with:
        ``find_sessions(k, t - g, t + g)``)."""

    def put(self, session: Windowed, value: Any) -> None: ...

    def remove(self, session: Windowed) -> None: ...

    def fetch(self, key: Any) -> Iterator[tuple[Windowed, Any]]: ...

    def all(self) -> Iterator[tuple[Windowed, Any]]: ...

    def expire(self, stream_time: int) -> None: ...


def changelog_topic(application_id: str, store: str) -> str:
    return f"{application_id}-{store}-changelog"


def repartition_topic(application_id: str, name: str) -> str:
    return f"{application_id}-{name}-repartition"


# -------------------------------------------------------------------- the compiled topology


@frozen
class SourceSpec:
    """An input topic of a sub-topology: records are deserialized with the serdes and
    enter at node ``node``. ``internal``: a repartition topic (name without the
    application id prefix; the runtime prefixes it)."""

    topic: str
    node: str
    key_serde: Serde
    value_serde: Serde
    internal: bool = False
    timestamp_extractor: Callable[[Any, Any, int], int] | None = None  # (key, value, ts)


@frozen
class NodeSpec:
    """A processor node: ``factory()`` makes a fresh Processor per task; ``children`` by
    name; ``stores`` the store names it may use."""

    name: str
    factory: Callable[[], Processor]
    children: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()


@frozen
class InternalTopicSpec:
    """A topic the application creates: ``name`` without the application id prefix.
    ``partitions`` None: as many as the sub-topology's input (repartition topics: the
    largest partition count of the upstream sub-topology's inputs, as Kafka's)."""

    name: str
    kind: Literal["repartition", "changelog"]
    partitions: int | None = None
    configs: Mapping[str, str] = field(default_factory=dict)
    upstream_subtopology: int | None = None  # repartition: who writes it


@frozen
class Subtopology:
    """The nodes one task runs. A task of sub-topology ``id`` for partition ``p`` reads
    partition ``p`` of every source topic (they must be co-partitioned: equal partition
    counts, else the runtime refuses to start with a clear error)."""

    id: int
    sources: tuple[SourceSpec, ...]
    nodes: Mapping[str, NodeSpec]
    stores: Mapping[str, StoreSpec]


@frozen
class CompiledTopology:
    """What ``Topology.compile()`` returns, and all the runtime and test driver use."""

    subtopologies: tuple[Subtopology, ...]
    internal_topics: tuple[InternalTopicSpec, ...]
    sink_topics: frozenset[str]  # external output topics (for docs/validation)
    copartition_groups: tuple[frozenset[str], ...] = ()
    """Topics that must have equal partition counts (joins): external topic names as
    they are, internal ones as their InternalTopicSpec name (``x-repartition``; real name
    ``{application.id}-x-repartition``). A repartition topic in a group takes the group's
    partition count (as Kafka's CopartitionedTopicsEnforcer)."""

    def source_topics(self) -> set[str]:
        """External input topics (internal ones excluded)."""
        return {s.topic for st in self.subtopologies for s in st.sources if not s.internal}


class TopologyBuilder(Protocol):
    """The primitives the DSL (and windows/joins) add nodes with (``topology.Topology``)."""

    def new_name(self, prefix: str) -> str:
        """A unique node name, Kafka style: ``KSTREAM-MAP-0000000003``."""

    def add_source(self, topic: str, key_serde: Serde, value_serde: Serde,
                   name: str | None = None, *, internal: bool = False,
                   timestamp_extractor: Callable[[Any, Any, int], int] | None = None) -> str:
        """A source node reading ``topic``; returns its name."""

    def add_processor(self, name: str, factory: Callable[[], Processor],
                      parents: tuple[str, ...], stores: tuple[str, ...] = ()) -> str: ...

    def add_sink(self, topic: str, key_serde: Serde, value_serde: Serde,
                 parents: tuple[str, ...], name: str | None = None, *,
                 internal: bool = False,
                 partitioner: Callable[[Any, Any, int], int] | None = None) -> str:
        """A sink writing to ``topic`` (internal: a repartition topic, prefixed at run
        time; partitioned by the serialized key's murmur2 hash unless ``partitioner``)."""

    def add_store(self, spec: StoreSpec) -> None:
        """Declare a store (once per name; a second different spec is an error)."""

    def connect_store(self, node: str, store: str) -> None:
        """Let ``node`` use ``store`` (a join's other side reads the same store)."""

    def copartition(self, *source_nodes: str) -> None:
        """These source nodes' topics must be co-partitioned (joins): checked at start."""


class Clock(Protocol):
    def __call__(self) -> int: ...


StoreFactory = Callable[[StoreSpec, TaskId], Any]
"""Makes a task's instance of a store (stores.build), typed facade and StateStore both."""

ErrorHandlerKind = Literal["log_and_continue", "log_and_fail", "dead_letter"]
"""``default.deserialization.exception.handler`` (Kafka's names): what a record the serdes
cannot decode does."""


def topic_of(spec: SourceSpec, application_id: str) -> str:
    """The real topic name a source reads."""
    return repartition_topic(application_id, spec.topic) if spec.internal else spec.topic


__all__ = [
    "Cancellable", "Change", "Clock", "CompiledTopology", "ErrorHandlerKind", "Headers",
    "InternalTopicSpec", "KeyValueStore", "NodeSpec", "Processor", "ProcessorContext",
    "PunctuationType", "Record", "RecordCollector", "Serde", "SessionStore", "SourceSpec",
    "StateStore", "StoreFactory", "StoreKind", "StoreSpec", "Subtopology", "TaskId",
    "TopologyBuilder", "Window", "WindowStore", "Windowed", "changelog_topic",
    "new_record", "repartition_topic", "topic_of",
]
