"""The graph the DSL builds and its compilation (docs/streams.md "The DSL"): processor
nodes, sources, sinks and stores, split into sub-topologies at repartition topics, with the
internal topics the application needs.

``Topology`` is the :class:`~rillet.streams.api.TopologyBuilder` that dsl.py, windowed.py
and joins.py add nodes through; ``compile()`` returns the
:class:`~rillet.streams.api.CompiledTopology` the runtime (app.py, task.py) and the test
driver (driver.py) run. A Topology is built by one thread, before the application runs.

Compilation, as Kafka's ``InternalTopologyBuilder``:

* sub-topologies are the connected components of the node graph (parent-child edges, plus
  the nodes sharing a store), numbered by their first node; a repartition topic is not an
  edge, so it is where one sub-topology ends and the next begins;
* serdes left None by the DSL (the "app default") become the topology's defaults here;
* internal topics: ``{name}-repartition`` for each repartition (configs as Kafka's:
  ``cleanup.policy=delete``), ``{store}-changelog`` for each logged store
  (``cleanup.policy=compact``; window and session stores ``compact,delete`` with
  ``retention.ms`` = the store's retention + 1 day); real topic names are
  ``{application.id}-{name}``;
* co-partition groups from ``copartition()`` (joins), as topic names: external ones as
  they are, internal ones as their InternalTopicSpec name (``orders-repartition``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from . import processors as P
from .api import (
    CompiledTopology,
    InternalTopicSpec,
    NodeSpec,
    Processor,
    Serde,
    SourceSpec,
    StoreSpec,
    Subtopology,
)
from .dsl import Materialized, Stream, Table, store_spec
from .serdes import Bytes, ChangeSerde

DAY_MS = 24 * 60 * 60 * 1000


class TopologyError(ValueError):
    """A topology that cannot run (a name used twice, a store never declared, ...)."""


@dataclass(slots=True, eq=False)
class _Node:
    name: str
    kind: Literal["source", "processor", "sink"]
    order: int
    parents: tuple[str, ...] = ()
    children: list[str] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    factory: Callable[[], Processor] | None = None
    topic: str | None = None  # source/sink; internal: the repartition name
    key_serde: Serde | None = None
    value_serde: Serde | None = None
    internal: bool = False
    timestamp_extractor: Callable[[Any, Any, int], int] | None = None
    partitioner: Callable[[Any, Any, int], int] | None = None


class Topology:
    """``topology.stream("topic")`` / ``topology.table("topic")`` start the DSL;
    ``describe()`` prints the sub-topologies as Kafka's ``Topology#describe``. Serdes
    default to ``default_key_serde`` / ``default_value_serde`` (bytes when None)."""

    def __init__(self, default_key_serde: Serde | None = None,
                 default_value_serde: Serde | None = None) -> None:
        self.default_key_serde = default_key_serde
        self.default_value_serde = default_value_serde
        self._index = 0
        self._nodes: dict[str, _Node] = {}
        self._stores: dict[str, StoreSpec] = {}
        self._source_topics: dict[str, str] = {}  # external topic -> source node
        self._repartitions: dict[str, int | None] = {}  # name -> partitions
        self._copartition: list[tuple[str, ...]] = []

    # the DSL's entry points ------------------------------------------------------------
    def stream(self, topic: str, *, key_serde: Serde | None = None,
               value_serde: Serde | None = None,
               timestamp_extractor: Callable[[Any, Any, int], int] | None = None) -> Stream:
        """A stream of ``topic``'s records; ``timestamp_extractor(key, value, record
        timestamp) -> event time`` (ms) replaces the record timestamp."""
        node = self.add_source(topic, key_serde, value_serde,
                               timestamp_extractor=timestamp_extractor)
        return Stream(self, node, key_serde, value_serde)

    def table(self, topic: str, store: str | Materialized | None = None, *,
              key_serde: Serde | None = None, value_serde: Serde | None = None) -> Table:
        """A table from a (compacted) topic, kept in its own key-value store (``store``: a
        name, a Materialized, or None for ``{topic}-STATE-STORE-000000000N``) with its own
        changelog topic (the source topic is not reused as the changelog)."""
        spec = store_spec(self, store, f"{topic}-", key_serde, value_serde)
        self.add_store(spec)
        source = self.add_source(topic, key_serde, value_serde)
        node = self.add_processor(self.new_name("KTABLE-SOURCE"),
                                  functools.partial(P.TableSourceNode, spec.name),
                                  (source,), (spec.name,))
        return Table(self, node, key_serde, value_serde, store=spec.name)

    # TopologyBuilder (api.py) ---------------------------------------------------------
    def new_name(self, prefix: str) -> str:
        """``KSTREAM-MAP-0000000003``: the prefix and a counter shared by all names."""
        name = f"{prefix.rstrip('-')}-{self._index:010d}"
        self._index += 1
        return name

    def new_store_name(self, prefix: str) -> str:
        """``KSTREAM-AGGREGATE-STATE-STORE-0000000003`` (Kafka's ``newStoreName``)."""
        return self.new_name(f"{prefix.rstrip('-')}-STATE-STORE")

    def add_source(self, topic: str, key_serde: Serde | None, value_serde: Serde | None,
                   name: str | None = None, *, internal: bool = False,
                   timestamp_extractor: Callable[[Any, Any, int], int] | None = None) -> str:
        """Serdes None: the topology's defaults (filled in by ``compile``)."""
        if not isinstance(topic, str) or not topic:
            raise TopologyError(f"a source needs a topic name, got {topic!r}")
        if not internal and topic in self._source_topics:
            raise TopologyError(
                f"topic {topic!r} is already read by source {self._source_topics[topic]}; "
                "reuse that stream (a topic can be a source once per topology)")
        if internal and any(n.kind == "source" and n.internal and n.topic == topic
                            for n in self._nodes.values()):
            raise TopologyError(f"repartition topic {topic!r} already has a source")
        name = name or self.new_name("KSTREAM-SOURCE")
        self._add(_Node(name, "source", 0, factory=P.PassThrough, topic=topic,
                        key_serde=key_serde, value_serde=value_serde, internal=internal,
                        timestamp_extractor=timestamp_extractor))
        if not internal:
            self._source_topics[topic] = name
        return name

    def add_processor(self, name: str, factory: Callable[[], Processor],
                      parents: tuple[str, ...], stores: tuple[str, ...] = ()) -> str:
        if not callable(factory):
            raise TopologyError(f"processor {name!r}: factory {factory!r} is not callable")
        if not parents:
            raise TopologyError(f"processor {name!r} has no parent")
        self._add(_Node(name, "processor", 0, tuple(parents), factory=factory,
                        stores=list(stores)))
        return name

    def add_sink(self, topic: str, key_serde: Serde | None, value_serde: Serde | None,
                 parents: tuple[str, ...], name: str | None = None, *,
                 internal: bool = False,
                 partitioner: Callable[[Any, Any, int], int] | None = None) -> str:
        name = name or self.new_name("KSTREAM-SINK")
        if not isinstance(topic, str) or not topic:
            raise TopologyError(f"sink {name!r} needs a topic name, got {topic!r}")
        if not parents:
            raise TopologyError(f"sink {name!r} (topic {topic!r}) has no parent")
        self._add(_Node(name, "sink", 0, tuple(parents), topic=topic, key_serde=key_serde,
                        value_serde=value_serde, internal=internal, partitioner=partitioner))
        return name

    def add_store(self, spec: StoreSpec) -> None:
        """Declare a store; serdes None: the topology's defaults. Declaring the same name
        again with a different spec is an error."""
        known = self._stores.get(spec.name)
        if known is not None and known != spec:
            raise TopologyError(f"store {spec.name!r} is declared twice, differently: "
                                f"{known} and {spec}")
        self._stores[spec.name] = spec

    def connect_store(self, node: str, store: str) -> None:
        n = self._get(node)
        if store not in n.stores:
            n.stores.append(store)

    def copartition(self, *source_nodes: str) -> None:
        for s in source_nodes:
            if self._get(s).kind != "source":
                raise TopologyError(f"copartition: {s!r} is not a source node")
        self._copartition.append(tuple(source_nodes))

    def add_repartition(self, parent: str, name: str, key_serde: Serde | None,
                        value_serde: Serde | None, partitions: int | None = None) -> str:
        """Through the internal topic ``{application.id}-{name}-repartition``: nodes
        ``{name}-repartition-filter`` (drops None keys), ``-sink`` and ``-source``; returns
        the source node."""
        if name in self._repartitions:
            raise TopologyError(f"repartition topic {name}-repartition is made twice: give "
                                "the operations different names")
        if partitions is not None and (not isinstance(partitions, int) or partitions < 1):
            raise TopologyError(f"repartition {name!r}: partitions must be >= 1, "
                                f"got {partitions!r}")
        self._repartitions[name] = partitions
        filt = self.add_processor(f"{name}-repartition-filter", P.DropNullKey, (parent,))
        self.add_sink(name, key_serde, value_serde, (filt,), f"{name}-repartition-sink",
                      internal=True)
        return self.add_source(name, key_serde, value_serde, f"{name}-repartition-source",
                               internal=True)

    # internals -------------------------------------------------------------------------
    def _get(self, name: str) -> _Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise TopologyError(f"no node named {name!r}") from None

    def _add(self, node: _Node) -> None:
        if node.name in self._nodes:
            raise TopologyError(f"node name {node.name!r} is used twice")
        for p in node.parents:
            parent = self._get(p)
            if parent.kind == "sink":
                raise TopologyError(f"{node.name!r}: a sink ({p!r}) cannot be a parent")
        node.order = len(self._nodes)
        self._nodes[node.name] = node
        for p in node.parents:
            self._nodes[p].children.append(node.name)

    # compilation -----------------------------------------------------------------------
    def compile(self, default_key_serde: Serde | None = None,
                default_value_serde: Serde | None = None) -> CompiledTopology:
        """The sub-topologies, stores and internal topics; the defaults given here win
        over the topology's own (the runtime passes the app's ``default.*.serde``)."""
        kd = default_key_serde or self.default_key_serde or Bytes
        vd = default_value_serde or self.default_value_serde or Bytes
        self._validate()
        groups = self._groups()
        node_group = {n: i for i, g in enumerate(groups) for n in g}
        subs = []
        for i, group in enumerate(groups):
            nodes = [self._nodes[n] for n in group]
            sources = tuple(
                SourceSpec(n.topic, n.name, _resolve(n.key_serde, kd, vd),
                           _resolve(n.value_serde, vd, vd), internal=n.internal,
                           timestamp_extractor=n.timestamp_extractor)
                for n in nodes if n.kind == "source")
            specs = {n.name: NodeSpec(n.name, self._factory(n, kd, vd), tuple(n.children),
                                      tuple(n.stores)) for n in nodes}
            stores = {}
            for n in nodes:
                for s in n.stores:
                    spec = self._stores[s]
                    stores[s] = dataclasses.replace(
                        spec, key_serde=_resolve(spec.key_serde, kd, vd),
                        value_serde=_resolve(spec.value_serde, vd, vd))
            subs.append(Subtopology(i, sources, specs, stores))
        internal: list[InternalTopicSpec] = []
        for n in self._nodes.values():
            if n.kind == "sink" and n.internal:
                internal.append(InternalTopicSpec(
                    f"{n.topic}-repartition", "repartition", self._repartitions.get(n.topic),
                    {"cleanup.policy": "delete"}, upstream_subtopology=node_group[n.name]))
        for sub in subs:
            for spec in sub.stores.values():
                if spec.logged:
                    internal.append(InternalTopicSpec(f"{spec.name}-changelog", "changelog",
                                                      None, _changelog_configs(spec)))
        sinks = frozenset(n.topic for n in self._nodes.values()
                          if n.kind == "sink" and not n.internal)
        copart = tuple(frozenset(self._topic_name(s) for s in group)
                       for group in self._copartition)
        return CompiledTopology(tuple(subs), tuple(internal), sinks,
                                copartition_groups=copart)

    def _topic_name(self, source: str) -> str:
        n = self._nodes[source]
        return f"{n.topic}-repartition" if n.internal else n.topic

    def _factory(self, n: _Node, kd: Serde, vd: Serde) -> Callable[[], Processor]:
        if n.kind != "sink":
            assert n.factory is not None
            return n.factory
        return functools.partial(P.SinkNode, n.topic, _resolve(n.key_serde, kd, vd),
                                 _resolve(n.value_serde, vd, vd), internal=n.internal,
                                 partitioner=n.partitioner)

    def _validate(self) -> None:
        if not any(n.kind == "source" for n in self._nodes.values()):
            raise TopologyError("the topology has no source: start with "
                                "topology.stream(topic) or topology.table(topic)")
        for n in self._nodes.values():
            for s in n.stores:
                if s not in self._stores:
                    raise TopologyError(f"node {n.name!r} uses store {s!r}, which is never "
                                        "declared (add_store)")
        written = {n.topic for n in self._nodes.values() if n.kind == "sink" and n.internal}
        read = {n.topic for n in self._nodes.values() if n.kind == "source" and n.internal}
        for name in written - read:
            raise TopologyError(f"repartition topic {name}-repartition is written, never read")
        for name in read - written:
            raise TopologyError(f"repartition topic {name}-repartition is read, never written")

    def _groups(self) -> list[list[str]]:
        """Connected components (parents and shared stores), by first node."""
        root = {n: n for n in self._nodes}

        def find(x: str) -> str:
            while root[x] != x:
                root[x] = root[root[x]]
                x = root[x]
            return x

        def union(a: str, b: str) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                root[max(ra, rb, key=lambda r: self._nodes[r].order)] = min(
                    ra, rb, key=lambda r: self._nodes[r].order)

        users: dict[str, str] = {}
        for n in self._nodes.values():
            for p in n.parents:
                union(n.name, p)
            for s in n.stores:
                union(n.name, users.setdefault(s, n.name))
        groups: dict[str, list[str]] = {}
        for name in self._nodes:  # insertion order: groups and members by first node
            groups.setdefault(find(name), []).append(name)
        return list(groups.values())

    def describe(self) -> str:
        """Kafka's ``Topology#describe`` text: each sub-topology's nodes, their topics,
        stores, children (``-->``) and parents (``<--``)."""
        compiled = self.compile()
        lines = ["Topologies:"]
        for sub in compiled.subtopologies:
            lines.append(f"   Sub-topology: {sub.id}")
            for name in sub.nodes:
                n = self._nodes[name]
                topic = self._topic_name(name) if n.kind != "processor" else ""
                if n.kind == "source":
                    lines.append(f"    Source: {name} (topics: [{topic}])")
                elif n.kind == "sink":
                    topic = f"{n.topic}-repartition" if n.internal else n.topic
                    lines.append(f"    Sink: {name} (topic: {topic})")
                else:
                    lines.append(f"    Processor: {name} (stores: [{', '.join(n.stores)}])")
                if n.kind != "sink":
                    lines.append(f"      --> {', '.join(n.children) or 'none'}")
                if n.parents:
                    lines.append(f"      <-- {', '.join(n.parents)}")
            lines.append("")
        return "\n".join(lines)


def _resolve(serde: Serde | None, default: Serde, default_value: Serde) -> Serde:
    if serde is None:
        return default
    if isinstance(serde, ChangeSerde) and serde.inner is None:
        return ChangeSerde(default_value)
    return serde


def _changelog_configs(spec: StoreSpec) -> dict[str, str]:
    if spec.kind == "kv":
        return {"cleanup.policy": "compact"}
    retention = (spec.retention_ms or 0) + DAY_MS
    return {"cleanup.policy": "compact,delete", "retention.ms": str(retention)}


__all__ = ["Topology", "TopologyError"]
