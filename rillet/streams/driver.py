"""``TopologyTestDriver`` (docs/streams.md "Testing a topology"): runs a topology in-process,
without a broker, as Kafka's: pipe records in, read what the sinks wrote.

One task per sub-topology (partition 0 of every topic), run through the same
:class:`~rillet.streams.graph.TaskGraph` as the real runtime. ``pipe`` serializes the key
and value with the source's serdes and the task deserializes them again, so a serde bug
shows here as it would in production. A record written to a repartition topic (or to a
topic the topology also reads) is fed to the sub-topology reading it before ``pipe``
returns. Stores are the real ones (``stores.build``), in memory, opened with a collector
that records their changelog writes: ``read_output("test-counts-changelog")``. Stream-time
punctuations run as records arrive, wall-clock ones on ``advance_wall_clock``.

Single-threaded: use a driver from one thread.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from collections.abc import Mapping
from typing import Any

from .api import (
    CompiledTopology,
    Headers,
    Record,
    Serde,
    StoreFactory,
    TaskId,
    changelog_topic,
    repartition_topic,
)
from .graph import TaskGraph
from .processors import SinkNode
from .serdes import Bytes, from_bytes, serde_of, to_bytes
from .topology import Topology

_CONFIG_KEYS = ("default.key.serde", "default.value.serde")


@dataclasses.dataclass(slots=True)
class _Sent:
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Headers
    partition: int | None


class TopologyTestDriver:
    """``config``: ``default.key.serde`` / ``default.value.serde`` (serde names or objects;
    used when compiling a Topology); other keys are accepted and have no effect here.
    ``store_factory``: makes each store (default ``rillet.streams.stores.build``)."""

    def __init__(self, topology: Topology | CompiledTopology, application_id: str = "test",
                 config: Mapping[str, Any] | None = None, initial_wall_clock_ms: int = 0, *,
                 store_factory: StoreFactory | None = None) -> None:
        config = dict(config or {})
        if isinstance(topology, Topology):
            ks = config.get("default.key.serde")
            vs = config.get("default.value.serde")
            self.compiled = topology.compile(serde_of(ks) if ks is not None else None,
                                             serde_of(vs) if vs is not None else None)
        elif isinstance(topology, CompiledTopology):
            self.compiled = topology
        else:
            raise TypeError(f"expected a Topology or CompiledTopology, got {topology!r}")
        if store_factory is None:
            from .stores import build as store_factory
        self.application_id = application_id
        self.wall_clock_ms = initial_wall_clock_ms
        self._outputs: dict[str, list[_Sent]] = defaultdict(list)
        self._pending: deque[tuple[str, _Sent]] = deque()
        self._offsets: dict[str, int] = defaultdict(int)
        self._graphs: dict[str, TaskGraph] = {}  # real input topic -> its task
        self._tasks: list[TaskGraph] = []
        self._stores: dict[str, Any] = {}
        self._store_specs = {}
        for sub in self.compiled.subtopologies:
            task_id = TaskId(sub.id, 0)
            stores = {}
            for name, spec in sub.stores.items():
                store = store_factory(dataclasses.replace(spec, in_memory=True), task_id)
                store.open(None, self, (changelog_topic(application_id, name), 0)
                           if spec.logged else None)
                stores[name] = store
                self._stores[name] = store
                self._store_specs[changelog_topic(application_id, name)] = spec
            graph = TaskGraph(sub, application_id=application_id, task_id=task_id,
                              stores=stores, collector=self, clock=self._clock)
            self._tasks.append(graph)
            for topic in graph.sources:
                self._graphs[topic] = graph
        for graph in self._tasks:
            graph.init()
        self._sink_serdes: dict[str, tuple[Serde, Serde]] = {}
        for graph in self._tasks:
            for proc in graph._processors.values():
                if isinstance(proc, SinkNode):
                    self._sink_serdes[proc._real_topic] = (proc.key_serde, proc.value_serde)
        self._closed = False

    def _clock(self) -> int:
        return self.wall_clock_ms

    # input -----------------------------------------------------------------------------
    def pipe(self, topic: str, key: Any, value: Any, timestamp: int | None = None,
             headers: Headers = ()) -> None:
        """Send one record to input ``topic`` (timestamp default: the wall clock) and
        process it, and everything it causes, before returning."""
        self._check_open()
        graph = self._graphs.get(topic)
        if graph is None:
            raise KeyError(f"{topic!r} is not an input topic of this topology (inputs: "
                           f"{', '.join(sorted(self._graphs))})")
        source = graph.sources[topic]
        ts = self.wall_clock_ms if timestamp is None else timestamp
        if not isinstance(ts, int) or ts < 0:
            raise ValueError(f"timestamp must be an int >= 0 (ms), got {ts!r}")
        sent = _Sent(to_bytes(source.key_serde, topic, key),
                     to_bytes(source.value_serde, topic, value), ts, tuple(headers), 0)
        self._pending.append((topic, sent))
        self._drain()

    def pipe_many(self, topic: str, records: list[tuple[Any, Any, int]]) -> None:
        """``pipe`` each ``(key, value, timestamp)``."""
        for key, value, ts in records:
            self.pipe(topic, key, value, ts)

    def _drain(self) -> None:
        while self._pending:
            topic, sent = self._pending.popleft()
            graph = self._graphs[topic]
            record = graph.record_from(topic, sent.key, sent.value, sent.timestamp,
                                       sent.headers)
            offset = self._offsets[topic]
            self._offsets[topic] = offset + 1
            graph.process(topic, record, partition=0, offset=offset)

    # RecordCollector (sinks and changelogging stores write here) ----------------------
    def send(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int,
             headers: Headers = (), partition: int | None = None) -> None:
        sent = _Sent(key, value, timestamp, tuple(headers), partition)
        self._outputs[topic].append(sent)
        if topic in self._graphs:
            self._pending.append((topic, sent))

    # output ----------------------------------------------------------------------------
    def read_output(self, topic: str, key_serde: Serde | None = None,
                    value_serde: Serde | None = None) -> list[Record]:
        """The records written to ``topic`` since the last read (and forget them).
        Serdes default to those of the sink (or store, for a changelog) writing
        ``topic``, else bytes."""
        known = self.output_topics()
        if topic not in known and topic not in self._outputs:
            raise KeyError(f"{topic!r} is not written by this topology (outputs: "
                           f"{', '.join(sorted(known))})")
        ks, vs = self._sink_serdes.get(topic, (None, None))
        spec = self._store_specs.get(topic)
        if spec is not None:
            ks, vs = spec.key_serde, spec.value_serde
        ks, vs = key_serde or ks or Bytes, value_serde or vs or Bytes
        sent = self._outputs.pop(topic, [])
        return [Record(from_bytes(ks, topic, s.key), from_bytes(vs, topic, s.value),
                       s.timestamp, s.headers) for s in sent]

    def read_key_values(self, topic: str, key_serde: Serde | None = None,
                        value_serde: Serde | None = None) -> list[tuple[Any, Any]]:
        """``read_output`` as ``(key, value)`` pairs."""
        return [(r.key, r.value) for r in self.read_output(topic, key_serde, value_serde)]

    def output_topics(self) -> set[str]:
        """Every topic the topology writes: sinks, repartition and changelog topics."""
        c = self.compiled
        names = set(c.sink_topics) | set(self._store_specs)
        names.update(repartition_topic(self.application_id, t.name[:-len("-repartition")])
                     for t in c.internal_topics if t.kind == "repartition")
        return names

    # time, stores, end -----------------------------------------------------------------
    def advance_wall_clock(self, ms: int) -> None:
        """Move the wall clock forward by ``ms`` and run the punctuations now due."""
        self._check_open()
        if ms < 0:
            raise ValueError(f"the wall clock only moves forward; got {ms}")
        self.wall_clock_ms += ms
        for graph in self._tasks:
            graph.punctuate_wall_clock(self.wall_clock_ms)
        self._drain()

    def store(self, name: str) -> Any:
        """A store of the topology (its single task's instance), to read or check."""
        try:
            return self._stores[name]
        except KeyError:
            raise KeyError(f"no store {name!r} (stores: {', '.join(self._stores)})") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for graph in self._tasks:
            graph.close()
        for store in self._stores.values():
            store.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the driver is closed")

    def __enter__(self) -> TopologyTestDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["TopologyTestDriver"]
